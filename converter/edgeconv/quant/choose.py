"""Per-tensor dtype choice by measured error: quantize one weight matrix with each candidate dtype and keep
the one whose reconstruction has the least (importance-weighted) squared error.

    choose_dtype(w, candidates, importance=None) -> (dtype, {dtype: error})

w: float32 [rows, cols]; candidates: dtype names, all of whose blocks divide cols; importance: the same
per-column weights quantize() takes (None: unweighted). error = Σ_rows Σ_j wt_j (w - ŵ)², with wt the
element weights quantize() itself minimises (importance plus its 1 % floor, mean 1), so the comparison
is the objective each quantizer was built for. Ties keep the earlier candidate. Recipes use it only with
candidates of equal bytes per row (recipes.Recipe.choose), so the choice never changes the file size.
Rows are processed in chunks of about 2^20 elements (bounded memory); cost = one quantize + dequantize
per candidate.
"""
from __future__ import annotations

import numpy as np

from . import _element_weights, dequantize, quantize
from .dtypes import dtype_info

_CHUNK = 1 << 20


def choose_dtype(w: np.ndarray, candidates, importance: np.ndarray | None = None) -> tuple[str, dict[str, float]]:
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2 or not candidates:
        raise ValueError("choose_dtype: expected a 2-D matrix and at least one candidate dtype")
    rows, cols = w.shape
    errs = {}
    for dt in candidates:
        wts = _element_weights(importance, cols, dtype_info(dt).block)
        wts = None if wts is None else wts.reshape(1, cols)
        step = max(1, _CHUNK // cols)
        e = 0.0
        for r0 in range(0, rows, step):
            x = w[r0:r0 + step]
            r = dequantize(quantize(x, dt, importance=importance), dt, x.shape) - x
            r *= r
            e += float(r.sum(dtype=np.float64) if wts is None else (r @ wts[0].astype(np.float64)).sum())
        errs[dt] = e
    best = min(candidates, key=lambda d: errs[d])  # min keeps the first of equal errors
    return best, errs
