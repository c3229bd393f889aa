"""nl4_32: 4-bit codes into a fixed non-uniform table (csrc/quant.h kNl4Values, GGML IQ4_NL's values),
one f16 scale per 32 elements, x = d · VALUES[q], split-half nibble order (the int4_32 byte layout).

The table is denser near zero than the uniform int4 grid (steps 9..12 in the middle, 23..24 at the
ends), which suits the roughly bell-shaped weights inside a block; the block is GGML's IQ4_NL byte for
byte, so GGUF IQ4_NL tensors are copied, not re-quantized (sources/gguf.py GGUF_EXACT).

Scale search, per block, vectorised over blocks (w = per-element error weights, objective Σ w (x - x̂)²
with the f16-rounded scale actually stored): M = the signed max-magnitude element; candidates
d = M / t for t on a grid around VALUES[0] = -127 (M takes the long negative end) and VALUES[15] = 113
(the positive end). Each candidate's nearest codes are scored by their least-squares fit
(Σwxv)²/Σwv² (v = VALUES[code]); the best code set's least-squares scale Σwxv/Σwv² is rounded to f16
and re-coded, then one more least-squares pass. The plain rule d = M / -127 is the starting point, and
each result replaces it only where its stored error is lower. Codes are always the nearest table value
for the stored scale (ties to the lower value).
"""
from __future__ import annotations

import numpy as np

from ._blocks import Best, block_err, dot, f16_bytes, f16_from_bytes, f16_round, pack_nibbles, pick, safe_div, unpack_nibbles, wdot

VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.float32)
_MIDS = ((VALUES[1:] + VALUES[:-1]) / 2).astype(np.float32)
# Nearest code without a search: every midpoint is a multiple of 1/2, so all y in ((j-1)/2, j/2] share one
# nearest value, the code of y = j/2 (ties to the lower value). _LUT[j + _J] for j = ceil(2y) in [-_J, _J].
_J = 240
_LUT = np.searchsorted(_MIDS, np.arange(-_J, _J + 1, dtype=np.float32) / 2).astype(np.uint8)
assert np.all(np.fmod(_MIDS * 2, 1) == 0)
_GRID = tuple(float(v) for v in np.round(np.concatenate([-127.0 * np.linspace(0.8, 1.2, 9),
                                                         113.0 * np.linspace(0.8, 1.2, 9)]), 3))


def nl4_nearest(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Nearest table codes (uint8) of x · (1/d) elementwise, x and d of one shape (GPTQ's column step)."""
    return nl4_codes(x[..., None], d)[..., 0]


def nl4_codes(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Nearest table codes (uint8 0..15) of x · (1/d); x [..., 32], d [...] (d = 0 gives the code of 1)."""
    y = x * safe_div(np.float32(2), d)[..., None]
    np.nan_to_num(y, copy=False, nan=0.0)  # 0 · inf of a tiny candidate scale
    np.ceil(y, out=y)
    np.clip(y, -_J, _J, out=y)
    return _LUT[y.astype(np.int16) + _J]


def nl4_scale(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """x: float32 [..., 32] -> the f16-grid scale d [...] of least stored weighted error (search above)."""
    vmax = pick(x, np.abs(x).argmax(axis=-1))
    d = f16_round(vmax / np.float32(VALUES[0]))
    best = Best(block_err(x, d[..., None] * VALUES[nl4_codes(x, d)], w), d=d)

    wx = x if w is None else x * w
    top_score = np.full(vmax.shape, -1.0, dtype=np.float32)
    top_d = np.zeros_like(vmax)
    for t in _GRID:
        v = VALUES[nl4_codes(x, safe_div(vmax, np.float32(t)))]
        sxv = dot(wx, v)
        svv = wdot(v, v, w)
        score = safe_div(sxv * sxv, svv)
        better = score > top_score
        top_score = np.where(better, score, top_score)
        top_d = np.where(better, safe_div(sxv, svv), top_d)
    d = f16_round(top_d)
    for it in range(2):
        v = VALUES[nl4_codes(x, d)]
        best.offer(block_err(x, d[..., None] * v, w), d=d)
        if it == 0:
            d = f16_round(safe_div(dot(wx, v), wdot(v, v, w)))
    return best.p["d"]


def pack_nl4(d: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """d [...] on the f16 grid, codes [..., 32] in 0..15 -> packed [..., 18]."""
    return np.concatenate([f16_bytes(d), pack_nibbles(codes.astype(np.uint8))], axis=-1)


def quantize_nl4(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """x: float32 [..., 32] -> packed [..., 18]."""
    d = nl4_scale(x, w)
    return pack_nl4(d, nl4_codes(x, d))


def dequantize_nl4(b: np.ndarray) -> np.ndarray:
    """packed [..., 18] -> float32 [..., 32], exactly as dequant_nl4_32_ref (d · value, exact products)."""
    d = f16_from_bytes(b[..., 0:2])
    return d[..., None] * VALUES[unpack_nibbles(b[..., 2:])]
