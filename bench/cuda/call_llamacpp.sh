#!/usr/bin/env bash
# bench/cuda/call_llamacpp.sh — llama.cpp's CUDA backend beside edgerun on the same weights (issue 9 §5).
# PHASE=1 builds llama.cpp's shared libraries with CUDA (sm_90) from the slimmed llama-cpp-python 0.3.36 source in
# .lcp/ (bench/cuda/RESULTS.md "Session s20") beside edgerun's build, then runs the kernel tests and the GPU tests;
# PHASE=2 (a second call while the machine is still warm, so build/ survives) runs bench/cuda/llamacpp_cuda.py and
# the 4B MoE rows of bench/bench_cuda.py (MOE_TIMEOUT=0: skipped; MOE_BUDGET=0: resident only); PHASE=all does both in one call.
# While llama.cpp compiles, PHASE=1 / all can also run: with OLD_PATCH=.lcp/X.patch call_ab_tree.sh's A/B against
# the tree before that patch; with AB="ENV=a ENV=b" bench/bench_cuda.py once per setting (AB_SHAPES, 1 round);
# with PROFILE=1 bench/cuda/profile_decode.py; SKIP_LCP=1: no llama.cpp build. carry: [".whl", ".lcp"]. Files in $OUT. QUANTS: q4_0,q8_0.
#   PHASE=1 bash bench/cuda/call_llamacpp.sh; PHASE=2 bash bench/cuda/call_llamacpp.sh
set -uo pipefail
LCP=.lcp/llama_cpp_python-0.3.36
WHEELS=.whl
phase1() {
  [ "${SKIP_LCP:-0}" = 1 ] || ( cmake -S $LCP/vendor/llama.cpp -B build/lcp -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=ON -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF >"$OUT/lcp_build.log" 2>&1 &&
    ninja -C build/lcp -j${LCP_JOBS:-10} llama >>"$OUT/lcp_build.log" 2>&1; echo "llama.cpp build rc=$?" >>"$OUT/lcp_build.log" ) &
  . "$(dirname "$0")/build_gpu.sh"
  [ -n "${OLD_PATCH:-}" ] && { . "$(dirname "$0")/call_ab_tree.sh"; ab_build_old & old_pid=$!; }
  [ "${SKIP_TESTS:-0}" = 1 ] || { timeout 100 build/gpu/edge_test_cuda_gemv --quick > /tmp/q.log 2>&1; echo "kernel tests rc=$? $(tail -1 /tmp/q.log)"; grep -E "^FAIL" /tmp/q.log | head -8; } >"$OUT/kernels.md" 2>&1
  [ "${SKIP_TESTS:-0}" = 1 ] || el "kernel tests: $(head -1 "$OUT/kernels.md")"
  if [ "${SKIP_TESTS:-0}" != 1 ]; then
    timeout 240 python3 -m pytest -q -rfE tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py >"$OUT/test_cuda.log" 2>&1
    el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20
  fi
  [ -n "${OLD_PATCH:-}" ] && { wait $old_pid; el "$(tail -1 /tmp/old_build.log)"; ab_run; }
  for e in ${AB:-}; do
    mkdir -p "$OUT/ab_${e//=/_}"; env $e timeout ${AB_TIMEOUT:-80} python3 bench/bench_cuda.py --out "$OUT/ab_${e//=/_}" \
      --shapes "${AB_SHAPES:-135m,1b}" --recipes int4 --no-hf --runs 2 --moe-budget 0 --edgert build/gpu/edgert >/tmp/ab_$e.log 2>&1
    el "$e rc=$?"; grep -E "^\| (135m|1b|4b)" "$OUT/ab_${e//=/_}/bench_cuda.md" | cut -d'|' -f2-8
  done
  [ "${PROFILE:-0}" = 1 ] && { timeout 100 python3 bench/cuda/profile_decode.py --shapes 135m,1b --tokens 64 2>&1 | grep -v -i warn >"$OUT/profile.md"
    el "profile"; grep -E "^(##|tokens)" "$OUT/profile.md"; }
  wait; [ "${SKIP_LCP:-0}" = 1 ] || { el "$(tail -1 "$OUT/lcp_build.log")"; ls build/lcp/bin/*.so 2>/dev/null | head; }
}
phase2() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHEELS/*.whl >/dev/null 2>&1
  lib=$(dirname "$(find build/lcp -name libllama.so | head -1)")
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 EDGE_CUDA_PLUGIN=$PWD/runtime/edgerun/libedge_cuda_backend.so \
    LLAMA_CPP_PY=$PWD/$LCP LLAMA_CPP_LIB_PATH=$PWD/$lib LD_LIBRARY_PATH=$PWD/$lib:${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv > "$OUT/env_bench.log"
  timeout ${LC_TIMEOUT:-330} python3 bench/cuda/llamacpp_cuda.py --tok .lcp/tok.gguf --out "$OUT" --shapes ${SHAPES:-135m,1b} \
    --quants ${QUANTS:-q4_0,q8_0} --runs 3 --reps 2 --edgert build/gpu/edgert > "$OUT/llamacpp.log" 2>&1
  el "llamacpp_cuda rc=$?"; tail -8 "$OUT/llamacpp.log"
  [ "${MOE_TIMEOUT:-200}" = 0 ] && return
  mkdir -p /tmp/bb; timeout ${MOE_TIMEOUT:-200} python3 bench/bench_cuda.py --out /tmp/bb --shapes 4b --recipes int4 --no-hf --runs 2 \
    --moe-budget ${MOE_BUDGET:-0.25} --edgert build/gpu/edgert > "$OUT/bench_4b.log" 2>&1; el "bench 4b rc=$?"
  cp /tmp/bb/bench_cuda.json "$OUT/bench_4b.json" 2>/dev/null; cat /tmp/bb/bench_cuda.md 2>/dev/null; tail -5 "$OUT/bench_4b.log"
}
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
case "${PHASE:-1}" in
  1) phase1 ;;
  2) phase2 ;;
  all) phase1; phase2 ;;
esac
