# aarch64-linux-gnu.cmake — cross toolchain for 64-bit Arm Linux boards (Raspberry Pi 4/5, Jetson Orin):
#   cmake -DCMAKE_TOOLCHAIN_FILE=devices/toolchains/aarch64-linux-gnu.cmake ...   (scripts/cross.sh does this)
# Debian/Ubuntu: apt install g++-aarch64-linux-gnu (sysroot /usr/aarch64-linux-gnu); run the results on an
# x86 host with qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72|cortex-a76|max.
# The baseline is plain armv8-a (NEON only; a Pi 4 runs it). Never -mcpu=native or +dotprod here: the
# *_dotprod.cpp / *_i8mm.cpp kernel files get their extensions per file (CMakeLists.txt) and are chosen at
# run time from the hwcaps, so one binary serves every aarch64 board.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EDGE_AARCH64_TRIPLE aarch64-linux-gnu CACHE STRING "cross compiler prefix")
set(CMAKE_C_COMPILER ${EDGE_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${EDGE_AARCH64_TRIPLE}-g++)

set(EDGE_AARCH64_SYSROOT /usr/${EDGE_AARCH64_TRIPLE} CACHE PATH "target libraries and headers")
set(CMAKE_FIND_ROOT_PATH ${EDGE_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_C_FLAGS_INIT "-march=armv8-a")
set(CMAKE_CXX_FLAGS_INIT "-march=armv8-a")
# Static libstdc++/libgcc: the binaries run on a board (or under qemu -L) whatever its libstdc++ version.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libstdc++ -static-libgcc")
