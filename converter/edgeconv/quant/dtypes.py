"""The .edge element types (docs/FORMAT.md, csrc/quant.cpp) and their row sizes.

DTYPES[name] = DType(name, id, block, block_bytes, int_dot), identical to ``edgerun._core.DTYPES``
(tests/test_quant.py checks it). ``int_dot``: the matmul quantizes activations to block_q8x and
accumulates int32 per 32-element block; otherwise activations stay f32.
"""
from __future__ import annotations

from typing import NamedTuple


class DType(NamedTuple):
    name: str
    id: int
    block: int
    block_bytes: int
    int_dot: bool


DTYPES: dict[str, DType] = {
    t.name: t
    for t in (
        DType("f32", 0, 1, 4, False),
        DType("f16", 1, 1, 2, False),
        DType("bf16", 2, 1, 2, False),
        DType("q8_0", 3, 32, 34, True),
        DType("int4_32", 4, 32, 18, True),
        DType("int4_64", 5, 64, 34, True),
        DType("int4_128", 6, 128, 66, True),
        DType("int4a_32", 7, 32, 20, True),
        DType("int4a_64", 8, 64, 36, True),
        DType("int4a_128", 9, 128, 68, True),
        DType("mxint8", 10, 32, 33, True),
        DType("mxfp8", 11, 32, 33, False),
        DType("mxfp6", 12, 32, 25, True),
        DType("mxfp4", 13, 32, 17, True),
        DType("i32", 14, 1, 4, False),
        DType("blob", 15, 1, 1, False),  # opaque bytes: MoE expert blobs (docs/MOE.md)
        DType("nl4_32", 16, 32, 18, True),  # 4-bit codes into a fixed non-uniform table (= GGML IQ4_NL)
        # GGML's blocks, imported exactly from GGUF (quant/kquant.py: dequantizers only, no quantizer)
        DType("q5_0", 17, 32, 22, True),
        DType("q4_k", 18, 256, 144, True),
        DType("q6_k", 19, 256, 210, True),
    )
}


def dtype_info(dtype: str) -> DType:
    """The DType for a name; ValueError naming the known types otherwise."""
    t = DTYPES.get(dtype) if isinstance(dtype, str) else None
    if t is None:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return t


def row_bytes(dtype: str, cols: int) -> int:
    """Bytes of one row of `cols` elements; 0 if cols is not a positive multiple of the block."""
    t = dtype_info(dtype)
    if cols <= 0 or cols % t.block:
        return 0
    return cols // t.block * t.block_bytes
