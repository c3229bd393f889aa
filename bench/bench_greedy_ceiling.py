"""How many of llama.cpp's greedy replies can any engine reproduce? The exact float64 pass as the judge.

    python bench/bench_greedy_ceiling.py [--gguf FILE.gguf] [--tokens 48] [--draws 2] [--json OUT.json]

bench_exact_vs_llamacpp.py counts the prompts (of its 20) whose greedy reply is the same in edgerun and in
llama.cpp. This asks what that count can be. Both engines round every matmul input to 8 bits per 32 values, so
each is the exact computation plus rounding noise. Greedy decoding with a model f reproduces a reply R to prompt
P exactly when argmax f(P + R[:i]) = R[i] at every step i (and EOS where R stopped), so one float64 forward pass
(f64_gguf.py) over P + R answers "would the exact computation have said R?":
  1. exact float64 vs llama.cpp's replies and vs edgerun's: how far each engine is from the exact model;
  2. --draws K: the float64 pass with edgerun's (q8x) or ggml's (q8_1) activation rounding, each input first
     perturbed by half an f32 ulp (a new seed per draw): how many of llama.cpp's replies one rounding scheme
     reproduces, draw to draw, when only sub-ulp noise differs;
  3. top-1 vs float64 on the distinct prompt positions (the 20 prompts share a system prompt: a position of it
     counts once, not 20 times).
Needs llama-cpp-python (as bench_exact_vs_llamacpp.py) and the gguf package; ~10 min on 2 cores (--draws 2).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter", "bench"):
    sys.path.insert(0, os.path.join(ROOT, sub))

HALF_ULP = 6e-8  # relative perturbation of a draw: below f32's resolution (2^-24 ≈ 6e-8)


def reproduced(w, prompts: list[list[int]], replies: list[list[int]], eos: int, n: int, **fwd) -> list[bool]:
    """Per prompt: does greedy decoding with f64_gguf.forward(**fwd) give exactly this reply?"""
    from f64_gguf import forward

    out = []
    for ids, rep in zip(prompts, replies):
        want = rep + ([eos] if len(rep) < n else [])
        got = forward(w, ids + rep, **fwd)[len(ids) - 1: len(ids) - 1 + len(want)].argmax(1)
        out.append(bool((got == np.array(want)).all()))
    return out


def distinct_positions(prompts: list[list[int]]) -> np.ndarray:
    """Indices (into the concatenated prompt positions) of the first occurrence of each distinct prefix."""
    seen, idx, off = set(), [], 0
    for ids in prompts:
        for t in range(len(ids)):
            if tuple(ids[:t + 1]) not in seen:
                seen.add(tuple(ids[:t + 1]))
                idx.append(off + t)
        off += len(ids)
    return np.array(idx)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draws", type=int, default=2, help="perturbed draws per rounding scheme (0: none)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from sysmeasure import cpu_has_amx
    from workers import deny_amx

    if cpu_has_amx():  # as bench_exact_vs_llamacpp.py
        deny_amx()
    import edgerun
    from edgeconv.export import export
    from edgerun.chat import template_for
    from llama_cpp import Llama
    import f64_gguf
    from bench_exact_vs_llamacpp import PROMPTS, default_gguf, llama_greedy

    g = a.gguf or default_gguf()
    tmp = tempfile.mkdtemp(prefix="greedy_ceiling")
    edge = os.path.join(tmp, "keep.edge")
    export(g, edge, recipe="keep")
    m = edgerun.Model(edge, threads=a.threads)
    llm = Llama(model_path=g, n_ctx=1024, n_threads=a.threads, n_batch=512, logits_all=True, verbose=False)
    tmpl, eos = template_for(m), m.eos_id
    prompts = [m.tokenize(tmpl.render([{"role": "user", "content": p}]), add_bos=False) for p in PROMPTS]

    replies = {"llama.cpp": [], "edgerun": []}
    logits = {"llama.cpp": [], "edgerun": []}
    for ids in prompts:
        got: list[int] = []
        for _ in m.generate(ids, a.tokens, temperature=0, repeat_penalty=1.0, stop_ids=[eos], tokens_out=got):
            pass
        replies["edgerun"].append([t for t in got if t != eos])
        replies["llama.cpp"].append(llama_greedy(llm, ids, a.tokens, eos))
        logits["edgerun"].append(m.logits(ids))
        llm.reset()
        llm.eval(ids)
        logits["llama.cpp"].append(np.array(llm.scores[:len(ids)], dtype=np.float32))
    same = sum(x == y for x, y in zip(replies["edgerun"], replies["llama.cpp"]))
    print(f"edgerun = llama.cpp: {same}/20 greedy replies")

    w = f64_gguf.load(g)
    res = {"edgerun_eq_llamacpp": same, "exact_reproduces": {}, "draws": [], "top1_distinct": {}}
    for eng, reps in replies.items():
        ok = reproduced(w, prompts, reps, eos, a.tokens)
        res["exact_reproduces"][eng] = sum(ok)
        print(f"exact float64 reproduces {eng}'s replies: {sum(ok)}/20 {''.join('=' if e else '.' for e in ok)}")
    for act in ("q8x", "q8_1") if a.draws else ():
        for seed in range(1, a.draws + 1):
            ok = reproduced(w, prompts, replies["llama.cpp"], eos, a.tokens, act=act, perturb=HALF_ULP, seed=seed)
            res["draws"].append({"act": act, "seed": seed, "reproduces_llamacpp": sum(ok)})
            print(f"float64 with {act} rounding, sub-ulp draw {seed}, reproduces llama.cpp's replies: {sum(ok)}/20")

    idx = distinct_positions(prompts)
    exact = np.concatenate([f64_gguf.forward(w, ids) for ids in prompts])[idx].argmax(1)
    for eng, lg in logits.items():
        top = np.concatenate(lg)[idx].argmax(1)
        res["top1_distinct"][eng] = float((top == exact).mean())
        print(f"top-1 = float64's on {len(idx)} distinct prompt positions: {eng} {100 * (top == exact).mean():.1f} %")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res | {"gguf": g, "tokens": a.tokens, "replies": replies}, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
