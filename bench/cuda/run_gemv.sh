#!/usr/bin/env bash
# bench/cuda/run_gemv.sh — on the GPU machine: build the CUDA GEMV test, run it, run the bandwidth
# bench. Logs and bench JSON go to $OUT (default bench/out/cuda). Usage (repo root):
#   bench/cuda/run_gemv.sh [test|bench|sanitize]...       (default: test bench)
# EDGE_CUDA_VARIANTS="GRAN:MINB ..." also builds and benches the block kernel with other tunings
# (-DEDGE_CUDA_GEMV_GRAN / _MINB) on EDGE_VARIANT_DTYPES.
set -uo pipefail
OUT=${OUT:-bench/out/cuda}
mkdir -p "$OUT"
BUILD=${BUILD:-build/cuda}
ARCH=${EDGE_CUDA_ARCH:-90}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(test bench)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv >"$OUT/build.log" 2>&1
head -2 "$OUT/build.log"
build() {  # dir, extra cuda flags
  cmake -S . -B "$1" -G Ninja -DEDGE_PYTHON=OFF -DEDGE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
    -DCMAKE_CUDA_FLAGS="$2" >>"$OUT/build.log" 2>&1 && ninja -C "$1" edge_test_cuda_gemv >>"$OUT/build.log" 2>&1
}
t0=$(date +%s)
build "$BUILD" "" || { tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
rc=0
for s in "${steps[@]}"; do
  case $s in
    test)
      "$BUILD/edge_test_cuda_gemv" >"$OUT/test.log" 2>&1; r=$?
      grep -E "^FAIL" "$OUT/test.log" | head -20; tail -1 "$OUT/test.log"; echo "test rc=$r"
      [ $r -ne 0 ] && rc=$r ;;
    bench)
      "$BUILD/edge_test_cuda_gemv" --bench --json "$OUT/bench_gemv.json" --ncols "${EDGE_BENCH_NCOLS:-1}" \
        >"$OUT/bench.md" 2>"$OUT/bench.log"; r=$?
      cat "$OUT/bench.md"; echo "bench rc=$r"
      [ $r -ne 0 ] && { tail -5 "$OUT/bench.log"; rc=$r; } ;;
    sanitize)
      timeout 150 compute-sanitizer --tool memcheck --print-limit 5 "$BUILD/edge_test_cuda_gemv" --quick \
        >"$OUT/memcheck.log" 2>&1; r=$?
      tail -3 "$OUT/memcheck.log"; echo "memcheck rc=$r"
      [ $r -ne 0 ] && rc=$r ;;
  esac
done
for v in ${EDGE_CUDA_VARIANTS:-}; do
  g=${v%%:*}; m=${v##*:}
  build "$BUILD-g$g-m$m" "-DEDGE_CUDA_GEMV_GRAN=$g -DEDGE_CUDA_GEMV_MINB=$m" || { echo "variant $v: build failed"; continue; }
  echo; echo "## variant GRAN=$g MINB=$m"
  "$BUILD-g$g-m$m/edge_test_cuda_gemv" --quick >>"$OUT/test.log" 2>&1 || { echo "variant $v: test FAILED"; rc=1; }
  tail -1 "$OUT/test.log"
  "$BUILD-g$g-m$m/edge_test_cuda_gemv" --bench --dtypes "${EDGE_VARIANT_DTYPES:-int4_32,q8_0,mxfp4}" \
    --json "$OUT/bench_gemv_g$g-m$m.json" 2>>"$OUT/bench.log" | tee -a "$OUT/variants.md" | tail -12
done
exit $rc
