#!/usr/bin/env bash
# bench/cuda/call_prefill.sh — one device call for the prefill work of issue 9 (session s16): build for sm_90, the
# CUDA tests, the tensor-core GEMM vs GEMV vs cuBLAS at the 1.2B prefill shapes, and bench/bench_cuda.py with the
# new paths on and, in the same call, off (EDGE_CUDA_MMA=0 EDGE_CUDA_FLASH=0: the code before them).
# At most 8 files in $OUT: env_build.log test_cuda.log kernels.md bench.log bench_cuda.{json,md} before.{json,md}.
#   WHEELS=../.whl bash bench/cuda/call_prefill.sh [SHAPES] [RECIPES]
# (BEFORE_ENV: the environment of the comparison run, default EDGE_CUDA_MMA=0 EDGE_CUDA_FLASH=0; BEFORE_SHAPES: its shapes)
set -uo pipefail
OUT=${OUT:-bench/out/prefill}; mkdir -p "$OUT"
SHAPES=${1:-1b,4b}; RECIPES=${2:-int4,q8}
. "$(dirname "$0")/build_gpu.sh"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -rfE ${TESTS:-tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py} >"$OUT/test_cuda.log" 2>&1
  el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20
fi
{ echo "## edge_test_cuda_gemv --quick (summary)"; timeout 120 build/gpu/edge_test_cuda_gemv --quick > /tmp/gemv_quick.log 2>&1; echo "rc=$?"
  grep -c "^ok.*gemm_mma" /tmp/gemv_quick.log | sed 's/^/gemm_mma cases ok: /'; grep -E "^FAIL" /tmp/gemv_quick.log | head -10; tail -1 /tmp/gemv_quick.log
  echo; echo "## edge_test_cuda_gemv --bench-mma"; timeout 120 build/gpu/edge_test_cuda_gemv --bench-mma
  echo; echo "## bench/cuda/cublas_prefill.py"; timeout 120 python3 bench/cuda/cublas_prefill.py; } >"$OUT/kernels.md" 2>&1
el "kernels"; grep -E "^\||rc=|ok:|passed" "$OUT/kernels.md" | head -40
left=$(( ${DEADLINE_S:-560} - ($(date +%s) - t0) ))
timeout $left python3 bench/bench_cuda.py --out "$OUT" --shapes "$SHAPES" --recipes "$RECIPES" --no-hf --runs ${RUNS:-2} --moe-budget 0 \
  --edgert build/gpu/edgert >"$OUT/bench.log" 2>&1
el "bench (new paths) rc=$?"; tail -8 "$OUT/bench.log"
left=$(( ${DEADLINE_S:-560} - ($(date +%s) - t0) ))
mkdir -p /tmp/before
env ${BEFORE_ENV:-EDGE_CUDA_MMA=0 EDGE_CUDA_FLASH=0} timeout $left python3 bench/bench_cuda.py --out /tmp/before --shapes "${BEFORE_SHAPES:-1b}" --recipes "$RECIPES" \
  --no-hf --runs ${RUNS:-2} --moe-budget 0 --edgert build/gpu/edgert >>"$OUT/bench.log" 2>&1
el "bench (${BEFORE_ENV:-EDGE_CUDA_MMA=0 EDGE_CUDA_FLASH=0}) rc=$?"; tail -5 "$OUT/bench.log"
cp /tmp/before/bench_cuda.json "$OUT/before.json" 2>/dev/null; cp /tmp/before/bench_cuda.md "$OUT/before.md" 2>/dev/null
ls "$OUT"
