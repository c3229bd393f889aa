"""Plain element types: f32, f16, bf16 (round half to even, as csrc/common.h) and i32.

Each quantize_* takes a 2-D array [rows, cols] and returns uint8 [rows, cols * size]; each
dequantize_* is its exact inverse on the stored values. f16/bf16 rounding matches f32_to_f16 /
f32_to_bf16 in csrc/common.h bit for bit, NaN included (quiet NaN, sign kept).
"""
from __future__ import annotations

import numpy as np


def _as_bytes(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).reshape(a.shape[0], -1)


def quantize_f32(w: np.ndarray) -> np.ndarray:
    return _as_bytes(w.astype("<f4"))


def dequantize_f32(b: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.ascontiguousarray(b).view("<f4").reshape(rows, cols).astype(np.float32)


def quantize_f16(w: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        h = w.astype(np.float32).astype("<f2").view(np.uint16)
    nan = np.isnan(w)
    if nan.any():  # numpy keeps NaN payload bits; the C++ converter writes the canonical quiet NaN
        sign = (w.view(np.uint32) >> 16).astype(np.uint16) & 0x8000
        h = np.where(nan, sign | 0x7E00, h).astype(np.uint16)
    return _as_bytes(h.astype("<u2"))


def dequantize_f16(b: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.ascontiguousarray(b).view("<f2").reshape(rows, cols).astype(np.float32)


def quantize_bf16(w: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32)
    rounded = ((x + np.uint32(0x7FFF) + ((x >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (x & 0x7FFFFFFF) > 0x7F800000
    h = np.where(nan, ((x >> 16) | 0x40).astype(np.uint16), rounded)
    return _as_bytes(h.astype("<u2"))


def dequantize_bf16(b: np.ndarray, rows: int, cols: int) -> np.ndarray:
    h = np.ascontiguousarray(b).view("<u2").reshape(rows, cols).astype(np.uint32)
    return (h << 16).view(np.float32)


def quantize_i32(w: np.ndarray) -> np.ndarray:
    if np.issubdtype(w.dtype, np.integer):
        if w.size and (w.min() < -(2**31) or w.max() >= 2**31):
            raise ValueError("i32: values out of the int32 range")
        return _as_bytes(w.astype("<i4"))
    wf = w.astype(np.float64)
    if not np.all(np.isfinite(wf)) or not np.array_equal(wf, np.round(wf)):
        raise ValueError("i32: values must be finite integers")
    if wf.size and (wf.min() < -(2**31) or wf.max() >= 2**31):
        raise ValueError("i32: values out of the int32 range")
    return _as_bytes(wf.astype("<i4"))


def dequantize_i32(b: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.ascontiguousarray(b).view("<i4").reshape(rows, cols).astype(np.float32)
