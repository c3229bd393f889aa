"""edgeconv.quant — numpy quantizer for the .edge element types (docs/FORMAT.md, csrc/quant.h).

Public API (bytes are exactly what the C++ kernels read; tests/test_quant.py checks numpy
quantize -> C++ dequant == numpy dequant bit for bit):

    DTYPES: dict[str, DType]                     DType(name, id, block, block_bytes, int_dot)
    row_bytes(dtype, cols) -> int                0 if cols is not a multiple of the block
    quantize(w, dtype, importance=None)          float32 [rows, cols] (or [cols]) -> uint8 [rows, row_bytes]
    dequantize(data, dtype, shape)               -> float32 array of `shape`
    quantize_q8x(x) -> bytes                     numpy twin of the C++ activation quantizer

Block types choose scales to minimise the (importance-weighted) squared error Σ_j imp_j (w_j - ŵ_j)²
with the scale precision actually stored: see q8.py, int4.py, nl4.py, mx.py for each search. `importance`
is one non-negative weight per column (e.g. the mean squared activation of that input feature);
a small floor (1% of its mean) is added so no element is ignored entirely.
Work is vectorised over blocks and done in row chunks of about 2^18 elements to bound memory.
"""
from __future__ import annotations

import numpy as np

from . import floats, int4, kquant, mx, nl4, q8
from .dtypes import DTYPES, DType, dtype_info, row_bytes

__all__ = ["DTYPES", "DType", "row_bytes", "quantize", "dequantize", "quantize_q8x"]

quantize_q8x = q8.quantize_q8x

_CHUNK_ELEMS = 1 << 18
_FLOAT_Q = {"f32": floats.quantize_f32, "f16": floats.quantize_f16, "bf16": floats.quantize_bf16,
            "i32": floats.quantize_i32}
_FLOAT_DQ = {"f32": floats.dequantize_f32, "f16": floats.dequantize_f16, "bf16": floats.dequantize_bf16,
             "i32": floats.dequantize_i32}


def _block_quantizer(name: str):
    if name == "q8_0":
        return q8.quantize_q8_0, q8.dequantize_q8_0
    if name.startswith("int4a_"):
        return int4.quantize_int4a, int4.dequantize_int4a
    if name.startswith("int4_"):
        return int4.quantize_int4, int4.dequantize_int4
    if name == "nl4_32":
        return nl4.quantize_nl4, nl4.dequantize_nl4
    if name in kquant.DEQUANT:  # import-only: GGUF blocks copied exactly, never quantized here
        return kquant.refuse_quantize(name), kquant.DEQUANT[name]
    return (lambda x, w: mx.quantize_mx(x, w, name)), (lambda b: mx.dequantize_mx(b, name))


def _as_2d(w: np.ndarray) -> np.ndarray:
    if w.ndim == 1:
        return w.reshape(1, -1)
    if w.ndim != 2:
        raise ValueError(f"quantize: expected a 1-D or 2-D array, got shape {w.shape}")
    return w


def quantize(w: np.ndarray, dtype: str, importance: np.ndarray | None = None) -> np.ndarray:
    """Quantize a float32 [rows, cols] (or [cols]) matrix row by row to `dtype`'s stored bytes.

    Returns uint8 [rows, row_bytes(dtype, cols)] (a 1-D input gives one row). Raises ValueError for
    an unknown dtype, cols not a multiple of the block, non-finite values in a block type, or a bad
    `importance` (must be `cols` finite values >= 0; only the block types use it).
    """
    t = dtype_info(dtype)
    w = _as_2d(np.asarray(w))
    rows, cols = w.shape
    if row_bytes(dtype, cols) == 0:
        raise ValueError(f"quantize: {dtype} needs cols to be a positive multiple of {t.block}, got {cols}")
    if t.block == 1:
        return _FLOAT_Q[dtype](w if dtype == "i32" else w.astype(np.float32, copy=False))
    w = w.astype(np.float32, copy=False)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"quantize: {dtype} weights must be finite (found NaN or inf)")
    wts = _element_weights(importance, cols, t.block)
    qfn, _ = _block_quantizer(dtype)
    out = np.empty((rows, row_bytes(dtype, cols)), dtype=np.uint8)
    step = max(1, _CHUNK_ELEMS // cols)
    with np.errstate(over="ignore", under="ignore"):  # huge/tiny blocks: their errors may saturate
        for r0 in range(0, rows, step):
            x = w[r0:r0 + step].reshape(-1, cols // t.block, t.block)
            out[r0:r0 + step] = qfn(x, wts).reshape(x.shape[0], -1)
    return out


def _element_weights(importance: np.ndarray | None, cols: int, block: int) -> np.ndarray | None:
    """importance [cols] -> float32 [1, cols/block, block] error weights (None: unweighted)."""
    if importance is None:
        return None
    imp = np.asarray(importance, dtype=np.float64).reshape(-1)
    if imp.size != cols:
        raise ValueError(f"quantize: importance has {imp.size} values, expected one per column ({cols})")
    if not np.all(np.isfinite(imp)) or np.any(imp < 0):
        raise ValueError("quantize: importance must be finite and >= 0")
    mean = imp.mean()
    if mean == 0 or np.all(imp == imp[0]):  # uniform importance is the unweighted objective
        return None
    wts = (imp + 0.01 * mean) / mean  # normalised: mean weight ~1
    return wts.astype(np.float32).reshape(1, cols // block, block)


def dequantize(data: np.ndarray, dtype: str, shape: tuple) -> np.ndarray:
    """Stored bytes of a [..., cols] tensor -> float32 array of `shape`, exactly as the C++
    reference dequant kernels compute it. `data` is uint8 (any shape) or bytes."""
    t = dtype_info(dtype)
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("dequantize: shape must have at least one dimension")
    cols = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    rb = row_bytes(dtype, cols)
    if rb == 0:
        raise ValueError(f"dequantize: {dtype} needs the last dimension to be a multiple of {t.block}, got {cols}")
    b = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
    if b.dtype != np.uint8:
        raise ValueError(f"dequantize: data must be uint8, got {b.dtype}")
    if b.size != rows * rb:
        raise ValueError(f"dequantize: {shape} of {dtype} needs {rows * rb} bytes, got {b.size}")
    b = b.reshape(rows, rb)
    if t.block == 1:
        return _FLOAT_DQ[dtype](b, rows, cols).reshape(shape)
    _, dqfn = _block_quantizer(dtype)
    out = np.empty((rows, cols), dtype=np.float32)
    step = max(1, _CHUNK_ELEMS // cols)
    for r0 in range(0, rows, step):
        blk = b[r0:r0 + step].reshape(-1, cols // t.block, t.block_bytes)
        out[r0:r0 + step] = dqfn(blk).reshape(blk.shape[0], cols)
    return out.reshape(shape)
