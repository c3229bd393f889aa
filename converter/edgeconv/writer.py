"""The streaming, atomic .edge writer (EdgeWriter); the format itself is specified in format.py / docs/FORMAT.md.

Writer contract:
  * every tensor is declared (name, dtype, shape) before any data is written, so the whole layout —
    offsets, file_size and therefore quant.bits_per_weight — is known up front; the data is then
    streamed one tensor at a time (the model is never held in RAM) and the table is rewritten at the
    end with the CRC-32 of each tensor;
  * the file is written to a temporary file in the destination directory, fsync'ed and renamed over
    the destination with os.replace: a reader never sees a half-written file and an old file at the
    destination survives any failure;
  * on any error (including KeyboardInterrupt and a full disk) the temporary file is removed; a full
    disk is reported as OSError(ENOSPC, "disk full while writing X; nothing written");
  * metadata measured while streaming (e.g. moe.plan) is declared before begin() with a placeholder and
    replaced with set_metadata() before the end, provided its encoded size is unchanged;
  * quant.bits_per_weight counts each tensor's elements, except where declare() is given n_weights
    (a blob's bytes are not weights: an expert's first blob carries its 3·D·F weights, the others 0).
"""
from __future__ import annotations

import errno
import math
import os
import tempfile
from typing import Any, BinaryIO, Iterable

import numpy as np

from .format import (F64, HEADER_SIZE, MAX_KEY_LEN, MAX_NAME_LEN, MAX_NDIM, META_TYPE_NAMES, MIN_ALIGNMENT,
                     PAGE_ALIGNMENT, TensorInfo, align_up, crc32, encode_header, encode_meta_value, encode_metadata,
                     encode_table, infer_meta_type, tensor_nbytes)
from .quant import DTYPES

__all__ = ["EdgeWriter"]


class EdgeWriter:
    """Streams a .edge file to `path` atomically. Use as a context manager:

        with EdgeWriter(path) as w:
            w.add_metadata("llm.n_layers", 30)
            w.declare("tok_embd", "q8_0", (49152, 576))
            w.begin()                           # layout fixed; header/meta/table placeholders written
            w.write_tensor("tok_embd", data)    # in declaration order; bytes/uint8 array of nbytes
        # clean exit: CRCs filled in, fsync, os.replace(tmp, path); exception: tmp removed

    alignment: tensor data alignment, a multiple of 64 (4096 = page-aligned tensors).
    bits_per_weight_key: if set, that F64 key receives 8 × file_size / total elements at begin().
    """

    def __init__(self, path: str | os.PathLike, alignment: int = MIN_ALIGNMENT,
                 bits_per_weight_key: str | None = "quant.bits_per_weight"):
        if alignment <= 0 or alignment % MIN_ALIGNMENT:
            raise ValueError(f"alignment must be a positive multiple of {MIN_ALIGNMENT}, got {alignment}")
        self.path = os.fspath(path)
        self.alignment = alignment
        self.bpw_key = bits_per_weight_key
        self._meta: dict[str, tuple[int, Any]] = {}
        self._tensors: list[TensorInfo] = []
        self._by_name: dict[str, TensorInfo] = {}
        self._weights: dict[str, int] = {}
        self._f: BinaryIO | None = None
        self._tmp: str | None = None
        self._next = 0  # index of the next tensor to write
        self._pos = 0
        self._crc = 0
        self._written = 0  # bytes of the current tensor written so far
        self.file_size = 0
        self.bits_per_weight = 0.0
        self._done = False

    # -- declaration -----------------------------------------------------------------------
    def add_metadata(self, key: str, value: Any, mtype: int | None = None) -> None:
        if self._f is not None:
            raise RuntimeError("metadata must be added before begin()")
        if not key or len(key.encode("utf-8")) > MAX_KEY_LEN:
            raise ValueError(f"bad metadata key {key!r}")
        if key in self._meta:
            raise ValueError(f"duplicate metadata key {key!r}")
        if mtype is None:
            mtype = infer_meta_type(key, value)
        if mtype not in META_TYPE_NAMES:
            raise ValueError(f"metadata {key!r}: unknown type id {mtype}")
        encode_meta_value(key, value, mtype)  # fail now, not at begin()
        self._meta[key] = (mtype, value)

    def declare(self, name: str, dtype: str, shape: Iterable[int], n_weights: int | None = None) -> TensorInfo:
        """Declare the next tensor. n_weights: the model weights it holds for bits_per_weight (default:
        its element count). A blob's nbytes must be a multiple of 4096 (its offset will be)."""
        if self._f is not None:
            raise RuntimeError("tensors must be declared before begin()")
        shape = tuple(int(s) for s in shape)
        nb = name.encode("utf-8")
        if not 1 <= len(nb) <= MAX_NAME_LEN:
            raise ValueError(f"tensor name {name!r} must be 1..{MAX_NAME_LEN} bytes")
        if name in self._by_name:
            raise ValueError(f"duplicate tensor {name!r}")
        if dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
        if not 1 <= len(shape) <= MAX_NDIM or any(s < 1 for s in shape):
            raise ValueError(f"tensor {name!r}: bad shape {shape} (1..{MAX_NDIM} positive dims)")
        try:
            nbytes = tensor_nbytes(dtype, shape)
        except ValueError as e:
            raise ValueError(f"tensor {name!r} {shape}: {e}") from None
        if dtype == "blob" and (len(shape) != 1 or nbytes % PAGE_ALIGNMENT):
            raise ValueError(f"blob tensor {name!r}: must be 1-D with a size that is a multiple of {PAGE_ALIGNMENT}, "
                             f"got {shape}")
        if n_weights is not None and n_weights < 0:
            raise ValueError(f"tensor {name!r}: n_weights must be >= 0")
        t = TensorInfo(name, dtype, shape, 0, nbytes, 0)
        self._tensors.append(t)
        self._by_name[name] = t
        self._weights[name] = t.n_elements if n_weights is None else int(n_weights)
        return t

    def set_metadata(self, key: str, value: Any) -> None:
        """Replace a declared metadata value after begin() (before the end) with one of the same encoded size:
        for values measured while the tensors stream (the header, metadata and table are rewritten at the end)."""
        if key not in self._meta:
            raise KeyError(f"metadata {key!r} was not declared before begin()")
        mtype, old = self._meta[key]
        if len(encode_meta_value(key, value, mtype)) != len(encode_meta_value(key, old, mtype)):
            raise ValueError(f"metadata {key!r}: the new value's size differs from the placeholder's")
        self._meta[key] = (mtype, value)
        if self._f is not None:
            meta = encode_metadata([(k, mt, v) for k, (mt, v) in self._meta.items()])
            assert len(meta) == len(self._meta_bytes)
            self._meta_bytes = meta

    # -- streaming -------------------------------------------------------------------------
    def begin(self) -> None:
        """Fix the layout and write the header, metadata and table (CRCs of tensors pending)."""
        if self._f is not None:
            raise RuntimeError("begin() called twice")
        n_weights = sum(self._weights.values())
        if self.bpw_key is not None and self.bpw_key not in self._meta:
            self._meta[self.bpw_key] = (F64, 0.0)  # fixed-size placeholder; value set below
        entries = [(k, mt, v) for k, (mt, v) in self._meta.items()]
        meta = encode_metadata(entries)
        table_len = len(encode_table(self._tensors))
        meta_offset = HEADER_SIZE
        table_offset = meta_offset + len(meta)
        pos = table_offset + table_len
        for t in self._tensors:
            pos = align_up(pos, math.lcm(self.alignment, PAGE_ALIGNMENT) if t.dtype == "blob" else self.alignment)
            t.offset = pos
            pos += t.nbytes
        self.file_size = pos
        if self.bpw_key is not None:
            self.bits_per_weight = 8.0 * self.file_size / max(n_weights, 1)
            self._meta[self.bpw_key] = (F64, self.bits_per_weight)
            entries = [(k, mt, v) for k, (mt, v) in self._meta.items()]
            meta = encode_metadata(entries)
            assert table_offset == meta_offset + len(meta)  # F64 is fixed-size: layout unchanged
        self._meta_bytes = meta
        self._meta_offset = meta_offset
        self._table_offset = table_offset

        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            raise FileNotFoundError(errno.ENOENT, f"output folder {d} does not exist", self.path)
        fd, self._tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".", suffix=".tmp",
                                         dir=d)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the result gets ordinary file permissions
        self._f = os.fdopen(fd, "wb")
        self._guard(self._f.write, self._head_and_table())
        self._pos = table_offset + table_len
        self._start_tensor()

    def _head_and_table(self) -> bytes:
        table = encode_table(self._tensors)
        head = encode_header(self.file_size, self._meta_offset, self._meta_bytes, self._table_offset, table,
                             len(self._tensors))
        return head + self._meta_bytes + table

    def _start_tensor(self) -> None:
        self._crc = 0
        self._written = 0
        if self._next < len(self._tensors):
            t = self._tensors[self._next]
            pad = t.offset - self._pos
            if pad:
                self._guard(self._f.write, bytes(pad))
                self._pos += pad

    def write_tensor(self, name: str, data: bytes | np.ndarray) -> None:
        """Write the whole data of the next declared tensor (must be `name`)."""
        self.write_chunk(name, data)
        t = self._tensors[self._next]
        if self._written != t.nbytes:
            raise ValueError(f"tensor {name!r}: got {self._written} bytes, expected {t.nbytes}")
        self.end_tensor(name)

    def write_chunk(self, name: str, data: bytes | np.ndarray) -> None:
        """Append a piece of the current tensor's data (for tensors produced a few rows at a time)."""
        if self._f is None:
            raise RuntimeError("write before begin()")
        if self._next >= len(self._tensors):
            raise ValueError(f"tensor {name!r} was not declared (all declared tensors are written)")
        t = self._tensors[self._next]
        if t.name != name:
            raise ValueError(f"tensors must be written in declaration order: expected {t.name!r}, got {name!r}")
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        mv = memoryview(data).cast("B")
        if self._written + len(mv) > t.nbytes:
            raise ValueError(f"tensor {name!r}: more than the {t.nbytes} bytes its dtype and shape give")
        self._crc = crc32(mv, self._crc)
        self._guard(self._f.write, mv)
        self._written += len(mv)
        self._pos += len(mv)

    def end_tensor(self, name: str) -> None:
        t = self._tensors[self._next]
        if t.name != name or self._written != t.nbytes:
            raise ValueError(f"tensor {t.name!r}: {self._written} of {t.nbytes} bytes written")
        t.crc = self._crc
        self._next += 1
        self._start_tensor()

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, f"disk full while writing {self.path}; nothing written") from e
            raise

    def finish(self) -> None:
        if self._f is None:
            self.begin()
        if self._next != len(self._tensors):
            missing = [t.name for t in self._tensors[self._next:]]
            raise ValueError(f"{len(missing)} declared tensors were not written: {missing[:5]}")
        assert self._pos == self.file_size, (self._pos, self.file_size)
        self._f.seek(0)
        self._guard(self._f.write, self._head_and_table())
        self._guard(self._f.flush)
        self._guard(os.fsync, self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)
        self._tmp = None
        self._done = True
        try:  # make the rename itself durable
            dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def abort(self) -> None:
        """Drop everything written so far; the destination path is untouched."""
        if self._f is not None and not self._f.closed:
            try:
                self._f.close()
            except OSError:
                pass
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None

    @property
    def tensors(self) -> list[TensorInfo]:
        return list(self._tensors)

    def __enter__(self) -> "EdgeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.finish()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
        return False
