"""The KV cache forms (--kv f32 | f16 | q8 | kivi4 | kivi2) on a real model: perplexity, KV bytes, decode speed, greedy replies.

    python bench/bench_kv.py [--model FILE.edge] [--ctx 2048] [--chunks 4] [--tokens 48] [--threads 2] [--kv f16,kivi4]
                             [--decode-at 1900] [--json OUT]

Default model: the default chat model (SmolLM2-135M-Instruct, the exact Q4_1 import). Perplexity follows
llama.cpp's protocol (Model.perplexity: chunks of --ctx tokens, the second half scored) on bench/corpus.py's
text; KV bytes are the memory plan's kv_cache term at --ctx positions; greedy replies are
bench_exact_vs_llamacpp.py's 20 prompts through the chat template, up to --tokens tokens, compared token by token
with the f32 cache's replies; decode tok/s is the median of --decode-tokens one-token steps after a prompt of
--decode-at tokens (clamped to the context) of the same text.

--speed instead: prefill tok/s of a --prefill-tokens (2048) prompt and decode tok/s at position --decode-at
(1900), edgerun with the blocked prefill attention (the default) and without it (EDGE_ATTN_BLOCK=0), both
on the f16 cache (with --kv: on each of those caches, blocked only, the forms interleaved within each run), and llama.cpp (llama-cpp-python, bench/workers.py llama_speed: n_batch = the prompt) on the
GGUF the default model was imported from — three times: n_ubatch = the prompt without and with flash attention,
and n_ubatch 512 with flash attention (llama.cpp's micro-batch default, its fast attention) — same threads, same
text (bench/corpus.py), one warm-up run then
--runs timed runs each (medians); the load average is printed beside (the machine may be shared).
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
    ap.add_argument("--speed", action="store_true", help="prefill / decode speed vs llama.cpp instead (see above)")
    ap.add_argument("--prefill-tokens", type=int, default=2048)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--no-llamacpp", action="store_true")
    a = ap.parse_args()
    a.kv_given = any(x == "--kv" or x.startswith("--kv=") for x in sys.argv[1:])
    kv_types = [k for k in KV_TYPES if k in {"f32", "f16", *a.kv.split(",")}]
    if a.speed:
        return speed(a)
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


def edge_speed(path: str, text_file: str, a, block: str, kvs: tuple[str, ...] = ("f16",)) -> dict:
    """edgerun in this process, one model per KV form, the forms interleaved within each run (a shared machine's
    load then falls on all of them alike): {kv: row}. EDGE_ATTN_BLOCK=block is read when a model is made."""
    import statistics

    import numpy as np

    import edgerun
    os.environ["EDGE_ATTN_BLOCK"] = block
    models = {kv: edgerun.Model(path, threads=a.threads, ctx=max(a.prefill_tokens, a.decode_at + a.gen_tokens), kv=kv)
              for kv in kvs}
    os.environ.pop("EDGE_ATTN_BLOCK")
    with open(text_file, encoding="utf-8") as f:
        ids = models[kvs[0]].tokenize(f.read(20000))[:a.prefill_tokens]
    assert len(ids) == a.prefill_tokens, "text too short for the prompt"
    pre = {kv: [] for kv in kvs}
    dec = {kv: [] for kv in kvs}
    for r in range(a.runs + 1):
        for kv, m in models.items():
            m.reset()
            t0 = time.perf_counter()
            m.eval(ids)
            t1 = time.perf_counter()
            m.reset()
            tok = int(np.argmax(m.eval(ids[:a.decode_at])))
            t2 = time.perf_counter()
            for _ in range(a.gen_tokens):
                tok = int(np.argmax(m.eval([tok])))
            t3 = time.perf_counter()
            if r:  # run 0: warm-up (page faults of the mapping, thread start)
                pre[kv].append(a.prefill_tokens / (t1 - t0))
                dec[kv].append(a.gen_tokens / (t3 - t2))
    return {kv: {"prefill_tok_s": statistics.median(pre[kv]), "decode_tok_s": statistics.median(dec[kv]),
                 "prefill_runs": pre[kv], "decode_runs": dec[kv], "kernels": m.kernel_level} for kv, m in models.items()}


def speed(a) -> int:
    from bench_vs_llamacpp import ensure_text, run_worker
    from edgerun.defaults import default_gguf, default_model
    from sysmeasure import loadavg

    path = a.model or default_model(quiet=True)
    text_file = ensure_text()
    rows = {}
    load = [loadavg()]
    if a.kv_given:  # the KV forms side by side, blocked prefill
        for kv, row in edge_speed(path, text_file, a, "", tuple(a.kv.split(","))).items():
            rows[f"edgerun --kv {kv} (blocked prefill attention)"] = row
            print(f"--kv {kv}: {row}", flush=True)
        load.append(loadavg())
    for name, block in (() if a.kv_given else (("edgerun (blocked prefill attention)", ""),
                                               ("edgerun (per-token attention, EDGE_ATTN_BLOCK=0)", "0"))):
        rows[name] = edge_speed(path, text_file, a, block)["f16"]
        load.append(loadavg())
        print(f"{name}: {rows[name]} (load average {load[-1]:.2f})", flush=True)
    if not a.no_llamacpp:  # llama.cpp as this bench always ran it, and with its own defaults plus flash attention
        gguf = default_gguf()
        base = {"model": gguf, "threads": a.threads, "runs": a.runs, "text": text_file}
        for name, cfg in (("n_ubatch = prompt, no flash attention", {}),
                          ("n_ubatch = prompt, flash attention", {"flash_attn": True}),
                          ("n_ubatch 512, flash attention", {"n_ubatch": 512, "flash_attn": True})):
            pre = run_worker("llama_speed", dict(base, prompt_tokens=a.prefill_tokens, gen_tokens=1, **cfg))
            dec = run_worker("llama_speed", dict(base, prompt_tokens=a.decode_at, gen_tokens=a.gen_tokens, **cfg))
            rows[f"llama.cpp {pre.get('llama_cpp_version', '')} ({name})"] = {
                "prefill_tok_s": pre["prefill_tok_s"], "decode_tok_s": dec["decode_tok_s"]}
            load.append(loadavg())
    print(f"{'engine':64s} prefill {a.prefill_tokens} tok/s   decode at {a.decode_at} tok/s")
    for k, r in rows.items():
        print(f"{k:64s} {r['prefill_tok_s']:18.1f}   {r['decode_tok_s']:14.2f}")
    print(f"threads {a.threads}, model {path}, load average during the runs {', '.join(f'{x:.2f}' for x in load)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": path, "threads": a.threads, "prefill_tokens": a.prefill_tokens, "decode_at": a.decode_at,
                       "gen_tokens": a.gen_tokens, "loadavg": load, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
