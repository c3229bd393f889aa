"""The KV cache forms (--kv f32 | f16 | q8 | kivi4 | kivi2) on a real model: perplexity, KV bytes, decode speed, greedy replies.

    python bench/bench_kv.py [--model FILE.edge] [--ctx 2048] [--chunks 4] [--tokens 48] [--threads 2] [--kv f16,kivi4]
                             [--decode-at 1900] [--json OUT]

Default model: the default chat model (SmolLM2-135M-Instruct, the exact Q4_1 import). Perplexity follows
llama.cpp's protocol (Model.perplexity: chunks of --ctx tokens, the second half scored) on bench/corpus.py's
text; KV bytes are the memory plan's kv_cache term at --ctx positions; greedy replies are
bench_exact_vs_llamacpp.py's 20 prompts through the chat template, up to --tokens tokens, compared token by token
with the f32 cache's replies; decode tok/s is the median of --decode-tokens one-token steps after a prompt of
--decode-at tokens (clamped to the context) of the same text.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter", "bench"):
    sys.path.insert(0, os.path.join(ROOT, sub))

KV_TYPES = ("f32", "f16", "q8", "kivi4", "kivi2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv", default=",".join(KV_TYPES), help="comma-separated KV types (f32 and f16 are always run: the baselines)")
    ap.add_argument("--decode-at", type=int, default=1900)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    kv_types = [k for k in KV_TYPES if k in {"f32", "f16", *a.kv.split(",")}]
    import edgerun
    from edgerun.chat import template_for
    from edgerun.defaults import default_model
    from bench_exact_vs_llamacpp import PROMPTS
    from corpus import describe, load_text

    path = a.model or default_model(quiet=True)
    text = load_text()
    rows, replies = {}, {}
    for kv in kv_types:
        m = edgerun.Model(path, threads=a.threads, ctx=a.ctx, kv=kv)
        t0 = time.time()
        ppl = m.perplexity(text, ctx=a.ctx, chunks=a.chunks)
        secs = time.time() - t0
        tmpl = template_for(m)
        outs = []
        for p in PROMPTS:
            ids = m.tokenize(tmpl.render([{"role": "user", "content": p}]), add_bos=False)
            got: list[int] = []
            for _ in m.generate(ids, a.tokens, temperature=0, repeat_penalty=1.0, stop_ids=[m.eos_id], tokens_out=got):
                pass
            outs.append(got)
        replies[kv] = outs
        at = min(a.decode_at, a.ctx - a.decode_tokens - 1)
        m.reset()
        logits = m.eval(m.tokenize(text)[:at])
        tok, steps = int(np.argmax(logits)), []
        for _ in range(a.decode_tokens):
            t0 = time.perf_counter()
            tok = int(np.argmax(m.eval([tok])))
            steps.append(time.perf_counter() - t0)
        rows[kv] = {"ppl": ppl["ppl"], "kv_cache_bytes": m.memory_plan["kv_cache"], "ppl_seconds": secs,
                    "kv_bytes_per_token": m.memory_plan["kv_cache"] / a.ctx, "decode_at": at,
                    "decode_tok_s": 1.0 / statistics.median(steps)}
    for kv in kv_types:
        r = rows[kv]
        same = sum(x == y for x, y in zip(replies[kv], replies["f32"]))
        r["greedy_equal_to_f32"] = same
        r["delta_ppl_vs_f16"] = r["ppl"] / rows["f16"]["ppl"] - 1
        print(f"--kv {kv:5s}: ppl {r['ppl']:.4f} ({100 * (r['ppl'] / rows['f32']['ppl'] - 1):+.3f} % vs f32, "
              f"{100 * r['delta_ppl_vs_f16']:+.3f} % vs f16), KV {r['kv_cache_bytes'] / 2**20:.2f} MiB at {a.ctx} positions "
              f"({r['kv_bytes_per_token']:.0f} B/token), decode {r['decode_tok_s']:.1f} tok/s at position {r['decode_at']}, "
              f"greedy replies equal to f32's {same}/{len(PROMPTS)}")
    print(f"model {path}, ctx {a.ctx}, {a.chunks} chunks of {describe()['name']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": path, "ctx": a.ctx, "chunks": a.chunks, "text": describe(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
