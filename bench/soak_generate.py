"""Generation soak: N tokens of sampled generation in back-to-back sessions (the KV cache reset when the
context is full, as a long-running server does between conversations), with the resident set sampled
along the way. A leak in eval / sampling / detokenization shows as RSS growing with the token count.

    python bench/soak_generate.py [MODEL.edge] [--tokens 10000] [--ctx N] [--mem BUDGET] [--json]

MODEL defaults to the tiny dense seed of the fuzz corpus (tests/fuzz/corpus/edge_file/dense_q8.edge);
the MoE seed (moe_q8.edge) with --mem streams its experts. RSS start is taken after the first session
(allocator and page-cache warm-up), end after the last; the exit code is 1 when end - start exceeds
--max-growth MiB (default 4).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "runtime", "edgerun")) and any(
        n.startswith("_core") and n.endswith(".so") for n in os.listdir(os.path.join(ROOT, "runtime", "edgerun"))):
    sys.path.insert(0, os.path.join(ROOT, "runtime"))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "tests", "fuzz", "corpus", "edge_file", "dense_q8.edge"))
    ap.add_argument("--tokens", type=int, default=10000)
    ap.add_argument("--ctx", type=int, default=None, help="KV cache length (default: the model's)")
    ap.add_argument("--mem", default=None, help="memory budget (MoE: experts streamed under it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-growth", type=float, default=4.0, help="MiB of RSS growth that fails the soak")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import edgerun

    m = edgerun.Model(args.model, threads=args.threads, ctx=args.ctx, mem=args.mem)
    try:
        prompt = m.tokenize("Hello, how are you today?")
    except edgerun.EdgeError:  # a file without a tokenizer: token ids
        prompt = [1, 2, 3]
    done, sessions, samples, start = 0, 0, [], None
    t0 = time.time()
    while done < args.tokens:
        m.reset()
        out: list[int] = []
        for _ in m.generate(prompt, max_tokens=min(args.tokens - done, m.ctx - len(prompt) - 1), temperature=0.9,
                            seed=sessions, stop_ids=[], tokens_out=out):
            pass
        done += len(out)
        sessions += 1
        samples.append((done, round(rss_mib(), 2)))
        if start is None:
            start = rss_mib()
        if not out:
            print("soak: a session generated no token", file=sys.stderr)
            return 1
    end = rss_mib()
    secs = time.time() - t0
    res = {"model": args.model, "tokens": done, "sessions": sessions, "seconds": round(secs, 1),
           "tok_per_s": round(done / secs, 1), "rss_start_mib": round(start, 2), "rss_end_mib": round(end, 2),
           "rss_max_mib": max(s[1] for s in samples), "growth_mib": round(end - start, 2),
           "samples": samples[:: max(1, len(samples) // 10)], "moe_stats": m.moe_stats if m.is_moe else None}
    print(json.dumps(res) if args.json else
          f"{done} tokens in {sessions} sessions, {secs:.1f} s ({res['tok_per_s']} tok/s); RSS start {start:.1f} MiB, "
          f"end {end:.1f} MiB, max {res['rss_max_mib']:.1f} MiB, growth {end - start:+.2f} MiB"
          + (f"; experts {res['moe_stats']}" if m.is_moe else ""))
    return 0 if end - start <= args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
