#!/usr/bin/env bash
# bench/cuda/call_profile.sh — one device call (issue 9, session s19): build for sm_90, the kernel test binary
# REPEAT times (the intermittent gemm_mma case), the CUDA tests, then bench/cuda/profile_decode.py (CUPTI kernel
# times per decoded token) for SHAPES at int4, plain and with EDGE_CUDA_PDL=1. Files in $OUT: env_build.log
# kernels.md test_cuda.log profile.md.        WHEELS=.whl bash bench/cuda/call_profile.sh [SHAPES]
set -uo pipefail
OUT=${OUT:-bench/out/profile}; mkdir -p "$OUT"
SHAPES=${1:-135m,1b}
. "$(dirname "$0")/build_gpu.sh"
for i in $(seq "${REPEAT:-4}"); do
  timeout 100 build/gpu/edge_test_cuda_gemv --quick > /tmp/q$i.log 2>&1; echo "run $i rc=$? $(tail -1 /tmp/q$i.log)"; grep -E "^FAIL" /tmp/q$i.log | head -5
done >"$OUT/kernels.md" 2>&1; el "kernel tests"; cat "$OUT/kernels.md"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -rfE ${TESTS:-tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py} >"$OUT/test_cuda.log" 2>&1
  el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20
fi
{ timeout 150 python3 bench/cuda/profile_decode.py --shapes "$SHAPES"
  echo "# EDGE_CUDA_PDL=1"; EDGE_CUDA_PDL=1 timeout 100 python3 bench/cuda/profile_decode.py --shapes "$SHAPES"; } >"$OUT/profile.md" 2>&1
el "profile"; grep -E "^(##|tokens|# )" "$OUT/profile.md"
