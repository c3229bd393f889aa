"""The KV cache forms (--kv f32 | f16 | q8) on a real model: perplexity, KV bytes, greedy replies.

    python bench/bench_kv.py [--model FILE.edge] [--ctx 2048] [--chunks 4] [--tokens 48] [--threads 2] [--json OUT]

Default model: the default chat model (SmolLM2-135M-Instruct, the exact Q4_1 import). Perplexity follows
llama.cpp's protocol (Model.perplexity: chunks of --ctx tokens, the second half scored) on bench/corpus.py's
text; KV bytes are the memory plan's kv_cache term at --ctx positions; greedy replies are
bench_exact_vs_llamacpp.py's 20 prompts through the chat template, up to --tokens tokens, compared token by token
with the f32 cache's replies.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter", "bench"):
    sys.path.insert(0, os.path.join(ROOT, sub))

KV_TYPES = ("f32", "f16", "q8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import edgerun
    from edgerun.chat import template_for
    from edgerun.defaults import default_model
    from bench_exact_vs_llamacpp import PROMPTS
    from corpus import describe, load_text

    path = a.model or default_model(quiet=True)
    text = load_text()
    rows, replies = {}, {}
    for kv in KV_TYPES:
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
        rows[kv] = {"ppl": ppl["ppl"], "kv_cache_bytes": m.memory_plan["kv_cache"], "ppl_seconds": secs,
                    "kv_bytes_per_token": m.memory_plan["kv_cache"] / a.ctx}
    for kv in KV_TYPES:
        r = rows[kv]
        same = sum(x == y for x, y in zip(replies[kv], replies["f32"]))
        r["greedy_equal_to_f32"] = same
        r["delta_ppl_vs_f16"] = r["ppl"] / rows["f16"]["ppl"] - 1
        print(f"--kv {kv:3s}: ppl {r['ppl']:.4f} ({100 * (r['ppl'] / rows['f32']['ppl'] - 1):+.3f} % vs f32, "
              f"{100 * r['delta_ppl_vs_f16']:+.3f} % vs f16), KV {r['kv_cache_bytes'] / 2**20:.2f} MiB at {a.ctx} positions "
              f"({r['kv_bytes_per_token']:.0f} B/token), greedy replies equal to f32's {same}/{len(PROMPTS)}")
    print(f"model {path}, ctx {a.ctx}, {a.chunks} chunks of {describe()['name']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": path, "ctx": a.ctx, "chunks": a.chunks, "text": describe(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
