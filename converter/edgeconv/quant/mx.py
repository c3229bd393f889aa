"""OCP MX block types: a 32-element block shares one E8M0 scale X = 2^(e-127) (e in 0..254; 0xFF,
NaN, is never written) and each element is an MXINT8 / E4M3 / E2M3 / E2M1 code (csrc/quant.h).

Scale choice per block: the OCP rule e = floor(log2 amax) - emax_elem (the block max lands in the
element format's top binade) and its neighbours, keeping the one with the lowest weighted squared
error Σ w (x - x̂)²: +1 (no saturation, coarser grid) for every type, and -1 (finer grid, the max
saturates) for the FP types, where saturation is already possible at the rule's exponent. Ties keep
the OCP rule. An all-zero block is stored as e = 0 with zero codes.
Elements: x / X rounded to nearest, ties to even (on the element grid, i.e. even code), with
saturation to ±max; MXINT8 clamps to ±127 (-128 is never written); a value that rounds to zero is
stored as +0.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._blocks import Best, block_err, pack_nibbles, pick, unpack_nibbles


class _Elem(NamedTuple):
    ebits: int  # 0 for MXINT8
    mbits: int
    bias: int
    emax: int  # emax_elem: exponent of the largest binade
    maxval: float


_FP = {
    "mxfp8": _Elem(4, 3, 7, 8, 448.0),
    "mxfp6": _Elem(2, 3, 1, 2, 7.5),
    "mxfp4": _Elem(2, 1, 1, 2, 6.0),
}


def e8m0_to_f32(e: np.ndarray) -> np.ndarray:
    """E8M0 bytes -> 2^(e-127) as float32 (e = 0 is the denormal 2^-127), as csrc/common.h."""
    e = e.astype(np.uint32)
    return np.where(e == 0, np.uint32(0x00400000), e << 23).astype(np.uint32).view(np.float32)


def _pow2(k: np.ndarray) -> np.ndarray:
    """2^k as float32 for integer k in [-127, 127] (2^-127 is a denormal)."""
    k = np.asarray(k, dtype=np.int32)
    bits = np.where(k > -127, (k + 127) << 23, 0x00400000).astype(np.uint32)
    return bits.view(np.float32)


def _shared_exponent(x: np.ndarray, emax: int) -> np.ndarray:
    """The OCP rule: floor(log2 amax) - emax_elem + 127, clamped to [0, 254]; 0 for amax = 0."""
    ax = np.abs(x)
    amax = pick(ax, ax.argmax(axis=-1))
    e = np.frexp(amax)[1] - 1 - emax + 127
    return np.where(amax > 0, np.clip(e, 0, 254), 0).astype(np.int32)


def _elements(xn: np.ndarray, k: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Element rounding of blocks stored with scale 2^k relative to the OCP scale X0.

    xn = x / X0 (exact: X0 is a power of two), k per block. v = xn / 2^k is saturated to ±max and
    rounded to nearest, ties to even, on the element grid. Returns (n, ee, p): the element value is
    n / p with p = 2^(mbits - ee), n a signed integer (float32), ee the element exponent (>= emin;
    subnormals share emin's step). MXINT8: n = clamp(rint(64 v), ±127), p = 64, ee is None.
    """
    v = xn * _pow2(-k)[..., None]
    if kind == "mxint8":
        v *= np.float32(64)
        np.rint(v, out=v)
        return np.clip(v, -127, 127, out=v), None, np.float32(64)
    el = _FP[kind]
    np.clip(v, -el.maxval, el.maxval, out=v)
    ee = ((v.view(np.uint32) >> 23) & 255).astype(np.int32) - 127  # floor(log2|v|); -127 for 0
    np.maximum(ee, 1 - el.bias, out=ee)
    p = _pow2(el.mbits - ee)
    v *= p
    return np.rint(v, out=v), ee, p


def _codes(n: np.ndarray, ee: np.ndarray | None, kind: str) -> np.ndarray:
    """Stored element codes: int8 bytes for MXINT8, else sign | magnitude code bits with magnitude
    code ((ee - emin) << mbits) + |n| (n = 2^(mbits+1) is the next binade's first code)."""
    if kind == "mxint8":
        return n.astype(np.int8).view(np.uint8)
    el = _FP[kind]
    mag = ((ee - (1 - el.bias)) << el.mbits) + np.abs(n).astype(np.int32)
    mag = np.where(n < 0, mag | (1 << (el.ebits + el.mbits)), mag)  # -0 is never written
    return mag.astype(np.uint8)


def _relative_xhat(xn: np.ndarray, k: np.ndarray, kind: str) -> np.ndarray:
    """Decoded values of xn (in units of X0) for relative exponent k."""
    n, _, p = _elements(xn, k, kind)
    n /= p
    n *= _pow2(k)[..., None]
    return n


def quantize_mx(x: np.ndarray, w: np.ndarray | None, kind: str) -> np.ndarray:
    """x: float32 [..., 32] -> packed [..., block_bytes] for kind in mxint8, mxfp8, mxfp6, mxfp4.

    The search runs on each block divided by its OCP scale X0 (an exact power-of-two rescaling), so
    it behaves the same for blocks of any magnitude; errors are only compared within a block."""
    e0 = _shared_exponent(x, 0 if kind == "mxint8" else _FP[kind].emax)
    xn = x * _pow2(127 - e0)[..., None]
    k = np.zeros_like(e0)
    best = Best(block_err(xn, _relative_xhat(xn, k, kind), w), k=k)
    for off in ((1,) if kind == "mxint8" else (1, -1)):
        k = np.clip(e0 + off, 0, 254) - e0  # an all-zero block has error 0 everywhere and keeps e = 0
        best.offer(block_err(xn, _relative_xhat(xn, k, kind), w), k=k)
    k = best.p["k"]
    n, ee, _ = _elements(xn, k, kind)
    code = _codes(n, ee, kind)
    if kind == "mxfp6":
        code = _pack6(code)
    elif kind == "mxfp4":
        code = pack_nibbles(code)
    return np.concatenate([(e0 + k).astype(np.uint8)[..., None], code], axis=-1)


def _ocp_xhat(x: np.ndarray, kind: str) -> np.ndarray:
    """x stored with the plain OCP rule (no search): the baseline the search is tested against."""
    e0 = _shared_exponent(x, 0 if kind == "mxint8" else _FP[kind].emax)
    return _relative_xhat(x * _pow2(127 - e0)[..., None], np.zeros_like(e0), kind) * _pow2(e0 - 127)[..., None]


def _pack6(c: np.ndarray) -> np.ndarray:
    """6-bit codes [..., 32] -> [..., 24]: 4 codes per little-endian 24-bit word, code i at bit 6i."""
    g = c.astype(np.uint32).reshape(c.shape[:-1] + (8, 4))
    v = g[..., 0] | g[..., 1] << 6 | g[..., 2] << 12 | g[..., 3] << 18
    b = np.stack([v & 255, (v >> 8) & 255, v >> 16], axis=-1).astype(np.uint8)
    return b.reshape(c.shape[:-1] + (24,))


def _unpack6(b: np.ndarray) -> np.ndarray:
    g = b.reshape(b.shape[:-1] + (8, 3)).astype(np.uint32)
    v = g[..., 0] | g[..., 1] << 8 | g[..., 2] << 16
    c = np.stack([(v >> (6 * i)) & 63 for i in range(4)], axis=-1)
    return c.reshape(b.shape[:-1] + (32,))


def _e4m3_table() -> np.ndarray:
    c = np.arange(256)
    e, m = (c >> 3) & 15, c & 7
    mag = np.where(e == 0, m * 2.0**-9, 2.0 ** (e - 7.0) * (1 + m / 8))
    v = np.where(c & 0x80, -mag, mag)
    v[(c & 0x7F) == 0x7F] = np.nan
    return v.astype(np.float32)


def _e2m3_x8_table() -> np.ndarray:
    c = np.arange(64)
    e, m = (c >> 3) & 3, c & 7
    mag = np.where(e == 0, m, (8 + m) << np.maximum(e - 1, 0))
    return np.where(c & 0x20, -mag, mag).astype(np.float32)


_E4M3 = _e4m3_table()
_E2M3_X8 = _e2m3_x8_table()
_E2M1_X2 = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.float32)


def dequantize_mx(b: np.ndarray, kind: str) -> np.ndarray:
    """packed [..., block_bytes] -> float32 [..., 32], exactly as dequant_<kind>_ref."""
    x = e8m0_to_f32(b[..., 0])[..., None]
    body = b[..., 1:]
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "mxint8":
            return (x * np.float32(1 / 64)) * np.ascontiguousarray(body).view(np.int8).astype(np.float32)
        if kind == "mxfp8":
            return x * _E4M3[body]
        if kind == "mxfp6":
            return (x * np.float32(0.125)) * _E2M3_X8[_unpack6(body)]
        return (x * np.float32(0.5)) * _E2M1_X2[unpack_nibbles(body)]
