"""Soak test of `edgerun serve`: C clients (default 4) send streaming chat requests back to back for
--duration seconds against one server (--parallel C); the server's RSS / PSS is sampled every
--sample seconds and every request that does not end in [DONE] with usage counts as an error.

Passes (exit 0) when there were no errors and the RSS at the end is within --rss-slack of the RSS after
the first minute's warm-up (the pages of the mapping and the KV caches are touched by then: growth past
that is a leak). Output: one JSON line per sample on stderr, a summary on stdout and
bench/out/soak_serve.json. Loopback only; the loops end at the deadline (each request capped by --timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_serve import ROOT, TOPICS, load_average, one_request, proc_memory, start_edgerun  # noqa: E402


async def soak(url: str, model: str, pid: int, clients: int, duration: float, sample_s: float, max_tokens: int,
               timeout: float) -> dict:
    deadline = time.time() + duration
    counts = {"requests": 0, "errors": 0, "tokens": 0}
    errors: list[str] = []
    samples: list[dict] = []

    async def worker(w: int, client: httpx.AsyncClient):
        i = 0
        while time.time() < deadline:
            topic = TOPICS[(w * 7 + i) % len(TOPICS)]
            r = await one_request(client, url, model, f"Soak client {w}, request {i}: tell me about {topic}.",
                                  max_tokens, timeout)
            counts["requests"] += 1
            if "error" in r:
                counts["errors"] += 1
                if len(errors) < 5:
                    errors.append(r["error"])
            else:
                counts["tokens"] += r["tokens"]
            i += 1

    async def sampler():
        t0 = time.time()
        while time.time() < deadline:
            s = dict(t=round(time.time() - t0, 1), load=load_average(), **proc_memory(pid), **counts)
            samples.append(s)
            print(json.dumps(s), file=sys.stderr, flush=True)
            await asyncio.sleep(min(sample_s, max(0.0, deadline - time.time())))

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 2)) as client:
        await asyncio.gather(sampler(), *[worker(w, client) for w in range(clients)])
    samples.append(dict(t=round(duration, 1), load=load_average(), **proc_memory(pid), **counts))
    return {"counts": counts, "error_samples": errors, "samples": samples}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help=".edge / GGUF for edgerun serve (default: its default model)")
    ap.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--sample", type=float, default=10, help="seconds between RSS samples (default 10)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per request at most")
    ap.add_argument("--rss-slack", type=float, default=8.0, help="MiB the RSS may grow after the warm-up (default 8)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "soak_serve.json"))
    args = ap.parse_args(argv)
    proc, url = start_edgerun(args.model, args.clients, args.threads, args.ctx)
    try:
        model_id = httpx.get(url + "/v1/models", timeout=10).json()["data"][0]["id"]
        res = asyncio.run(soak(url, model_id, proc.pid, args.clients, args.duration, args.sample, args.max_tokens,
                               args.timeout))
    finally:
        proc.terminate()
        proc.wait(60)
    s = res["samples"]
    warm = next((x for x in s if x["t"] >= 60), s[len(s) // 2])  # after the first minute (or half way)
    end = s[-1]
    mib = lambda x, k: x.get(k, 0) / 2**20  # noqa: E731
    growth = mib(end, "VmRSS") - mib(warm, "VmRSS")
    res.update(duration_s=args.duration, clients=args.clients, rss_start_mib=round(mib(s[0], "VmRSS"), 1),
               rss_warm_mib=round(mib(warm, "VmRSS"), 1), rss_end_mib=round(mib(end, "VmRSS"), 1),
               rss_max_mib=round(max(mib(x, "VmRSS") for x in s), 1), rss_growth_after_warmup_mib=round(growth, 1),
               pss_end_mib=round(mib(end, "Pss"), 1))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    c = res["counts"]
    print(f"soak {args.duration:.0f} s, {args.clients} clients: {c['requests']} requests, {c['errors']} errors, "
          f"{c['tokens']} tokens; RSS {res['rss_start_mib']} MiB at start, {res['rss_warm_mib']} after warm-up "
          f"(t={warm['t']} s), {res['rss_end_mib']} at the end (max {res['rss_max_mib']}); PSS {res['pss_end_mib']} MiB")
    return 0 if c["errors"] == 0 and growth <= args.rss_slack else 1


if __name__ == "__main__":
    sys.exit(main())
