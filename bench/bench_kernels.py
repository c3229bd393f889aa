#!/usr/bin/env python3
"""GEMV / GEMM throughput of the kernel table, per level and dtype, at SmolLM2-135M shapes.

    python bench/bench_kernels.py                      # main dtypes, every level above ref
    python bench/bench_kernels.py --dtypes all --levels ref,avx2,avx512,avx512vnni --json
    python bench/bench_kernels.py --vs-ggml            # add llama.cpp's ggml mul_mat (1 thread)

Each measurement runs one kernel call (gemm_fn, single thread) on a rows × n weight matrix and ncols
activation columns, repeatedly, and keeps the fastest of several timed batches of thread CPU time
(the machine may be shared, so wall time would count other processes). Reported: microseconds per
call, GB/s of weight bytes read (rows · row_bytes / time) and GFLOP/s (2 · rows · n · ncols / time).
The integer-dot dtypes take block_q8x activations, quantized once outside the timing (a separate line
reports quantize_q8x); ggml's mul_mat includes its own activation quantization.

The timing program is C++ (kernel calls have to be timed without the Python binding's copies); it is
compiled once into build/bench_kernels/ against the static core library of a CMake build
(--lib, default: the newest build/*/libedge_core.a), so build the tree first.
"""
import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (rows, n): SmolLM2-135M attn_q/attn_o, ffn_gate/ffn_up, ffn_down, output head (tied tok_embd).
SHAPES = [(576, 576), (1536, 576), (576, 1536), (49152, 576)]
NCOLS = [1, 64]
MAIN_DTYPES = ["int4_32", "int4_64", "int4_128", "q8_0", "f16"]
ALL_DTYPES = ["f32", "f16", "bf16", "q8_0", "int4_32", "int4_64", "int4_128", "int4a_32", "int4a_64",
              "int4a_128", "mxint8", "mxfp8", "mxfp6", "mxfp4", "nl4_32", "q5_0", "q4_k", "q6_k"]
BLOCK = {"f32": 1, "f16": 1, "bf16": 1, "q8_0": 32, "int4_32": 32, "int4_64": 64, "int4_128": 128, "int4a_32": 32,
         "int4a_64": 64, "int4a_128": 128, "mxint8": 32, "mxfp8": 32, "mxfp6": 32, "mxfp4": 32, "nl4_32": 32,
         "q5_0": 32, "q4_k": 256, "q6_k": 256}
# ggml types comparable to ours (same bits per weight class).
GGML_TYPES = ["q4_0", "q4_1", "q8_0", "f16", "f32"]

HARNESS = r"""
// Times gemm_fn calls of the kernel table. Args: min_seconds then specs "level,dtype,rows,n,ncols";
// prints one JSON object per spec (seconds per call, min over batches of thread CPU time).
#include <time.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include "common.h"
#include "kernels/kernels.h"
#include "quant.h"
using namespace edge;
static double now() { timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
template <class F> static double best_time(F&& f, double min_s) {
  f();
  int iters = 1;
  for (;;) { double t0 = now(); for (int i = 0; i < iters; ++i) f(); if (now() - t0 > min_s / 8 || iters > (1 << 24)) break; iters *= 2; }
  double best = 1e30;
  for (int rep = 0; rep < 8; ++rep) { double t0 = now(); for (int i = 0; i < iters; ++i) f(); double s = (now() - t0) / iters; if (s < best) best = s; }
  return best;
}
int main(int argc, char** argv) {
  double min_s = atof(argv[1]);
  for (int a = 2; a < argc; ++a) {
    char level[32], dname[32]; long rows, n, ncols;
    if (sscanf(argv[a], "%31[^,],%31[^,],%ld,%ld,%ld", level, dname, &rows, &n, &ncols) != 5) return 2;
    const KernelTable* t = kernels_for(level);
    int dt = -1;
    for (int i = 0; i < EDGE_DTYPE_COUNT; ++i) if (!strcmp(dtype_traits(i).name, dname)) dt = i;
    if (!t || dt < 0 || !t->gemm[dt].fn) { printf("{\"spec\": \"%s\", \"error\": \"unsupported\"}\n", argv[a]); continue; }
    const DTypeTraits& tr = dtype_traits(dt);
    const size_t rb = dtype_row_bytes(dt, n);
    std::vector<uint8_t> w(rb * rows);
    std::mt19937 g(1);
    for (auto& b : w) b = (uint8_t)g();
    // Valid, moderate scales and elements (no NaN/inf/denormal slow paths).
    for (long r = 0; r < rows; ++r) {
      uint8_t* row = w.data() + r * rb;
      if (tr.block == 1) {
        for (long i = 0; i < n; ++i) {
          float v = (float)((int)(g() % 2001) - 1000) * 1e-3f;
          if (dt == EDGE_DTYPE_F32) memcpy(row + 4 * i, &v, 4);
          else { uint16_t h = dt == EDGE_DTYPE_F16 ? f32_to_f16(v) : f32_to_bf16(v); memcpy(row + 2 * i, &h, 2); }
        }
        continue;
      }
      for (long b = 0; b < n / tr.block; ++b) {
        uint8_t* p = row + b * tr.block_bytes;
        if (dt == EDGE_DTYPE_MXINT8 || dt == EDGE_DTYPE_MXFP8 || dt == EDGE_DTYPE_MXFP6 || dt == EDGE_DTYPE_MXFP4) {
          p[0] = (uint8_t)(118 + g() % 8);
          if (dt == EDGE_DTYPE_MXFP8) for (int i = 1; i < 33; ++i) if ((p[i] & 0x7F) == 0x7F) p[i] = 0;
        } else {
          uint16_t h = f32_to_f16(1e-3f * (float)(1 + g() % 100));
          memcpy(dt == EDGE_DTYPE_Q6_K ? p + tr.block_bytes - 2 : p, &h, 2);  // q6_k's d is last
          if ((dt >= EDGE_DTYPE_INT4A_32 && dt <= EDGE_DTYPE_INT4A_128) || dt == EDGE_DTYPE_Q4_K) memcpy(p + 2, &h, 2);
        }
      }
    }
    std::vector<float> x((size_t)(n * ncols));
    for (auto& v : x) v = (float)((int)(g() % 2001) - 1000) * 1e-3f;
    std::vector<block_q8x> q((size_t)(n / 32 * ncols));
    for (long c = 0; c < ncols; ++c) t->quantize_q8x.fn(x.data() + c * n, q.data() + c * (n / 32), n);
    const void* X = tr.int_dot ? (const void*)q.data() : (const void*)x.data();
    const int64_t xs = tr.int_dot ? n / 32 : n;
    std::vector<float> y((size_t)(rows * ncols));
    const double s = best_time([&] { t->gemm[dt].fn(w.data(), (int64_t)rb, rows, n, X, xs, ncols, y.data(), rows); }, min_s);
    const double sq = best_time([&] { t->quantize_q8x.fn(x.data(), q.data(), n); }, min_s / 4);
    printf("{\"spec\": \"%s\", \"level\": \"%s\", \"dtype\": \"%s\", \"impl\": \"%s\", \"rows\": %ld, \"n\": %ld, \"ncols\": %ld, "
           "\"weight_bytes\": %zu, \"seconds\": %.9g, \"quantize_seconds\": %.9g}\n",
           argv[a], level, dname, t->gemm[dt].impl, rows, n, ncols, rb * rows, s, sq);
    fflush(stdout);
  }
  return 0;
}
"""

GGML_HARNESS = r"""
// Times ggml_mul_mat (1 thread) of llama.cpp's ggml. Args: min_seconds then specs "type,rows,n,ncols".
#include <time.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include "ggml.h"
#include "ggml-cpu.h"
static double now() { timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
int main(int argc, char** argv) {
  double min_s = atof(argv[1]);
  for (int a = 2; a < argc; ++a) {
    char tname[16]; long rows, n, ncols;
    if (sscanf(argv[a], "%15[^,],%ld,%ld,%ld", tname, &rows, &n, &ncols) != 4) return 2;
    ggml_type t = !strcmp(tname, "q4_0") ? GGML_TYPE_Q4_0 : !strcmp(tname, "q4_1") ? GGML_TYPE_Q4_1
                : !strcmp(tname, "q8_0") ? GGML_TYPE_Q8_0 : !strcmp(tname, "f16") ? GGML_TYPE_F16 : GGML_TYPE_F32;
    size_t need = ggml_row_size(t, n) * rows + (size_t)n * ncols * 4 + (size_t)rows * ncols * 4 + ((size_t)64 << 20);
    ggml_init_params ip = {need, nullptr, false};
    ggml_context* ctx = ggml_init(ip);
    ggml_tensor* W = ggml_new_tensor_2d(ctx, t, n, rows);
    ggml_tensor* X = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, ncols);
    std::mt19937 g(1);
    std::vector<float> wf((size_t)(n * rows));
    for (auto& v : wf) v = (float)((int)(g() % 2001) - 1000) * 1e-3f;
    ggml_quantize_chunk(t, wf.data(), W->data, 0, rows, n, nullptr);
    float* xd = (float*)X->data;
    for (long i = 0; i < n * ncols; ++i) xd[i] = (float)((int)(g() % 2001) - 1000) * 1e-3f;
    ggml_tensor* Y = ggml_mul_mat(ctx, W, X);
    ggml_cgraph* gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, Y);
    auto run = [&] { ggml_graph_compute_with_ctx(ctx, gf, 1); };
    run();
    int iters = 1;
    for (;;) { double t0 = now(); for (int i = 0; i < iters; ++i) run(); if (now() - t0 > min_s / 8) break; iters *= 2; }
    double best = 1e30;
    for (int rep = 0; rep < 8; ++rep) { double t0 = now(); for (int i = 0; i < iters; ++i) run(); double s = (now() - t0) / iters; if (s < best) best = s; }
    printf("{\"spec\": \"%s\", \"level\": \"ggml\", \"dtype\": \"%s\", \"impl\": \"ggml\", \"rows\": %ld, \"n\": %ld, \"ncols\": %ld, "
           "\"weight_bytes\": %zu, \"seconds\": %.9g}\n", argv[a], tname, rows, n, ncols, ggml_nbytes(W), best);
    fflush(stdout);
    ggml_free(ctx);
  }
  return 0;
}
"""


def compile_once(name, source, args):
    """Compile `source` (with extra g++ args) into build/bench_kernels/, reusing a matching binary."""
    out_dir = os.path.join(ROOT, "build", "bench_kernels")
    os.makedirs(out_dir, exist_ok=True)
    key = hashlib.sha256((source + "\0" + "\0".join(args)).encode()).hexdigest()[:16]
    exe = os.path.join(out_dir, f"{name}-{key}")
    deps = [a for a in args if a.endswith((".a", ".so"))]
    if os.path.exists(exe) and all(os.path.getmtime(exe) >= os.path.getmtime(d) for d in deps):
        return exe
    src = exe + ".cpp"
    with open(src, "w") as f:
        f.write(source)
    cmd = ["g++", "-O2", "-std=c++17", src, "-o", exe] + args
    subprocess.run(cmd, check=True)
    return exe


def find_lib(path):
    if path:
        return path
    libs = glob.glob(os.path.join(ROOT, "build", "*", "libedge_core.a"))
    if not libs:
        sys.exit("bench_kernels: no build/*/libedge_core.a; build the tree with CMake first (or pass --lib)")
    return max(libs, key=os.path.getmtime)


def run_specs(exe, min_time, specs):
    out = subprocess.run([exe, str(min_time)] + specs, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ggml_paths():
    try:
        import importlib.util
        spec = importlib.util.find_spec("llama_cpp")
    except Exception:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg = spec.submodule_search_locations[0]
    lib = os.path.join(pkg, "lib")
    inc = os.path.join(os.path.dirname(pkg), "include")
    if os.path.exists(os.path.join(inc, "ggml-cpu.h")) and glob.glob(os.path.join(lib, "libggml-cpu.so*")):
        return lib, inc
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="", help="comma list (default: every level above ref this CPU runs)")
    ap.add_argument("--dtypes", default=",".join(MAIN_DTYPES), help="comma list or 'all'")
    ap.add_argument("--ncols", default=",".join(map(str, NCOLS)), help="activation columns (1 = GEMV)")
    ap.add_argument("--shapes", default=",".join(f"{r}x{n}" for r, n in SHAPES), help="ROWSxN,...")
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds of timing per measurement")
    ap.add_argument("--lib", default="", help="libedge_core.a to link (default: newest build/*/)")
    ap.add_argument("--vs-ggml", action="store_true", help="also time llama.cpp's ggml_mul_mat (llama_cpp package)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = ap.parse_args()

    lib = find_lib(a.lib)
    exe = compile_once("bench_kernels", HARNESS, ["-I" + os.path.join(ROOT, "csrc"), lib, "-lpthread"])
    if a.levels:
        levels = a.levels.split(",")
    else:
        probe = run_specs(exe, 0.001, [f"{lv},f32,1,32,1" for lv in ("avx2", "avx512", "avx512vnni")])
        levels = [r["level"] for r in probe if "error" not in r]
    dtypes = ALL_DTYPES if a.dtypes == "all" else a.dtypes.split(",")
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    ncols = [int(c) for c in a.ncols.split(",")]

    specs = [f"{lv},{dt},{r},{n},{c}" for c in ncols for (r, n) in shapes for dt in dtypes for lv in levels
             if n % BLOCK[dt] == 0]
    results = run_specs(exe, a.min_time, specs)
    if a.vs_ggml:
        paths = ggml_paths()
        if paths is None:
            print("bench_kernels: llama_cpp (with ggml headers) not found; skipping --vs-ggml", file=sys.stderr)
        else:
            lib_dir, inc = paths
            gexe = compile_once("bench_ggml", GGML_HARNESS, ["-I" + inc, "-L" + lib_dir, "-lggml-base", "-lggml-cpu",
                                                               "-lggml", "-Wl,-rpath," + lib_dir])
            gspecs = [f"{t},{r},{n},{c}" for c in ncols for (r, n) in shapes for t in GGML_TYPES]
            results += run_specs(gexe, a.min_time, gspecs)

    for r in results:
        if "error" in r:
            continue
        s = r["seconds"]
        r["us"] = s * 1e6
        r["weight_gbps"] = r["weight_bytes"] / s / 1e9
        r["gflops"] = 2.0 * r["rows"] * r["n"] * r["ncols"] / s / 1e9
    if a.json:
        print(json.dumps({"lib": lib, "results": results}, indent=1))
        return
    print(f"# single thread; weights GB/s = weight bytes / time; lib {os.path.relpath(lib, ROOT)}")
    print(f"{'ncols':>5} {'rows x n':>12} {'dtype':>10} {'level':>11} {'us':>10} {'GB/s':>7} {'GFLOP/s':>8}  q8x us")
    for r in results:
        if "error" in r:
            print(f"  {r['spec']}: {r['error']}")
            continue
        q = f"{r['quantize_seconds'] * 1e6:7.2f}" if "quantize_seconds" in r and r["dtype"] not in ("f32", "f16", "bf16", "mxfp8") else ""
        print(f"{r['ncols']:>5} {str(r['rows']) + 'x' + str(r['n']):>12} {r['dtype']:>10} {r['level']:>11} "
              f"{r['us']:10.2f} {r['weight_gbps']:7.2f} {r['gflops']:8.1f}  {q}")


if __name__ == "__main__":
    main()
