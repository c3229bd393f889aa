#!/usr/bin/env bash
# bench/cuda/device_run.sh — one device call (issue 9): build the whole tree for sm_90, run the CUDA tests,
# the GEMV launch-cost bench (plain vs programmatic dependent launch) and bench/bench_cuda.py. Everything
# goes to $OUT (at most 8 files come back): env_build.log, test_cuda.log, gemv.md, bench.log,
# bench_cuda.json, bench_cuda.md. Usage, from the tree's root on the GPU machine:
#   WHEELS=../.whl bash bench/cuda/device_run.sh [test] [gemv] [bench] [BENCH_ARGS...]
# (default: test gemv bench). WHEELS: a folder of wheels to install first (gguf), under /tmp/site.
set -uo pipefail
OUT=${OUT:-bench/out/cuda}
mkdir -p "$OUT"
steps=(); args=()
for a in "$@"; do case $a in test|gemv|bench) steps+=("$a");; *) args+=("$a");; esac; done
[ ${#steps[@]} -eq 0 ] && steps=(test gemv bench)
. "$(dirname "$0")/build_gpu.sh"
for s in "${steps[@]}"; do
  case $s in
    test)
      timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -rfE ${TESTS:-tests/test_cuda.py tests/test_cuda_decode.py} >"$OUT/test_cuda.log" 2>&1
      el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20 ;;
    gemv)
      timeout 120 build/gpu/edge_test_cuda_gemv --bench --dtypes int4_32,q8_0 --ncols 1 >"$OUT/gemv.md" 2>&1
      el "gemv bench rc=$?"; grep -E "launch floor|1536x768|4096x4096|2048x8192" "$OUT/gemv.md" | head -20 ;;
    bench)
      left=$(( ${DEADLINE_S:-570} - ($(date +%s) - t0) ))
      timeout $left python3 bench/bench_cuda.py --out "$OUT" --edgert build/gpu/edgert "${args[@]}" >"$OUT/bench.log" 2>&1
      el "bench rc=$?"; tail -16 "$OUT/bench.log" ;;
  esac
done
