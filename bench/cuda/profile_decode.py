"""Where a decoded token's time goes on the CUDA backend: every kernel of N one-token steps, timed by CUPTI
(PyTorch's profiler traces all kernels of the process, ours included, graph nodes too), grouped by name.

    python bench/cuda/profile_decode.py [--shapes 135m,1b] [--recipe int4] [--tokens 32] [--work DIR]

Per shape a markdown table: kernel name, launches per token, µs per token, share of the kernel time; then
wall time per token (host clock around generate), GPU span per token (first kernel start → last kernel
end ÷ tokens) and GPU busy time per token (the union of kernel intervals): wall − busy is what the host,
the launches and the gaps between kernels cost. Random weights at full size (bench/cuda/random_edge.py),
prompt 256 as bench/bench_cuda.py.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
for sub in ("runtime", "converter", ""):
    sys.path.insert(0, os.path.join(REPO, sub))


def kernel_events(prof) -> list[tuple[str, float, float]]:
    """(name, start µs, end µs) of every device kernel the profiler saw."""
    out = []
    for e in prof.events():
        if getattr(e, "device_type", None) is None or "CUDA" not in str(e.device_type):
            continue
        if e.name.startswith(("Memcpy", "Memset", "cudaMemcpy")):
            continue
        out.append((e.name, float(e.time_range.start), float(e.time_range.end)))
    return out


def busy(intervals: list[tuple[float, float]]) -> float:
    tot, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                tot += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return tot + ((cur_e - cur_s) if cur_e is not None else 0.0)


def short(name: str, n: int = 70) -> str:
    name = name.replace("void ", "").replace("edge::", "").replace("(anonymous namespace)::", "")
    return name if len(name) <= n else name[: n - 1] + "…"


def profile_shape(path: str, vocab: int, tokens: int) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import bench_cuda
    import edgerun

    torch.zeros(1, device="cuda")  # CUPTI + the primary context up before the backend starts
    m = edgerun.Model(path, device="cuda", ctx=bench_cuda.PROMPT + 2 * tokens + 16)
    ids = bench_cuda.prompt_ids(vocab)
    m.eval(ids)
    for _ in m.generate(ids, max_tokens=8, temperature=0, stop_ids=[]):  # graph recorded, warm
        pass
    m.reset()
    m.eval(ids)
    out: list[int] = []
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in m.generate(ids, max_tokens=tokens, temperature=0, stop_ids=[], tokens_out=out):
            pass
        wall = time.perf_counter() - t0
    n = len(out)
    ev = kernel_events(prof)
    del m
    if not ev or not n:
        return f"(the profiler saw {len(ev)} kernels over {n} tokens)\n"
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for name, s, e in ev:
        groups[name].append(e - s)
    ktot = sum(sum(v) for v in groups.values())
    span = max(e for _, _, e in ev) - min(s for _, s, _ in ev)
    b = busy([(s, e) for _, s, e in ev])
    lines = [f"tokens {n}: wall {1e6 * wall / n:.1f} µs/token ({n / wall:.0f} tok/s); GPU span {span / n:.1f} µs/token; "
             f"GPU busy {b / n:.1f} µs/token; kernel sum {ktot / n:.1f} µs/token; kernels {len(ev) / n:.1f}/token", "",
             "| kernel | per token | µs/token | µs each (median) | share |", "|---|---|---|---|---|"]
    for name, v in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        v.sort()
        lines.append(f"| `{short(name)}` | {len(v) / n:.1f} | {sum(v) / n:.1f} | {v[len(v) // 2]:.2f} | "
                     f"{100 * sum(v) / ktot:.1f} % |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default="135m,1b")
    ap.add_argument("--recipe", default="int4")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--work", default="/tmp/edge_profile")
    a = ap.parse_args()
    import bench_cuda
    from random_edge import write_random_edge

    os.makedirs(a.work, exist_ok=True)
    tpl = bench_cuda.templates(a.work)
    for sk in a.shapes.split(","):
        s = bench_cuda.SHAPES[sk]
        path = os.path.join(a.work, f"{sk}.{a.recipe}.edge")
        if not os.path.exists(path):
            write_random_edge(tpl[(s["arch"], a.recipe)], path, s)
        print(f"## {sk} {a.recipe} (EDGE_CUDA_GRAPH={os.environ.get('EDGE_CUDA_GRAPH', '1')})\n", flush=True)
        print(profile_shape(path, s["vocab"], a.tokens), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
