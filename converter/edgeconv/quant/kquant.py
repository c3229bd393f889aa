"""GGML's q5_0 / q4_k / q6_k blocks (csrc/quant.h, docs/FORMAT.md): numpy dequantizers only.

These dtypes exist so that GGUF Q5_0 / Q4_K / Q6_K tensors import byte for byte (sources/gguf.py GGUF_EXACT);
edgeconv has no quantizer for them (``quantize`` refuses: pick q8_0 / int4_* / nl4_32 to quantize floats).
Each function maps packed blocks uint8 [..., block_bytes] -> float32 [..., block] with the same f32
operations, in the same order, as csrc/kernels/ref/dequant_ref.cpp (so the two are equal bit for bit):
  q5_0  d·(q − 16)                 q = low nibble (split-half) | bit of the u32 qh << 4
  q4_k  (d·sc_j)·q − dmin·m_j      8 sub-blocks of 32, 6-bit sc_j / m_j packed in 12 bytes
  q6_k  (d·sc_j)·(q − 32)          16 sub-blocks of 16, int8 sc_j; 4 low bits in ql, 2 high in qh
"""
from __future__ import annotations

import numpy as np

from ._blocks import f16_from_bytes

IMPORT_ONLY = ("q5_0", "q4_k", "q6_k")


def dequantize_q5_0(b: np.ndarray) -> np.ndarray:
    d = f16_from_bytes(b[..., 0:2])
    qh = np.ascontiguousarray(b[..., 2:6]).view("<u4")[..., 0]
    qs = b[..., 6:22]
    lo = np.concatenate([qs & 15, qs >> 4], axis=-1).astype(np.int32)
    hi = ((qh[..., None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int32)
    return d[..., None] * ((lo | hi << 4) - 16).astype(np.float32)


def q4_k_scale_min(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """12 packed bytes [..., 12] -> (sc, m) int32 [..., 8] (quant.h q4_k_scale_min)."""
    s = s.astype(np.int32)
    sc = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 15) | (s[..., 0:4] >> 6) << 4], axis=-1)
    m = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | (s[..., 4:8] >> 6) << 4], axis=-1)
    return sc, m


def dequantize_q4_k(b: np.ndarray) -> np.ndarray:
    d, dmin = f16_from_bytes(b[..., 0:2]), f16_from_bytes(b[..., 2:4])
    sc, m = q4_k_scale_min(b[..., 4:16])
    qs = b[..., 16:144].reshape(b.shape[:-1] + (4, 32))
    q = np.stack([qs & 15, qs >> 4], axis=-2).reshape(b.shape[:-1] + (8, 32)).astype(np.float32)
    d1 = (d[..., None] * sc.astype(np.float32))[..., None]
    m1 = (dmin[..., None] * m.astype(np.float32))[..., None]
    return (d1 * q - m1).reshape(b.shape[:-1] + (256,))


def dequantize_q6_k(b: np.ndarray) -> np.ndarray:
    lead = b.shape[:-1]
    ql = b[..., 0:128].reshape(lead + (2, 1, 64))
    qh = b[..., 128:192].reshape(lead + (2, 1, 32))
    sc = np.ascontiguousarray(b[..., 192:208]).view(np.int8).astype(np.float32)
    d = f16_from_bytes(b[..., 208:210])
    lo = ((ql >> np.array([0, 4], np.uint8).reshape(2, 1)) & 15).reshape(lead + (2, 4, 32))
    hi = ((qh >> np.array([0, 2, 4, 6], np.uint8).reshape(4, 1)) & 3).reshape(lead + (2, 4, 32))
    q = ((lo | hi << 4).astype(np.int32) - 32).astype(np.float32).reshape(lead + (16, 16))
    return ((d[..., None] * sc)[..., None] * q).reshape(lead + (256,))


DEQUANT = {"q5_0": dequantize_q5_0, "q4_k": dequantize_q4_k, "q6_k": dequantize_q6_k}


def refuse_quantize(name: str):
    def q(x, w):
        raise ValueError(f"quantize: {name} is an import-only dtype (GGML's block, copied exactly from a GGUF by "
                         f"--quant keep); edgeconv does not quantize floats to it: use q8_0, int4_*, nl4_32")
    return q
