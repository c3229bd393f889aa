#!/usr/bin/env python3
"""Expert cache policies (csrc/expert_cache_policy.h) on routing traces, and the expert reader's throughput.

    python bench/bench_cache_policy.py                       # simulation: lfru vs lru vs Belady, no I/O
    python bench/bench_cache_policy.py --trace routes.npy    # + a recorded trace, int [tokens, layers, k]
    python bench/bench_cache_policy.py --io                  # real ExpertStore on disk: read MB/s, 1 vs 2 threads
    python bench/bench_cache_policy.py --json

Simulation (default). Traces are replayed through `_core.cache_simulate`, which drives the very
ExpertCache code the store uses, with instantaneous reads: per token, every layer in order, the k routed
experts are acquired (pinned until the layer ends). Reported per cache size (slots, and % of all
layers × experts): hit rate of lfru, lru and Belady's offline optimum (evict the unit whose next use is
furthest away; same pinning) — the ceiling no online policy can pass. Synthetic traces, SmallThinker-4B
shape by default (32 layers × 32 experts, top-4):
  uniform   every layer picks k distinct experts uniformly at random
  zipf-S    per layer a random ranking of experts with Zipf(S) popularity (trained MoE routing is skewed:
            SmallThinker report §5.2, 70–80% of experts below 0.14 activation frequency)
  sticky-R  zipf-1.0 plus temporal locality: each expert of the previous token is kept w.p. R
With prefetch (--prefetch): a predictor names the true k experts with recall --recall plus --extra wrong
ones; the table then also shows reads per token (misses + prefetches), since prefetch trades reads for hits.

--io: writes a file of expert blobs (concat:int4_32, d_model 1536 × d_expert 768 = 1.90 MiB each by
default, SmallThinker-4B's expert), drops it from the page cache, and has a real ExpertStore read every
blob once (all prefetched at once, O_DIRECT unless --buffered), with 1 and 2 I/O threads (--threads); prints MB/s
(bytes / wall time of the whole batch) and the mean time per read. The file goes to --dir (default
bench/out/) and is deleted afterwards.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter"):
    sys.path.insert(0, os.path.join(ROOT, sub))

from edgerun import _core  # noqa: E402


# ---- traces -----------------------------------------------------------------------------------------------

def trace_uniform(T, L, E, k, rng):
    return np.argsort(rng.random((T, L, E)), axis=2)[:, :, :k].astype(np.int32)


def zipf_probs(L, E, s, rng):
    p = 1.0 / np.arange(1, E + 1) ** s
    out = np.stack([p[rng.permutation(E)] for _ in range(L)])
    return out / out.sum(axis=1, keepdims=True)


def sample_k(p, k, rng):
    """k distinct experts drawn by weight p (Gumbel top-k)."""
    with np.errstate(divide="ignore"):  # p = 0 (excluded experts) gives -inf: never drawn
        g = np.log(p) - np.log(-np.log(rng.random(p.shape)))
    return np.argsort(-g)[:k]


def trace_zipf(T, L, E, k, s, rng):
    P = zipf_probs(L, E, s, rng)
    return np.array([[sample_k(P[l], k, rng) for l in range(L)] for _ in range(T)], np.int32)


def trace_sticky(T, L, E, k, keep, rng):
    P = zipf_probs(L, E, 1.0, rng)
    out = np.empty((T, L, k), np.int32)
    for l in range(L):
        prev = sample_k(P[l], k, rng)
        for t in range(T):
            kept = [e for e in prev if rng.random() < keep]
            p = P[l].copy()
            p[kept] = 0
            fresh = sample_k(p / p.sum(), k - len(kept), rng) if len(kept) < k else []
            prev = np.array(list(kept) + list(fresh), np.int32)
            out[t, l] = prev
    return out


def predictions(tr, E, recall, extra, rng):
    """[T, L, k + extra]: each true expert kept w.p. recall (else a random wrong one), plus extra wrong ones."""
    T, L, k = tr.shape
    pred = np.full((T, L, k + extra), -1, np.int32)
    for t in range(T):
        for l in range(L):
            true = set(tr[t, l].tolist())
            wrong = [e for e in rng.permutation(E) if e not in true]
            names = [e if rng.random() < recall else wrong.pop() for e in tr[t, l]]
            names += [wrong.pop() for _ in range(min(extra, len(wrong)))]
            pred[t, l, :len(names)] = names
    return pred


# ---- Belady (offline optimum, same pinning as the simulator) -----------------------------------------------

def belady(tr, E, slots):
    T, L, k = tr.shape
    seq = [(l, int(e)) for t in range(T) for l in range(L) for e in tr[t, l]]
    n = len(seq)
    nxt = [n] * n
    last = {}
    for i in range(n - 1, -1, -1):
        nxt[i] = last.get(seq[i], n)
        last[seq[i]] = i
    cached = {}   # unit -> its next use
    heap = []     # (-next_use, unit), lazily invalidated
    hits = 0
    for i, u in enumerate(seq):
        layer_begin = i - i % k  # units of the current layer (positions layer_begin..i-1) stay pinned
        pinned = set(seq[layer_begin:i])
        if u in cached:
            hits += 1
        elif len(cached) >= slots:
            held = []
            while True:
                nu, v = heapq.heappop(heap)
                if v not in cached or cached[v] != -nu:
                    continue  # stale
                if v in pinned:
                    held.append((nu, v))
                    continue
                del cached[v]
                break
            for h in held:
                heapq.heappush(heap, h)
        cached[u] = nxt[i]
        heapq.heappush(heap, (-nxt[i], u))
    return hits / n


# ---- simulation bench --------------------------------------------------------------------------------------

def run_sim(args):
    rng = np.random.default_rng(args.seed)
    T, L, E, k = args.tokens, args.layers, args.experts, args.k
    traces = {"uniform": trace_uniform(T, L, E, k, rng)}
    for s in args.zipf:
        traces[f"zipf-{s:g}"] = trace_zipf(T, L, E, k, s, rng)
    for r in args.sticky:
        traces[f"sticky-{r:g}"] = trace_sticky(T, L, E, k, r, rng)
    if args.trace:
        tr = np.load(args.trace).astype(np.int32)
        if tr.ndim != 3:
            sys.exit(f"{args.trace}: need an int array [tokens, layers, k], got shape {tr.shape}")
        traces[os.path.basename(args.trace)] = tr
    rows = []
    for name, tr in traces.items():
        Tn, Ln, kn = tr.shape
        En = max(E, int(tr.max()) + 1)
        total = Ln * En
        pred = predictions(tr, En, args.recall, args.extra, rng) if args.prefetch else None
        for frac in args.cache:
            slots = max(kn, int(round(frac * total)))
            row = {"trace": name, "slots": slots, "cache_pct": 100.0 * slots / total}
            for pol in ("lfru", "lru"):
                r = _core.cache_simulate(tr, En, slots, pol, decay_tokens=args.decay)
                row[pol] = r["hit_rate"]
                if pred is not None:
                    rp = _core.cache_simulate(tr, En, slots, pol, pred=pred, decay_tokens=args.decay)
                    row[pol + "+pf"] = rp["hit_rate"]
                    row[pol + "+pf_reads"] = rp["reads"] / Tn
                    row[pol + "_reads"] = r["reads"] / Tn
            if not args.no_belady:
                row["belady"] = belady(tr, En, slots)
            rows.append(row)
    return rows


def print_sim(rows, args):
    cols = ["lfru", "lru"] + ([] if args.no_belady else ["belady"])
    if args.prefetch:
        cols += ["lfru+pf", "lru+pf", "lfru_reads", "lfru+pf_reads", "lru+pf_reads"]
    print(f"# hit rate per routed expert ({args.tokens} tokens; {args.layers} layers x {args.experts} experts, top-{args.k}"
          + (f"; prefetch recall {args.recall}, +{args.extra} wrong" if args.prefetch else "") + "; *_reads = reads/token)")
    print(f"{'trace':<14}{'slots':>6}{'cache':>7}" + "".join(f"{c:>15}" for c in cols))
    for r in rows:
        cells = "".join(f"{r[c]:>15.1f}" if c.endswith("reads") else f"{100 * r[c]:>14.1f}%" for c in cols)
        print(f"{r['trace']:<14}{r['slots']:>6}{r['cache_pct']:>6.0f}%{cells}")


# ---- I/O bench ----------------------------------------------------------------------------------------------

def write_blob_file(path, n_blobs, d_model, d_expert):
    """One MoE layer of n_blobs experts in concat:int4_32 (random codes, scale 0.01); returns the blob size."""
    from edgeconv import format as fmt
    rng = np.random.default_rng(0)
    offs, pos = [], 0
    for rows, cols in ((d_expert, d_model), (d_expert, d_model), (d_model, d_expert)):
        pos = (pos + 63) // 64 * 64  # each matrix at a multiple of 64 (docs/MOE.md §3)
        offs.append((pos, rows * cols // 32))
        pos += rows * cols // 32 * 18
    blob = np.zeros((pos + 4095) // 4096 * 4096, np.uint8)
    for off, nb in offs:
        blk = rng.integers(0, 256, (nb, 18), dtype=np.uint8)
        blk[:, :2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
        blob[off:off + nb * 18] = blk.reshape(-1)
    with fmt.EdgeWriter(path, alignment=4096) as w:
        for key, v in {"llm.n_layers": 1, "llm.d_model": d_model, "moe.n_experts": n_blobs, "moe.n_experts_used": 1,
                       "moe.d_expert": d_expert, "moe.layers": [1], "moe.variants": ["int4"],
                       "moe.variant_blob": ["i4"], "moe.variant_layout": ["concat:int4_32"]}.items():
            w.add_metadata(key, v)
        for e in range(n_blobs):
            w.declare(f"blk.0.exp.{e}.i4", "blob", (blob.size,))
        w.begin()
        for e in range(n_blobs):
            w.write_tensor(f"blk.0.exp.{e}.i4", blob)
    return blob.size


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_io(args):
    d = args.dir or os.path.join(ROOT, "bench", "out")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "bench_expert_io.edge")
    rows = []
    try:
        blob_bytes = write_blob_file(path, args.blobs, args.d_model, args.d_expert)
        for threads in args.threads:
            for rep in range(args.repeat):
                store = _core.ExpertStore(path, (args.blobs + 1) * blob_bytes, io_threads=threads,
                                          direct_io=not args.buffered)
                drop_cache(path)
                t0 = time.perf_counter()
                store.prefetch(0, list(range(args.blobs)))
                while store.stats()["reads"] < args.blobs:
                    time.sleep(0.0005)
                wall = time.perf_counter() - t0
                s = store.stats()
                rows.append({"threads": threads, "rep": rep, "direct_io": store.direct_io, "blob_bytes": blob_bytes,
                             "reads": s["reads"], "bytes": s["bytes_read"], "wall_s": wall,
                             "MB_s": s["bytes_read"] / wall / 1e6, "ms_per_read": 1e3 * s["io_busy_s"] / s["reads"]})
                del store
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return rows


def print_io(rows, args):
    print(f"# expert reads: {args.blobs} blobs of {rows[0]['blob_bytes'] / 2**20:.2f} MiB, "
          f"{'O_DIRECT' if rows[0]['direct_io'] else 'buffered + DONTNEED'}, all queued at once")
    print(f"{'threads':>8}{'rep':>5}{'MB/s':>10}{'ms/read':>10}{'wall s':>9}")
    for r in rows:
        print(f"{r['threads']:>8}{r['rep']:>5}{r['MB_s']:>10.0f}{r['ms_per_read']:>10.2f}{r['wall_s']:>9.3f}")
    for t in args.threads:
        best = max(r["MB_s"] for r in rows if r["threads"] == t)
        print(f"best, {t} thread{'s' if t > 1 else ''}: {best:.0f} MB/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--cache", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75],
                    help="cache sizes as fractions of layers x experts")
    ap.add_argument("--zipf", type=float, nargs="*", default=[0.8, 1.2])
    ap.add_argument("--sticky", type=float, nargs="*", default=[0.5])
    ap.add_argument("--trace", help="a recorded trace (.npy, int [tokens, layers, k])")
    ap.add_argument("--decay", type=int, default=64, help="lfru decay_tokens")
    ap.add_argument("--prefetch", action="store_true", help="also replay with a predictor's prefetches")
    ap.add_argument("--recall", type=float, default=0.9)
    ap.add_argument("--extra", type=int, default=4)
    ap.add_argument("--no-belady", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--io", action="store_true", help="measure the real store's read throughput instead")
    ap.add_argument("--blobs", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=1536)
    ap.add_argument("--d-expert", type=int, default=768)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="--io: I/O thread counts")
    ap.add_argument("--buffered", action="store_true", help="--io without O_DIRECT (pread + DONTNEED)")
    ap.add_argument("--dir", help="--io: where to write the temporary file (default bench/out/)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run_io(args) if args.io else run_sim(args)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif args.io:
        print_io(rows, args)
    else:
        print_sim(rows, args)


if __name__ == "__main__":
    main()
