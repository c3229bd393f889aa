"""INT4 block types with f16 scales: symmetric int4_B (x = d·(q - 8)) and asymmetric int4a_B
(x = d·q + m), B = 32, 64, 128, split-half nibble order (csrc/quant.h).

Scale search, per block and vectorised over all blocks. w = per-element error weights; the
objective is Σ w (x - x̂)², and every final comparison uses the f16-rounded scale/offset that is
actually stored. Codes are always the nearest (round half to even, clamped) for the stored scale, so
only the scales are searched and the codes are computed once at the end.

int4_B  candidates d = M / t, M the signed max-magnitude element, t in _SYM_T (t = -8 is Q4_0's
        d = max / -8: the largest element takes code -8, the longer side of [-8, 7]; positive t map
        it to +t instead). Each candidate's codes c = clamp(rint(x / d), -8, 7) are scored by their
        least-squares error Σwx² - (Σwxc)²/Σwc²; the best code set's least-squares scale
        Σwxc / Σwc² is rounded to f16, then one more least-squares pass on its re-rounded codes.
        Each result replaces the plain Q4_0 scale only where its stored error is lower.
int4a_B min/max grid (llama.cpp make_qkx2 style): inverse scales (15 + δ) / (max - min) for δ in
        _ASYM_DELTA give codes l = clamp(rint(is·(x - min)), 0, 15); each code set gets its joint
        weighted least-squares (d, m) and error; the best is rounded to f16, then one more joint
        least-squares pass on its re-rounded codes (m re-solved for the f16-rounded d). Each result
        replaces the plain Q4_1 rule d = (max - min)/15, m = min only where its stored error is lower.
"""
from __future__ import annotations

import numpy as np

from ._blocks import (Best, sym_scale_grid, block_err, block_max, block_min, dot, f16_bytes, f16_from_bytes, f16_round, pack_nibbles,
                      pick, safe_div, unpack_nibbles, wdot, wsum)

_SYM_T = (-8.5, -8.25, -8.0, -7.75, -7.5, -7.25, -7.0, -6.5, 6.5, 7.0, 7.5)
_ASYM_DELTA = tuple(float(v) for v in np.round(np.arange(-1.0, 1.001, 0.2), 3))


# ---- symmetric ----

def int4_codes(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Nearest codes clamp(rint(x · (1/d)), -8, 7) as float32; x [..., B], d [...] (d = 0 gives 0)."""
    c = x * safe_div(np.float32(1), d)[..., None]
    np.rint(c, out=c)
    return np.clip(c, -8, 7, out=c)


_sym_codes = int4_codes  # the older private name (tests/test_quant.py uses it)


def int4_scale(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """x: float32 [..., B] -> the f16-grid scale d [...] of least stored weighted error (search above)."""
    vmax = pick(x, np.abs(x).argmax(axis=-1))  # signed max-magnitude element
    d = f16_round(vmax / np.float32(-8))  # Q4_0
    best = Best(block_err(x, d[..., None] * int4_codes(x, d), w), d=d)

    wx = x if w is None else x * w
    d = f16_round(sym_scale_grid(x, w, vmax, _SYM_T, -8, 7))
    for it in range(2):
        c = int4_codes(x, d)
        best.offer(block_err(x, d[..., None] * c, w), d=d)
        if it == 0:
            d = f16_round(safe_div(dot(wx, c), wdot(c, c, w)))
    return best.p["d"]


def pack_int4(d: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """d [...] on the f16 grid, codes [..., B] in -8..7 -> packed [..., 2 + B/2]."""
    return np.concatenate([f16_bytes(d), pack_nibbles((codes + 8).astype(np.uint8))], axis=-1)


def quantize_int4(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """x: float32 [..., B] -> packed [..., 2 + B/2]."""
    d = int4_scale(x, w)
    return pack_int4(d, int4_codes(x, d))


def dequantize_int4(b: np.ndarray) -> np.ndarray:
    """packed [..., 2 + B/2] -> float32 [..., B], exactly as dequant_int4_B_ref."""
    d = f16_from_bytes(b[..., 0:2])
    q = unpack_nibbles(b[..., 2:]).astype(np.float32) - np.float32(8)
    return d[..., None] * q


# ---- asymmetric ----

def int4a_codes(x: np.ndarray, d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Nearest codes clamp(rint((x - m) · (1/d)), 0, 15) as float32; x [..., B], d, m [...]."""
    l = x - m[..., None]
    l *= safe_div(np.float32(1), d)[..., None]
    np.rint(l, out=l)
    return np.clip(l, 0, 15, out=l)


_asym_codes = int4a_codes  # the older private name (tests/test_quant.py uses it)


def _asym_xhat(d: np.ndarray, m: np.ndarray, l: np.ndarray) -> np.ndarray:
    return d[..., None] * l + m[..., None]  # float32, as the C++ dequant: d*q + m


def _asym_ls(l, x, wx, w, sw, sx):
    """Joint weighted least squares for x ≈ d·l + m on fixed codes l, float64:
    (d, m, Σwl, Σwl², Σwlx, ok); ok is False where the codes are (nearly) constant."""
    sl = wsum(l, w).astype(np.float64)
    sll = wdot(l, l, w).astype(np.float64)
    slx = dot(wx, l).astype(np.float64)
    det = sw * sll - sl * sl
    ok = det > 1e-9 * sw * sll
    det = np.where(ok, det, 1.0)
    d = np.where(ok, (sw * slx - sl * sx) / det, 0.0)
    m = np.where(ok, (sll * sx - sl * slx) / det, sx / sw)
    return d, m, sl, sll, slx, ok


def int4a_params(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """x: float32 [..., B] -> f16-grid (d, m), each [...], of least stored weighted error (search above)."""
    mn = block_min(x)
    rng = block_max(x) - mn
    d, m = f16_round(rng / np.float32(15)), f16_round(mn)  # Q4_1
    best = Best(block_err(x, _asym_xhat(d, m, int4a_codes(x, d, m)), w), d=d, m=m)

    wx = x if w is None else x * w
    sw = np.full(mn.shape, float(x.shape[-1])) if w is None else np.broadcast_to(w, x.shape).sum(-1, dtype=np.float64)
    sx = wsum(x, w).astype(np.float64)
    sxx = dot(wx, x).astype(np.float64)
    top_err = np.full(mn.shape, np.inf)
    top_d = np.zeros(mn.shape)
    top_m = np.zeros(mn.shape)
    xs = x - mn[..., None]
    l = np.empty_like(x)
    for delta in _ASYM_DELTA:
        np.multiply(xs, safe_div(np.float32(15 + delta), rng)[..., None], out=l)
        np.rint(l, out=l)
        np.clip(l, 0, 15, out=l)
        d, m, sl, sll, slx, ok = _asym_ls(l, x, wx, w, sw, sx)
        err = sxx - 2 * d * slx - 2 * m * sx + d * d * sll + 2 * d * m * sl + m * m * sw
        better = ok & (err < top_err)
        top_err = np.where(better, err, top_err)
        top_d = np.where(better, d, top_d)
        top_m = np.where(better, m, top_m)
    d, m = f16_round(top_d.astype(np.float32)), f16_round(top_m.astype(np.float32))
    for it in range(2):
        l = int4a_codes(x, d, m)
        best.offer(block_err(x, _asym_xhat(d, m, l), w), d=d, m=m)
        if it == 0:
            d_ls, _, sl, _, _, ok = _asym_ls(l, x, wx, w, sw, sx)
            d = f16_round(np.where(ok, d_ls, d).astype(np.float32))
            m = f16_round(((sx - d * sl) / sw).astype(np.float32))
    return best.p["d"], best.p["m"]


def pack_int4a(d: np.ndarray, m: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """d, m [...] on the f16 grid, codes [..., B] in 0..15 -> packed [..., 4 + B/2]."""
    return np.concatenate([f16_bytes(d), f16_bytes(m), pack_nibbles(codes.astype(np.uint8))], axis=-1)


def quantize_int4a(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """x: float32 [..., B] -> packed [..., 4 + B/2]."""
    d, m = int4a_params(x, w)
    return pack_int4a(d, m, int4a_codes(x, d, m))


def dequantize_int4a(b: np.ndarray) -> np.ndarray:
    """packed [..., 4 + B/2] -> float32 [..., B], exactly as dequant_int4a_B_ref."""
    d = f16_from_bytes(b[..., 0:2])
    m = f16_from_bytes(b[..., 2:4])
    return _asym_xhat(d, m, unpack_nibbles(b[..., 4:]).astype(np.float32))
