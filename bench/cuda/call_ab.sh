#!/usr/bin/env bash
# bench/cuda/call_ab.sh — one device call (issue 9, s19): build for sm_90 plus the backend / kernel test with
# other compile-time defines (VARIANTS, e.g. "EDGE_CUDA_GEMV_GRAN=8 EDGE_CUDA_GEMV_MINB=2"), the kernel tests (REPEAT
# times, default 1: an intermittent case shows up across runs), the GPU
# tests, the int4_32 / q8_0 GEMV bench of each variant, and bench/cuda/profile_decode.py for each variant and
# with EDGE_CUDA_PDL=1. Files in $OUT: env_build.log kernels.md gemv.md test_cuda.log profile.md.
#   WHEELS=.whl VARIANTS="EDGE_CUDA_GEMV_GRAN=8" bash bench/cuda/call_ab.sh [SHAPES]
set -uo pipefail
OUT=${OUT:-bench/out/ab}; mkdir -p "$OUT"
SHAPES=${1:-135m,1b}; VARIANTS=${VARIANTS:-}
. "$(dirname "$0")/build_gpu.sh"
for v in $VARIANTS; do  # in the background, while the tests run
  ( cmake -S . -B build/gpu-${v//=/_} -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DEDGE_TESTS=ON -DEDGE_PYTHON=OFF \
      -DCMAKE_CUDA_FLAGS="-D$v" >/tmp/bv${v//=/_}.log 2>&1 && ninja -C build/gpu-${v//=/_} -j8 edge_cuda_backend edge_test_cuda_gemv >>/tmp/bv${v//=/_}.log 2>&1; echo "variant $v rc=$?" >>/tmp/bv${v//=/_}.log ) &
done
for i in $(seq "${REPEAT:-1}"); do
  timeout 100 build/gpu/edge_test_cuda_gemv --quick > /tmp/q.log 2>&1; echo "default run $i rc=$? $(tail -1 /tmp/q.log)"; grep -E "^FAIL" /tmp/q.log | head -8
done >"$OUT/kernels.md" 2>&1
el "kernel tests"; cat "$OUT/kernels.md"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -rfE ${TESTS:-tests/test_cuda.py tests/test_cuda_decode.py tests/test_cuda_attention.py} >"$OUT/test_cuda.log" 2>&1
  el "tests rc=$?: $(tail -1 "$OUT/test_cuda.log")"; grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -20
fi
wait; for v in $VARIANTS; do tail -1 /tmp/bv${v//=/_}.log; done
{ echo "## default"; timeout 80 build/gpu/edge_test_cuda_gemv --bench --dtypes int4_32,q8_0 --ncols 1 --mb 128
  for v in $VARIANTS; do echo "## -D$v"; [ -x build/gpu-${v//=/_}/edge_test_cuda_gemv ] && {
    timeout 20 build/gpu-${v//=/_}/edge_test_cuda_gemv --quick | tail -1; timeout 80 build/gpu-${v//=/_}/edge_test_cuda_gemv --bench --dtypes int4_32,q8_0 --ncols 1 --mb 128; }; done
} >"$OUT/gemv.md" 2>&1; el "gemv bench"
{ echo "# default"; timeout 120 python3 bench/cuda/profile_decode.py --shapes "$SHAPES" --tokens 64
  for v in $VARIANTS; do echo "# -D$v"; EDGE_CUDA_PLUGIN=$PWD/build/gpu-${v//=/_}/libedge_cuda_backend.so timeout 80 python3 bench/cuda/profile_decode.py --shapes "$SHAPES" --tokens 64; done
  echo "# EDGE_CUDA_PDL=1"; EDGE_CUDA_PDL=1 timeout 80 python3 bench/cuda/profile_decode.py --shapes "$SHAPES" --tokens 64
} 2>&1 | grep -v -i warn >"$OUT/profile.md"; el "profile"; grep -E "^(##|tokens|# )" "$OUT/profile.md"
