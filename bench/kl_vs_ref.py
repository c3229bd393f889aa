"""KL divergence of quantized .edge files from a reference .edge file on the benchmark text (llama-perplexity's
--kl-divergence measure): a lower-noise quality measure than perplexity for ranking recipes that differ by < 1 %.

Protocol (as bench_vs_llamacpp.py's perplexity): consecutive chunks of --ctx tokens of the text, BOS first when the
model adds one, only the second half of each chunk scored. Per scored position, with p the reference's and q the
candidate's softmax: KL(p || q) = Σ p (log p - log q); reported: mean KL, its standard error over chunks, the 99th
percentile, top-1 agreement with the reference, and the candidate's perplexity on the same positions. The reference
and every candidate run the same token ids (one tokenizer: the reference's).

    python bench/kl_vs_ref.py REF.edge CAND.edge [CAND2.edge ...] [--text bench/out/corpus.txt] [--chunks 32]
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - (np.log(np.exp(x - m).sum(axis=1, keepdims=True)) + m)


def compare(ref_path: str, cand_paths: list[str], text: str, ctx: int, chunks: int, threads: int | None) -> dict:
    from edgerun import Model

    kw = {"ctx": ctx} if threads is None else {"ctx": ctx, "threads": threads}
    ref = Model(ref_path, **kw)
    cands = [Model(p, **kw) for p in cand_paths]
    ids = ref.perplexity_chunks(text, ctx, chunks)  # the ids `edgerun perplexity` scores
    first = ctx // 2
    per = [{"kl": [], "kl_pos": [], "top1": 0, "nll": 0.0} for _ in cands]
    count = 0
    for chunk in ids:
        lp = log_softmax(ref.logits(chunk)[first:ctx - 1])
        p = np.exp(lp)
        targets = np.asarray(chunk[first + 1:ctx])
        rows = np.arange(len(targets))
        count += len(targets)
        for m, acc in zip(cands, per):
            lq = log_softmax(m.logits(chunk)[first:ctx - 1])
            kl = (p * (lp - lq)).sum(axis=1)
            acc["kl"].append(float(kl.mean()))
            acc["kl_pos"].append(kl)
            acc["top1"] += int((lq.argmax(axis=1) == lp.argmax(axis=1)).sum())
            acc["nll"] += float(-lq[rows, targets].sum())
    out = {"ref": ref_path, "ctx": ctx, "chunks": len(ids), "tokens": count, "candidates": []}
    for path, acc in zip(cand_paths, per):
        kls = np.asarray(acc["kl"])
        allpos = np.concatenate(acc["kl_pos"])
        out["candidates"].append({
            "file": path, "kl_mean": float(allpos.mean()),
            "kl_sem": float(kls.std(ddof=1) / math.sqrt(len(kls))) if len(kls) > 1 else float("nan"),
            "kl_p99": float(np.percentile(allpos, 99)), "top1": acc["top1"] / count,
            "ppl": math.exp(acc["nll"] / count)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref")
    ap.add_argument("cand", nargs="+")
    ap.add_argument("--text", default=os.path.join(BENCH_DIR, "out", "corpus.txt"))
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    res = compare(a.ref, a.cand, text, a.ctx, a.chunks, a.threads)
    print(f"reference {res['ref']}: {res['chunks']} chunks x {res['ctx']}, {res['tokens']} scored positions")
    print(f"{'file':<40} {'KL mean':>9} {'± sem':>8} {'KL p99':>8} {'top-1':>7} {'ppl':>8}")
    for c in res["candidates"]:
        print(f"{os.path.basename(c['file']):<40} {c['kl_mean']:9.5f} {c['kl_sem']:8.5f} {c['kl_p99']:8.4f} "
              f"{100 * c['top1']:6.2f}% {c['ppl']:8.4f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
