#!/usr/bin/env bash
# bench/cuda/call_ab_env.sh — one device call: build for sm_90, the GPU tests, then bench/bench_cuda.py (135m / 1b,
# int4 / q8, 3 rounds) once per environment setting in AB (default "EDGE_CUDA_SPLIT_COMBINE=1 EDGE_CUDA_SPLIT_COMBINE=0"),
# interleaved in the same call, so that the A/B is on one machine. Files in $OUT.   WHEELS=.whl bash bench/cuda/call_ab_env.sh
set -uo pipefail
OUT=${OUT:-bench/out/abenv}; mkdir -p "$OUT"
AB=${AB:-"EDGE_CUDA_SPLIT_COMBINE=1 EDGE_CUDA_SPLIT_COMBINE=0"}
. "$(dirname "$0")/build_gpu.sh"
timeout 150 python3 -m pytest -q -rfE tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py >"$OUT/test_cuda.log" 2>&1
el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -10
for round in 1 2; do for e in $AB; do
  d=/tmp/ab_${e//=/_}_$round; mkdir -p $d
  env $e timeout 100 python3 bench/bench_cuda.py --out $d --shapes 135m,1b --recipes int4,q8 --no-hf --runs 3 --moe-budget 0 \
    --edgert build/gpu/edgert >"$d/log" 2>&1; el "$e round $round rc=$?"; grep -E "^\| (135m|1b)" $d/bench_cuda.md | cut -d'|' -f2-8
  cp $d/bench_cuda.json "$OUT/${e//=/_}_$round.json"
done; done
