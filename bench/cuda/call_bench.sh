# bench/cuda/call_bench.sh — one device call (s19 call 6): call_ab.sh (build, kernel + GPU tests, profile), then
# bench/bench_cuda.py for 135m / 1b at int4 / q8, 3 rounds. Files in $OUT.   bash bench/cuda/call_bench.sh
set -uo pipefail
SKIP_TESTS=0 WHEELS=.whl OUT=$OUT bash bench/cuda/call_ab.sh 135m,1b
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 EDGE_CUDA_PLUGIN=$PWD/runtime/edgerun/libedge_cuda_backend.so
cp /tmp/q.log $OUT/kernels_full.log 2>/dev/null
mkdir -p /tmp/bb; timeout 200 python3 bench/bench_cuda.py --out /tmp/bb --shapes 135m,1b --recipes int4,q8 --no-hf --runs 3 --moe-budget 0 --edgert build/gpu/edgert > $OUT/bench.log 2>&1; echo "bench rc=$?"; grep -E "^\| (135m|1b)" /tmp/bb/bench_cuda.md; cp /tmp/bb/bench_cuda.json /tmp/bb/bench_cuda.md $OUT/
