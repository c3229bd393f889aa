"""Q8_0 weights (f16 d, int8 q[32]; x = d·q) and the block_q8x activation quantizer's numpy twin.

Q8_0 scale choice, per 32-block, all candidates measured with the f16-rounded scale actually stored:
  1. the amax rule d = amax / 127;
  2. d = amax / t for t in _T_GRID (slightly larger scales trade a little resolution for less error
     on the largest element), each scored by the least-squares error of its codes;
  3. for the best code set, the weighted least-squares d = Σ w x q / Σ w q², re-rounded;
keeping whichever gives the lowest weighted squared error Σ w (x - d q)². Codes are
clamp(rint(x / d), -127, 127) (round half to even; -128 is never written).
"""
from __future__ import annotations

import numpy as np

from ._blocks import Best, block_err, f16_bytes, f16_from_bytes, f16_round, pick, safe_div, sym_scale_grid

BLOCK = 32
_T_GRID = (127.0, 126.5, 126.0, 125.0)

Q8X_DTYPE = np.dtype([("d", "<f4"), ("s", "<f4"), ("q", "i1", (32,))])  # struct block_q8x


def _codes(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    q = x * safe_div(np.float32(1), d)[..., None]
    np.rint(q, out=q)
    return np.clip(q, -127, 127, out=q)


def quantize_q8_0(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """x: float32 [..., 32] -> packed [..., 34]."""
    ax = np.abs(x)
    amax = pick(ax, ax.argmax(axis=-1))
    d = f16_round(amax / np.float32(127))  # the amax rule
    best = Best(block_err(x, d[..., None] * _codes(x, d), w), d=d)
    d = f16_round(sym_scale_grid(x, w, amax, _T_GRID, -127, 127))
    best.offer(block_err(x, d[..., None] * _codes(x, d), w), d=d)
    d = best.p["d"]
    return np.concatenate([f16_bytes(d), _codes(x, d).astype(np.int8).view(np.uint8)], axis=-1)


def dequantize_q8_0(b: np.ndarray) -> np.ndarray:
    """packed [..., 34] -> float32 [..., 32], exactly as dequant_q8_0_ref."""
    d = f16_from_bytes(b[..., 0:2])
    q = np.ascontiguousarray(b[..., 2:]).view(np.int8).astype(np.float32)
    return d[..., None] * q


def quantize_q8x(x: np.ndarray) -> bytes:
    """Numpy twin of quantize_q8x_ref (csrc/kernels/ref/quantize_q8x_ref.cpp): float32 values,
    len % 32 == 0 -> n/32 block_q8x structs {f32 d, f32 s, i8 q[32]} as bytes, bit-exact."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if x.size % BLOCK:
        raise ValueError(f"quantize_q8x: length {x.size} is not a multiple of {BLOCK}")
    xb = x.reshape(-1, BLOCK)
    amax = np.abs(xb).max(axis=1) if xb.size else np.zeros(0, np.float32)
    d = amax / np.float32(127.0)
    idv = safe_div(np.float32(1.0), d)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.clip(np.rint(xb * idv[:, None]), -127, 127).astype(np.int8)
    out = np.zeros(xb.shape[0], dtype=Q8X_DTYPE)
    out["d"] = d
    out["s"] = d * q.astype(np.int32).sum(axis=1).astype(np.float32)
    out["q"] = q
    return out.tobytes()
