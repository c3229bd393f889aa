"""llama.cpp's CUDA backend beside edgerun on the same weights, in one run (issue 9 §5).

    python bench/cuda/llamacpp_cuda.py --make-tok TOK.gguf          # here: SmolLM2's tokenizer keys, no tensors
    LLAMA_CPP_PY=SRC/llama_cpp_python LLAMA_CPP_LIB_PATH=LIBDIR \\
    python bench/cuda/llamacpp_cuda.py --tok TOK.gguf --out DIR [--shapes 135m,1b] [--quants q4_0,q8_0]
                                       [--runs 3] [--reps 2] [--edgert PATH] [--work DIR] [--device cuda]

Per (shape, quant), shapes as bench/bench_cuda.py's (llama only):
  1. a llama GGUF at full size with random but valid Q4_0 / Q8_0 blocks in every matrix (the tied embedding
     too), one f16 scale per matrix so that a unit-RMS input gives outputs of RMS ~0.5, f32 norms = 1, and the
     tokenizer keys of TOK.gguf (SmolLM2's: both shapes have its 49152 tokens). Nothing is quantized.
  2. `edgeconv export GGUF --quant keep`: the same blocks byte for byte (int4_32 / q8_0) in an .edge file.
  3. llama.cpp in a child process (llama_cpp imported before numpy: the other order segfaults on the H200
     machine), every layer on the GPU, n_ctx 512, n_batch 512, with flash attention off (llama-cpp-python's
     default) and on: prefill = eval(256 prompt ids) after reset; decode = 128 evals of one token from Python
     (issue 9's method; llama_cpp keeps no logits for them). Before the timed runs, 8 greedy tokens after the
     prompt, beside edgerun's first 8 (the same weights give the same tokens, up to near-ties).
  4. edgerun on the .edge file through its Python API (bench_cuda.bench_python: prefill eval(256), decode
     generate(128), greedy on the GPU) and through `edgert bench` (no Python).
--reps rounds alternate llama.cpp and edgerun (each --runs timed runs after a warm-up), so both see the same
machine; medians over all runs. Output: DIR/llamacpp_cuda.json and DIR/llamacpp_cuda.md (also printed).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
PROMPT, GEN = 256, 128
SMOKE = dict(name="smoke", arch="llama", d_model=64, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=32, d_ff=128,
             vocab=49152, tied=True, rope_theta=1e4)  # --shapes smoke: a run in seconds, on any machine
QUANTS = {"q4_0": ("Q4_0", 18, 16, 21.5), "q8_0": ("Q8_0", 34, 32, 127 * 128 / 3)}  # type, block bytes, code bytes, E[q²]


def child(gguf_path: str, runs: int, flash: bool) -> None:
    """Runs in its own process: llama_cpp must be imported before numpy."""
    sys.path.insert(0, os.environ["LLAMA_CPP_PY"])
    import llama_cpp  # noqa: F401  (first)
    from llama_cpp import Llama

    llm = Llama(model_path=gguf_path, n_gpu_layers=-1, n_ctx=512, n_batch=512, n_ubatch=512, verbose=False,
                flash_attn=flash)
    import numpy as np

    ids = [int(t) for t in np.random.default_rng(0).integers(3, 30000, PROMPT)]
    llm.eval(ids)  # greedy first tokens (to compare with edgerun's on the same weights), then the timed runs
    first = []
    for _ in range(8):
        first.append(int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)))))
        llm.eval([first[-1]])
    pre, dec = [], []
    for r in range(runs + 1):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        for i in range(GEN):
            llm.eval([ids[i]])
        t2 = time.perf_counter()
        if r:
            pre.append(PROMPT / (t1 - t0))
            dec.append(GEN / (t2 - t1))
    print(json.dumps({"prefill_runs": pre, "decode_runs": dec, "first_tokens": first}))


def make_tok(out: str) -> None:
    import gguf
    from make_float_model import copy_keys, source_model_path

    w = gguf.GGUFWriter(out, "llama")
    copy_keys(gguf.GGUFReader(source_model_path()), w, keep=lambda k: k.startswith("tokenizer."))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def write_random_gguf(shape: dict, quant: str, tok: str, out: str, seed: int = 0) -> int:
    """The GGUF of step 1; returns its size in bytes."""
    import gguf
    import numpy as np
    from make_float_model import copy_keys

    qtype, bb, cb, eq2 = QUANTS[quant]
    rng = np.random.default_rng(seed)
    d, hd, f, v = shape["d_model"], shape["head_dim"], shape["d_ff"], shape["vocab"]
    w = gguf.GGUFWriter(out + ".tmp", "llama")
    w.add_context_length(4096)
    w.add_embedding_length(d)
    w.add_block_count(shape["n_layers"])
    w.add_feed_forward_length(f)
    w.add_head_count(shape["n_heads"])
    w.add_head_count_kv(shape["n_kv_heads"])
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(shape["rope_theta"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(v)
    w.add_file_type(int(getattr(gguf.LlamaFileType, "MOSTLY_" + qtype)))
    copy_keys(gguf.GGUFReader(tok), w)

    def matrix(name: str, rows: int, cols: int, rms_in: float = 1.0, target: float = 0.5) -> None:
        scale = np.float16(target / (rms_in * np.sqrt(eq2 * cols)))
        nb = cols // 32
        blk = np.empty((rows, nb, bb), np.uint8)
        blk[:, :, :2] = np.frombuffer(scale.tobytes(), np.uint8)
        if quant == "q4_0":
            blk[:, :, 2:] = rng.integers(0, 256, (rows, nb, cb), dtype=np.uint8)
        else:  # int8 codes in [-127, 127]
            blk[:, :, 2:] = rng.integers(-127, 128, (rows, nb, cb), dtype=np.int8).view(np.uint8)
        w.add_tensor(name, blk.reshape(rows, nb * bb), raw_dtype=getattr(gguf.GGMLQuantizationType, qtype))

    ones = np.ones(d, np.float32)
    # embedding rows are activations (RMS ~1): scale for cols = 1 gives entries of RMS ~1
    matrix("token_embd.weight", v, d, target=1.0 * np.sqrt(d))
    w.add_tensor("output_norm.weight", ones)
    qd, kvd = shape["n_heads"] * hd, shape["n_kv_heads"] * hd
    for i in range(shape["n_layers"]):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones)
        w.add_tensor(p + "ffn_norm.weight", ones)
        matrix(p + "attn_q.weight", qd, d)
        matrix(p + "attn_k.weight", kvd, d)
        matrix(p + "attn_v.weight", kvd, d)
        matrix(p + "attn_output.weight", d, qd)
        matrix(p + "ffn_gate.weight", f, d)
        matrix(p + "ffn_up.weight", f, d)
        matrix(p + "ffn_down.weight", d, f)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(out + ".tmp", out)
    return os.path.getsize(out)


def run_llama(gguf_path: str, runs: int, flash: bool) -> dict:
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", gguf_path, "--runs", str(runs)]
                       + (["--flash"] if flash else []), capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip()[-800:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def med(rows: list[dict], key: str) -> float | None:
    xs = [x for r in rows if "error" not in r for x in r[key]]
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child")
    ap.add_argument("--flash", action="store_true")
    ap.add_argument("--make-tok")
    ap.add_argument("--tok")
    ap.add_argument("--out")
    ap.add_argument("--shapes", default="135m,1b")
    ap.add_argument("--quants", default="q4_0,q8_0")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work", default="/tmp/llamacpp_cuda")
    ap.add_argument("--edgert", default=os.path.join(REPO, "build", "gpu", "edgert"))
    ap.add_argument("--device", default="cuda", help="edgerun's device (cpu: a smoke run without a GPU)")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.runs, a.flash)
        return 0
    for p in (BENCH, os.path.join(REPO, "runtime"), os.path.join(REPO, "converter"), REPO):
        sys.path.insert(0, p)
    if a.make_tok:
        make_tok(a.make_tok)
        return 0
    from bench_cuda import SHAPES, bench_edgert, bench_python, log

    SHAPES = dict(SHAPES, smoke=SMOKE)
    from edgeconv.export import export

    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for sk in a.shapes.split(","):
        s = SHAPES[sk]
        for q in a.quants.split(","):
            g, e = os.path.join(a.work, f"{sk}.{q}.gguf"), os.path.join(a.work, f"{sk}.{q}.edge")
            t0 = time.time()
            nbytes = write_random_gguf(s, q, a.tok, g)
            export(g, e, recipe="keep")
            log(f"{sk} {q}: gguf {nbytes / 1e6:.0f} MB, edge {os.path.getsize(e) / 1e6:.0f} MB ({time.time() - t0:.0f} s)")
            lc = {False: [], True: []}
            py, rt = [], []
            for _ in range(a.reps):
                for fl in (False, True):
                    lc[fl].append(run_llama(g, a.runs, fl))
                py.append(bench_python(e, s["vocab"], a.runs, device=a.device))
                if os.path.exists(a.edgert):
                    rt.append(bench_edgert(a.edgert, e, a.runs, device=a.device))
            row = {"shape": sk, "quant": q, "gguf_bytes": nbytes, "edge_bytes": os.path.getsize(e),
                   "llama": {("fa" if fl else "nofa"): {"prefill": med(v, "prefill_runs"), "decode": med(v, "decode_runs"),
                                                       "runs": v} for fl, v in lc.items()},
                   "llama_first_tokens": next((r["first_tokens"] for r in lc[False] if "error" not in r), None),
                   "edgerun_py": {"prefill": med(py, "prefill_runs"), "decode": med(py, "decode_runs"),
                                  "first_tokens": py[-1]["first_tokens"]},
                   "edgert": {"prefill": statistics.median(r["prefill_tok_s"] for r in rt if "error" not in r) if rt else None,
                              "decode": statistics.median(r["decode_tok_s"] for r in rt if "error" not in r) if rt else None,
                              "errors": [r["error"] for r in rt if "error" in r]}}
            rows.append(row)
            log(json.dumps({k: row[k] for k in ("shape", "quant", "edgerun_py", "llama_first_tokens")}) + " llama " +
                json.dumps({k: (v["prefill"], v["decode"]) for k, v in row["llama"].items()}))
            for p in (g, e):
                os.remove(p)
    md = table(rows)
    print(md)
    with open(os.path.join(a.out, "llamacpp_cuda.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "llamacpp_cuda.json"), "w") as f:
        json.dump({"rows": rows, "prompt": PROMPT, "gen": GEN, "runs": a.runs, "reps": a.reps}, f, indent=1)
    return 0


def table(rows: list[dict]) -> str:
    def f(x):
        return "—" if x is None else f"{x:,.0f}"

    out = ["| shape | weights | llama.cpp decode (FA off / on) | edgerun decode py / edgert | decode ratio (py vs best llama.cpp) "
           "| llama.cpp prefill (FA off / on) | edgerun prefill py / edgert | prefill ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L, P, T = r["llama"], r["edgerun_py"], r["edgert"]
        bd = max([x for x in (L["nofa"]["decode"], L["fa"]["decode"]) if x] or [0]) or None
        bp = max([x for x in (L["nofa"]["prefill"], L["fa"]["prefill"]) if x] or [0]) or None
        out.append(f"| {r['shape']} | {r['quant']} | {f(L['nofa']['decode'])} / {f(L['fa']['decode'])} | {f(P['decode'])} / "
                   f"{f(T['decode'])} | {P['decode'] / bd:.2f}× | {f(L['nofa']['prefill'])} / {f(L['fa']['prefill'])} | "
                   f"{f(P['prefill'])} / {f(T['prefill'])} | {P['prefill'] / bp:.2f}× |" if bd and bp and P["decode"] else
                   f"| {r['shape']} | {r['quant']} | {L} | {P} | — | | | |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
