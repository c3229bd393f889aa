"""The .edge file format spec (docs/FORMAT.md), shared by the writer (writer.py) and the reader (reader.py).

Layout: header (128 B) | metadata | tensor table | tensor data (each tensor at a multiple of 64, or of
the writer's `alignment`; `blob` tensors — MoE expert blobs, docs/MOE.md §3 — always at a multiple of
4096, and their nbytes must be a multiple of 4096). Every integer is little-endian.

This module holds what both sides need and nothing that does I/O: magic, version, header size and CRC
span, alignments, name/ndim/key limits, the metadata value types (I64 … ARR_STR) with their encoding,
the dtype table by id (the dtypes and block sizes themselves are quant.DTYPES), a tensor table row
(TensorInfo), tensor_nbytes, and the byte encoders of the header, metadata and table (also used by
tests and device.py to build files by hand).

The streaming, atomic writer is EdgeWriter in writer.py; the validating mmap reader is EdgeFile in
reader.py. Both are importable from here too (`from edgeconv.format import EdgeWriter, EdgeFile`),
resolved lazily because each of them imports this module.
"""
from __future__ import annotations

import io
import math
import os  # noqa: F401  (tests reach the writer's os.fdopen as edgeconv.format.os)
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .quant import DTYPES, row_bytes

MAGIC = b"EDGEFILE"
VERSION = 1
HEADER_SIZE = 128
HEADER_CRC_SPAN = 68  # header_crc32 covers bytes 0..68
MIN_ALIGNMENT = 64
PAGE_ALIGNMENT = 4096
MAX_NAME_LEN = 255
MAX_NDIM = 4
MAX_KEY_LEN = 4096  # the C++ reader's limit on metadata key bytes

# Metadata value types (FORMAT.md "Metadata").
I64, F64, STR, ARR_I64, ARR_F32, ARR_STR = range(6)
META_TYPE_NAMES = {I64: "I64", F64: "F64", STR: "STR", ARR_I64: "ARR_I64", ARR_F32: "ARR_F32",
                   ARR_STR: "ARR_STR"}

_HEADER = struct.Struct("<8sIIQQQQQIIII")  # through header_crc32: 72 bytes
assert _HEADER.size == 72

DTYPE_BY_ID = {d.id: d for d in DTYPES.values()}


def crc32(data: bytes | memoryview | np.ndarray, value: int = 0) -> int:
    """CRC-32/IEEE as zlib computes it."""
    return zlib.crc32(data, value) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# metadata encoding


def infer_meta_type(key: str, value: Any) -> int:
    """The metadata type a Python/numpy value is stored as (bool/int → I64, float → F64, ...)."""
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return I64
    if isinstance(value, (float, np.floating)):
        return F64
    if isinstance(value, str):
        return STR
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iub":
            return ARR_I64
        if value.dtype.kind == "f":
            return ARR_F32
        if value.dtype.kind in "UO":
            return ARR_STR
    if isinstance(value, (list, tuple)):
        if not value:
            raise TypeError(f"metadata {key!r}: empty list needs an explicit type")
        if all(isinstance(v, str) for v in value):
            return ARR_STR
        if all(isinstance(v, (bool, int, np.integer)) for v in value):
            return ARR_I64
        if all(isinstance(v, (bool, int, float, np.integer, np.floating)) for v in value):
            return ARR_F32
    raise TypeError(f"metadata {key!r}: cannot store a value of type {type(value).__name__}")


def encode_meta_value(key: str, value: Any, mtype: int) -> bytes:
    if mtype == I64:
        return struct.pack("<q", int(value))
    if mtype == F64:
        return struct.pack("<d", float(value))
    if mtype == STR:
        b = str(value).encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    if mtype == ARR_I64:
        a = np.asarray(value, dtype="<i8").reshape(-1)
        return struct.pack("<Q", a.size) + a.tobytes()
    if mtype == ARR_F32:
        a = np.asarray(value, dtype="<f4").reshape(-1)
        return struct.pack("<Q", a.size) + a.tobytes()
    if mtype == ARR_STR:
        out = io.BytesIO()
        out.write(struct.pack("<Q", len(value)))
        for s in value:
            b = str(s).encode("utf-8")
            out.write(struct.pack("<I", len(b)))
            out.write(b)
        return out.getvalue()
    raise ValueError(f"metadata {key!r}: unknown type id {mtype}")


def encode_metadata(entries: list[tuple[str, int, Any]]) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack("<I", len(entries)))
    for key, mtype, value in entries:
        kb = key.encode("utf-8")
        out.write(struct.pack("<I", len(kb)))
        out.write(kb)
        out.write(struct.pack("<I", mtype))
        out.write(encode_meta_value(key, value, mtype))
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# tensor table


@dataclass
class TensorInfo:
    """One row of the tensor table. shape is outermost first; the last dim is the blocked one."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int = 0
    nbytes: int = 0
    crc: int = 0

    @property
    def dtype_id(self) -> int:
        return DTYPES[self.dtype].id

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


def tensor_nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    """rows × row_bytes(dtype, last dim); ValueError if the last dim is not a multiple of the block."""
    cols = shape[-1]
    rb = row_bytes(dtype, cols)
    if rb <= 0:
        raise ValueError(f"{cols} columns is not a multiple of the {dtype} block ({DTYPES[dtype].block})")
    return math.prod(shape[:-1]) * rb


def encode_table(tensors: list[TensorInfo]) -> bytes:
    out = io.BytesIO()
    for t in tensors:
        nb = t.name.encode("utf-8")
        out.write(struct.pack("<H", len(nb)))
        out.write(nb)
        out.write(struct.pack("<II", t.dtype_id, len(t.shape)))
        out.write(struct.pack(f"<{len(t.shape)}Q", *t.shape))
        out.write(struct.pack("<QQI", t.offset, t.nbytes, t.crc))
    return out.getvalue()


def align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def encode_header(file_size: int, meta_offset: int, meta: bytes, table_offset: int, table: bytes,
                  n_tensors: int) -> bytes:
    head = struct.pack("<8sIIQQQQQIII", MAGIC, VERSION, 0, file_size, meta_offset, len(meta),
                       table_offset, len(table), n_tensors, crc32(meta), crc32(table))
    assert len(head) == HEADER_CRC_SPAN
    head += struct.pack("<I", crc32(head))
    return head + bytes(HEADER_SIZE - len(head))


def __getattr__(name: str):
    """`format.EdgeWriter` (writer.py) and `format.EdgeFile` (reader.py) import this module, so they are
    resolved lazily (PEP 562)."""
    if name == "EdgeWriter":
        from .writer import EdgeWriter

        return EdgeWriter
    if name == "EdgeFile":
        from .reader import EdgeFile

        return EdgeFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
