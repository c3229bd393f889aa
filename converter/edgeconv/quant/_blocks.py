"""Helpers shared by the block quantizers: f16 scales, nibble packing, weighted block error.

Conventions of every family module: ``x`` is float32 [..., B] (one block per last-axis row);
``w`` is None (unweighted) or float32 broadcastable to ``x`` (per-element error weights, > 0);
a packed block is uint8 [..., block_bytes] in the exact byte layout of csrc/quant.h.
"""
from __future__ import annotations

import numpy as np

F16_MAX = np.float32(65504.0)


def f16_round(a: np.ndarray) -> np.ndarray:
    """float32 -> the nearest f16 value (round half to even) as float32, clamped to ±65504.

    Used for every f16 scale *before* codes are chosen, so the search measures the stored scale.
    """
    return np.clip(a, -F16_MAX, F16_MAX).astype(np.float16).astype(np.float32)


def f16_bytes(a: np.ndarray) -> np.ndarray:
    """float32 values already on the f16 grid -> uint8 [..., 2] little-endian f16."""
    return np.ascontiguousarray(a.astype("<f2")).view(np.uint8).reshape(a.shape + (2,))


def f16_from_bytes(b: np.ndarray) -> np.ndarray:
    """uint8 [..., 2] -> float32 [...] (exact widening)."""
    return np.ascontiguousarray(b).view("<f2")[..., 0].astype(np.float32)


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """uint8 codes [..., B] in 0..15 -> [..., B/2]: byte j = code j | code (j + B/2) << 4."""
    h = codes.shape[-1] // 2
    return (codes[..., :h] | (codes[..., h:] << 4)).astype(np.uint8)


def unpack_nibbles(b: np.ndarray) -> np.ndarray:
    """Inverse of pack_nibbles: uint8 [..., B/2] -> codes [..., B]."""
    return np.concatenate([b & 15, b >> 4], axis=-1)


# Speed notes (numpy on short last axes): einsum is ~5x faster than (a*b).sum(-1), and
# argmax + take_along_axis ~5x faster than max(-1); every search below leans on both.

def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ over the last axis of a·b (broadcasting), float32."""
    return np.einsum("...i,...i->...", a, b)


def wdot(a: np.ndarray, b: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Σ over the last axis of w·a·b (a·b when w is None)."""
    return dot(a, b) if w is None else dot(a * w, b)


def wsum(a: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Σ over the last axis of w·a (or of a when w is None)."""
    return a.sum(axis=-1) if w is None else dot(a, w)


def pick(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[..., idx[...]] for per-block indices idx (shape x.shape[:-1])."""
    return np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]


def block_max(x: np.ndarray) -> np.ndarray:
    return pick(x, x.argmax(axis=-1))


def block_min(x: np.ndarray) -> np.ndarray:
    return pick(x, x.argmin(axis=-1))


def block_err(x: np.ndarray, xhat: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Weighted squared error per block: Σ w (x - xhat)² over the last axis."""
    r = x - xhat
    return wdot(r, r, w)


def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b != 0, else 0 (no warnings)."""
    out = np.zeros(np.broadcast(a, b).shape, dtype=np.float32)
    np.divide(a, b, out=out, where=b != 0)
    return out


class Best:
    """Per-block running best (lowest error) of a few per-block parameters."""

    def __init__(self, err: np.ndarray, **params: np.ndarray):
        self.err = err
        self.p = params

    def offer(self, err: np.ndarray, **params: np.ndarray) -> None:
        better = err < self.err
        self.err = np.where(better, err, self.err)
        for k, v in params.items():
            self.p[k] = np.where(better, v, self.p[k])


def sym_scale_grid(x: np.ndarray, w: np.ndarray | None, ref: np.ndarray, grid, lo: int, hi: int) -> np.ndarray:
    """Least-squares scale of the best code set on a grid: for each t in `grid`, codes q = clip(rint(x·t/ref),
    lo, hi) and the scale d = <wx, q> / <q, q>_w; per block, the d whose codes explain x best (largest
    <wx,q>²/<q,q>_w). x: [..., B]; ref: [...] (the block's max magnitude, signed or not). Unrounded d."""
    wx = x if w is None else x * w
    top_score = np.full(ref.shape, -1.0, dtype=np.float32)
    top_d = np.zeros_like(ref)
    for t in grid:
        q = x * safe_div(np.float32(t), ref)[..., None]
        np.rint(q, out=q)
        np.clip(q, lo, hi, out=q)
        sxq = dot(wx, q)
        sqq = wdot(q, q, w)
        score = safe_div(sxq * sxq, sqq)
        better = score > top_score
        top_score = np.where(better, score, top_score)
        top_d = np.where(better, safe_div(sxq, sqq), top_d)
    return top_d
