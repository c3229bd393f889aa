# riscv64-zig.cmake — cross toolchain for the riscv64 Linux boards (SpacemiT K1/X60, Kendryte K230,
# StarFive VisionFive 2) using zig's clang 22 from PyPI ziglang (the only compiler here with RVV 1.0
# intrinsics). Used by scripts/cross.sh spacemit-k1|k230|visionfive2.
#
# One binary for every board: everything is built for rv64gc (-mcpu=baseline_rv64, no V) so it runs on
# the VisionFive 2; only csrc/kernels/rvv/*_rvv.cpp get V through EDGE_RVV_FLAGS (CMakeLists.txt), and
# dispatch.cpp uses them only when AT_HWCAP has the 'V' bit.
#
# libc: zig links glibc targets only dynamically, and this machine has no riscv64 glibc sysroot for
# qemu -L, so the default is riscv64-linux-musl linked -static: one self-contained file that qemu-riscv64
# and any riscv64 Linux board run as is (musl's pthreads back the thread pool). For a board's own
# glibc pass -DEDGE_ZIG_TARGET=riscv64-linux-gnu.2.36 (dynamic; under qemu add -L <riscv64 sysroot>).
# The compiler wrappers (zig-c++ etc. beside this file) find ziglang via $EDGE_ZIG_PYTHON or python3.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)

set(EDGE_ZIG_TARGET "riscv64-linux-musl" CACHE STRING
  "zig -target for riscv64 (riscv64-linux-musl: static; riscv64-linux-gnu.2.36: dynamic glibc)")
set(EDGE_RVV_FLAGS "-mcpu=baseline_rv64+v" CACHE STRING "compile flags of the *_rvv.cpp files (zig: the last -mcpu wins)")

set(CMAKE_C_COMPILER "${CMAKE_CURRENT_LIST_DIR}/zig-cc")
set(CMAKE_CXX_COMPILER "${CMAKE_CURRENT_LIST_DIR}/zig-c++")
set(CMAKE_AR "${CMAKE_CURRENT_LIST_DIR}/zig-ar" CACHE FILEPATH "archiver (zig ar)")
set(CMAKE_RANLIB "${CMAKE_CURRENT_LIST_DIR}/zig-ranlib" CACHE FILEPATH "ranlib (zig ranlib)")

set(CMAKE_C_FLAGS_INIT "-target ${EDGE_ZIG_TARGET} -mcpu=baseline_rv64")
set(CMAKE_CXX_FLAGS_INIT "-target ${EDGE_ZIG_TARGET} -mcpu=baseline_rv64")
if(EDGE_ZIG_TARGET MATCHES "musl")
  set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
endif()

# Nothing of the build host may leak into the target's link.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
