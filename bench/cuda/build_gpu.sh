# bench/cuda/build_gpu.sh — sourced by the device-call scripts (call_*.sh, device_run.sh) after they set OUT:
# defines t0 / el (elapsed-time log), installs the wheels in $WHEELS under /tmp/site, builds the tree for sm_90 with
# the C++ tests into build/gpu (log: $OUT/env_build.log), exports PYTHONPATH and EDGE_CUDA_PLUGIN; exits on a failed build.
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv; python3 --version; nproc
  [ -n "${WHEELS:-}" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
} >"$OUT/env_build.log" 2>&1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DEDGE_TESTS=ON \
  -Dpybind11_DIR="$(python3 -c 'import pybind11;print(pybind11.get_cmake_dir())')" >>"$OUT/env_build.log" 2>&1 &&
  ninja -C build/gpu -j16 >>"$OUT/env_build.log" 2>&1
rc=$?; el "build rc=$rc"; [ $rc -ne 0 ] && { grep -E "error" "$OUT/env_build.log" | head -20; tail -20 "$OUT/env_build.log"; exit 1; }
export EDGE_CUDA_PLUGIN=$PWD/runtime/edgerun/libedge_cuda_backend.so
