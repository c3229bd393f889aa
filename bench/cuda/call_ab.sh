#!/usr/bin/env bash
# bench/cuda/call_ab.sh — one device call (issue 9, s19): build for sm_90 (default GEMV pipeline) plus the
# backend / kernel test at other EDGE_CUDA_GEMV_STAGES values (VARIANTS, e.g. "0 4"), the kernel tests, the GPU
# tests, the int4_32 / q8_0 GEMV bench of each variant, and bench/cuda/profile_decode.py for each variant and
# with EDGE_CUDA_PDL=1. Files in $OUT: env_build.log kernels.md gemv.md test_cuda.log profile.md.
#   WHEELS=.whl VARIANTS="0 4" bash bench/cuda/call_ab.sh [SHAPES]
set -uo pipefail
OUT=${OUT:-bench/out/ab}; mkdir -p "$OUT"
SHAPES=${1:-135m,1b}; VARIANTS=${VARIANTS:-}
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv; python3 --version
  [ -n "${WHEELS:-}" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
} >"$OUT/env_build.log" 2>&1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PB="$(python3 -c 'import pybind11;print(pybind11.get_cmake_dir())')"
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DEDGE_TESTS=ON -Dpybind11_DIR="$PB" >>"$OUT/env_build.log" 2>&1 &&
  ninja -C build/gpu -j16 >>"$OUT/env_build.log" 2>&1
rc=$?; el "build rc=$rc"; [ $rc -ne 0 ] && { grep -E "error" "$OUT/env_build.log" | head -20; tail -20 "$OUT/env_build.log"; exit 1; }
for v in $VARIANTS; do  # in the background, while the tests run
  ( cmake -S . -B build/gpu-s$v -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DEDGE_TESTS=ON -DEDGE_PYTHON=OFF \
      -DCMAKE_CUDA_FLAGS="-DEDGE_CUDA_GEMV_STAGES=$v" >/tmp/bv$v.log 2>&1 && ninja -C build/gpu-s$v -j8 edge_cuda_backend edge_test_cuda_gemv >>/tmp/bv$v.log 2>&1; echo "variant $v rc=$?" >>/tmp/bv$v.log ) &
done
export EDGE_CUDA_PLUGIN=$PWD/runtime/edgerun/libedge_cuda_backend.so
{ timeout 100 build/gpu/edge_test_cuda_gemv --quick > /tmp/q.log 2>&1; echo "default rc=$? $(tail -1 /tmp/q.log)"; grep -E "^FAIL" /tmp/q.log | head -8; } >"$OUT/kernels.md" 2>&1
el "kernel tests"; cat "$OUT/kernels.md"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -rfE ${TESTS:-tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py} >"$OUT/test_cuda.log" 2>&1
  el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20
fi
wait; for v in $VARIANTS; do tail -1 /tmp/bv$v.log; done
{ echo "## default"; timeout 80 build/gpu/edge_test_cuda_gemv --bench --dtypes int4_32,q8_0 --ncols 1 --mb 128
  for v in $VARIANTS; do echo "## EDGE_CUDA_GEMV_STAGES=$v"; [ -x build/gpu-s$v/edge_test_cuda_gemv ] && {
    timeout 20 build/gpu-s$v/edge_test_cuda_gemv --quick | tail -1; timeout 80 build/gpu-s$v/edge_test_cuda_gemv --bench --dtypes int4_32,q8_0 --ncols 1 --mb 128; }; done
} >"$OUT/gemv.md" 2>&1; el "gemv bench"
{ echo "# default"; timeout 120 python3 bench/cuda/profile_decode.py --shapes "$SHAPES" --tokens 64
  for v in $VARIANTS; do echo "# EDGE_CUDA_GEMV_STAGES=$v"; EDGE_CUDA_PLUGIN=$PWD/build/gpu-s$v/libedge_cuda_backend.so timeout 80 python3 bench/cuda/profile_decode.py --shapes "$SHAPES" --tokens 64; done
  echo "# EDGE_CUDA_PDL=1"; EDGE_CUDA_PDL=1 timeout 80 python3 bench/cuda/profile_decode.py --shapes "$SHAPES" --tokens 64
} 2>&1 | grep -v -i warn >"$OUT/profile.md"; el "profile"; grep -E "^(##|tokens|# )" "$OUT/profile.md"
