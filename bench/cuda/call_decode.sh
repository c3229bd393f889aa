#!/usr/bin/env bash
# bench/cuda/call_decode.sh — one device call for the decode work of issue 9 §5 (session s17): build for sm_90, the
# CUDA tests, edge_test_cuda_gemv --quick (incl. the fused GEMV cases) and its int4_32 / q8_0 bandwidth bench,
# bench/bench_cuda.py with the fused one-token GEMV (default) and, in the same call, EDGE_CUDA_FUSE=0 (the code before
# it), then the kernels per token of both. At most 8 files in $OUT: env_build.log test_cuda.log kernels.md bench.log
# bench_cuda.{json,md} before.json kcount.md.      WHEELS=../.whl bash bench/cuda/call_decode.sh [SHAPES] [RECIPES]
set -uo pipefail
OUT=${OUT:-bench/out/decode}; mkdir -p "$OUT"
SHAPES=${1:-135m,1b}; RECIPES=${2:-int4,q8}
. "$(dirname "$0")/build_gpu.sh"
{ echo "## edge_test_cuda_gemv --quick (summary)"; timeout 120 build/gpu/edge_test_cuda_gemv --quick > /tmp/gemv_quick.log 2>&1; echo "rc=$?"
  grep -c "^ok.*fused" /tmp/gemv_quick.log | sed 's/^/fused cases ok: /'; grep -E "^FAIL" /tmp/gemv_quick.log | head -10; tail -1 /tmp/gemv_quick.log
  if [ "${GEMV_BENCH:-0}" = 1 ]; then echo; echo "## edge_test_cuda_gemv --bench --dtypes int4_32,q8_0"
  timeout 150 build/gpu/edge_test_cuda_gemv --bench --dtypes int4_32,q8_0 --ncols 1; fi; } >"$OUT/kernels.md" 2>&1
el "kernels"; grep -E "rc=|ok:|passed|FAIL" "$OUT/kernels.md" | head -14
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -rfE ${TESTS:-tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py} >"$OUT/test_cuda.log" 2>&1
  el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20
fi
left=$(( ${DEADLINE_S:-560} - ($(date +%s) - t0) ))
timeout $left python3 bench/bench_cuda.py --out "$OUT" --shapes "$SHAPES" --recipes "$RECIPES" --no-hf --runs ${RUNS:-2} --moe-budget 0 \
  --edgert build/gpu/edgert >"$OUT/bench.log" 2>&1
el "bench (fused) rc=$?"; grep -E "^\| (135m|1b|4b)" "$OUT/bench_cuda.md" 2>/dev/null
timeout 60 python3 bench/cuda/count_kernels.py --shapes "$SHAPES" >"$OUT/kcount.md" 2>&1; el "kernel count"; cat "$OUT/kcount.md"
left=$(( ${DEADLINE_S:-560} - ($(date +%s) - t0) ))
mkdir -p /tmp/before
EDGE_CUDA_FUSE=0 timeout $left python3 bench/bench_cuda.py --out /tmp/before --shapes "${BEFORE_SHAPES:-$SHAPES}" --recipes "${BEFORE_RECIPES:-$RECIPES}" \
  --no-hf --runs ${RUNS_BEFORE:-1} --moe-budget 0 --edgert build/gpu/edgert >>"$OUT/bench.log" 2>&1
el "bench (EDGE_CUDA_FUSE=0) rc=$?"; grep -E "^\| (135m|1b|4b)" /tmp/before/bench_cuda.md 2>/dev/null
cp /tmp/before/bench_cuda.json "$OUT/before.json" 2>/dev/null
ls "$OUT"
