#!/usr/bin/env python3
"""gemm_t (kernels/backward.h: dX += Wᵀ·dY on the stored weight) per dtype: the reference vs the best level.

    nice python bench/bench_backward_kernels.py            # table
    python bench/bench_backward_kernels.py --json          # the same numbers as JSON
    python bench/bench_backward_kernels.py --dtypes int4_32,q8_0 --repeat 10

Shapes: W 576×1536 and 1536×576 (rows × n: SmolLM2-135M's FFN up/down; the 128-blocks only the first),
dY with ncols 1, 64, 256 columns.
Per cell: the best of --repeat single-thread calls (after a warm-up) through `_core.bench_gemm_t`,
reported as GB/s of stored weight bytes read and GFLOP/s (2·rows·n·ncols / s). One thread, thread CPU time
(a loaded machine preempts long calls; CPU time leaves that out, not the cache sharing), so the numbers
are only as quiet as the machine is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter"):
    sys.path.insert(0, os.path.join(ROOT, sub))

from edgeconv.quant import quantize  # noqa: E402
from edgerun import _core  # noqa: E402

SHAPES = [(576, 1536), (1536, 576)]
NCOLS = [1, 64, 256]
DTYPES = [d for d in _core.DTYPES if d not in ("i32", "blob")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    best = _core.kernel_default_level()
    rng = np.random.default_rng(0)
    rows_out = []
    for dtype in args.dtypes.split(","):
        dt = _core.DTYPES[dtype][0]
        for rows, n in SHAPES:
            if n % _core.DTYPES[dtype][1]:
                continue  # int4_128 / int4a_128 rows need n % 128 == 0 (576 is not)
            w = quantize(rng.standard_normal((rows, n)).astype(np.float32) * 0.05, dtype).tobytes()
            for ncols in NCOLS:
                rec = {"dtype": dtype, "rows": rows, "n": n, "ncols": ncols, "weight_bytes": len(w)}
                for level in ("ref", best):
                    reps = max(1, args.repeat if ncols < 256 or level != "ref" else 2)
                    s = _core.bench_gemm_t(dt, w, rows, n, ncols, level, reps)
                    rec[level] = {"s": s, "GBps": len(w) / s / 1e9, "GFLOPs": 2.0 * rows * n * ncols / s / 1e9}
                rows_out.append(rec)
    if args.json:
        print(json.dumps({"best_level": best, "results": rows_out}, indent=1))
        return
    print(f"gemm_t, one thread; ref vs {best} (GB/s of stored weight bytes | GFLOP/s)")
    print(f"{'dtype':10} {'rows×n':>9} {'ncols':>5} | {'ref GB/s':>8} {'GFLOP/s':>7} | {best + ' GB/s':>15} {'GFLOP/s':>7} | speed-up")
    for r in rows_out:
        a, b = r["ref"], r[best]
        print(f"{r['dtype']:10} {r['rows']}×{r['n']:<4} {r['ncols']:>5} | {a['GBps']:8.2f} {a['GFLOPs']:7.2f} | "
              f"{b['GBps']:15.2f} {b['GFLOPs']:7.2f} | {a['s'] / b['s']:6.1f}x")


if __name__ == "__main__":
    main()
