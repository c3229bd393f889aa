#!/usr/bin/env bash
# Cross-builds the C++ core, the standalone CLI (edgert) and the C++ tests for a device profile.
#   scripts/cross.sh TARGET [BUILD_DIR]     TARGET: rpi4 | rpi5 | jetson-orin-nano | spacemit-k1 | k230 | visionfive2
# aarch64 targets share one binary (NEON baseline, dotprod/i8mm chosen at run time); riscv64 targets share one
# rv64gc binary whose RVV kernels are used when the hwcap has V. Needs: g++-aarch64-linux-gnu (aarch64),
# pip ziglang (riscv64). Output: BUILD_DIR (default build/cross-<arch>)/{edgert,edge_test_kernels,...}.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:?usage: scripts/cross.sh TARGET [BUILD_DIR]}"
case "$target" in
  rpi4|rpi5|jetson-orin-nano|aarch64) arch=aarch64; toolchain="$root/devices/toolchains/aarch64-linux-gnu.cmake" ;;
  spacemit-k1|k230|visionfive2|riscv64) arch=riscv64; toolchain="$root/devices/toolchains/riscv64-zig.cmake" ;;
  *) echo "cross.sh: unknown target '$target'" >&2; exit 2 ;;
esac
build="${2:-$root/build/cross-$arch}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DEDGE_PYTHON=OFF -DEDGE_TESTS=ON \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "$build"
