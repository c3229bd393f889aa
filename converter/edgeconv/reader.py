"""The validating .edge reader (docs/FORMAT.md): EdgeFile, a memory-mapped file whose every offset, size,
count and CRC was checked before use.

Checks at open: magic, version, flags, header CRC, file_size against the real size, section bounds and
overlaps, metadata and table CRCs, every count against the bytes that hold it, metadata key lengths and
uniqueness, tensor names/dtype/ndim, offset alignment, bounds, overlaps, and nbytes == rows × row_bytes.
Blob tensors (MoE expert blobs, docs/MOE.md §3) must be 1-D, at a multiple of 4096 and a multiple of
4096 long. Any violation is a ValueError naming the file and the problem. Per-tensor CRCs are checked by
verify(). MoE files: expert_weights(layer, expert, variant) decodes one expert through edgeconv.moe.blobs.
The C++ reader (csrc/format.cpp) enforces the same rules; tests/test_format.py cross-checks them.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Any

import numpy as np

from .format import (ARR_F32, ARR_I64, ARR_STR, DTYPE_BY_ID, F64, HEADER_CRC_SPAN, HEADER_SIZE, I64, MAGIC,
                     MAX_KEY_LEN, MAX_NAME_LEN, MAX_NDIM, META_TYPE_NAMES, MIN_ALIGNMENT, PAGE_ALIGNMENT, STR, VERSION,
                     _HEADER, TensorInfo, crc32)
from .quant import row_bytes

class _Cursor:
    """Bounds-checked little-endian reads over one section of the file."""

    def __init__(self, buf: memoryview, start: int, end: int, what: str, path: str):
        self.buf, self.pos, self.end, self.what, self.path = buf, start, end, what, path

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > self.end:
            raise ValueError(f"{self.path}: {self.what} is truncated (needs {n} bytes at offset {self.pos}, "
                             f"section ends at {self.end})")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        s = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self.take(s))

    def left(self) -> int:
        return self.end - self.pos


class EdgeFile:
    """A validated, memory-mapped .edge file.

    .header: dict of header fields; .metadata: key → value (I64 → int, F64 → float, STR → str,
    ARR_I64 → int64 array, ARR_F32 → float32 array, ARR_STR → list[str]); .meta_types: key → type name;
    .tensors: list[TensorInfo] in table order; raw(name) → uint8 view of the data (no copy);
    array(name) → dequantized float32 array; verify() → names whose CRC does not match.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        real_size = os.path.getsize(self.path)
        if real_size < HEADER_SIZE:
            raise ValueError(f"{self.path}: {real_size} bytes is too small for a .edge file "
                             f"(header alone is {HEADER_SIZE} bytes)")
        self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        buf = memoryview(self._mm)
        try:
            self._parse(buf, real_size)
        finally:
            buf.release()

    def _err(self, msg: str) -> ValueError:
        return ValueError(f"{self.path}: {msg}")

    def _parse(self, buf: memoryview, real_size: int) -> None:
        (magic, version, flags, file_size, meta_off, meta_size, table_off, table_size, n_tensors,
         meta_crc, table_crc, header_crc) = _HEADER.unpack(buf[:_HEADER.size])
        if magic != MAGIC:
            raise self._err(f"not a .edge file (magic {bytes(magic)!r}, expected {MAGIC!r})")
        if version != VERSION:
            raise self._err(f"unsupported .edge version {version} (this reader knows {VERSION}); "
                            "re-export it with this edgeconv")
        if crc32(buf[:HEADER_CRC_SPAN]) != header_crc:
            raise self._err("header CRC mismatch: the header is corrupt")
        if flags != 0:
            raise self._err(f"unknown flags 0x{flags:x} (must be 0)")
        if file_size != real_size:
            raise self._err(f"file is {real_size} bytes but its header says {file_size}: "
                            f"{'truncated' if real_size < file_size else 'trailing data'}; re-export or re-copy it")
        for name, off, size in (("metadata", meta_off, meta_size), ("tensor table", table_off, table_size)):
            if off < HEADER_SIZE or off + size > file_size:
                raise self._err(f"{name} section [{off}, {off + size}) lies outside [{HEADER_SIZE}, {file_size})")
        if meta_off < table_off + table_size and table_off < meta_off + meta_size:
            raise self._err("metadata and tensor table sections overlap")
        if crc32(buf[meta_off:meta_off + meta_size]) != meta_crc:
            raise self._err("metadata CRC mismatch: the metadata is corrupt")
        if crc32(buf[table_off:table_off + table_size]) != table_crc:
            raise self._err("tensor table CRC mismatch: the tensor table is corrupt")
        self.header = dict(magic=MAGIC.decode(), version=version, flags=flags, file_size=file_size,
                           meta_offset=meta_off, meta_size=meta_size, table_offset=table_off,
                           table_size=table_size, n_tensors=n_tensors, meta_crc32=meta_crc,
                           table_crc32=table_crc, header_crc32=header_crc)
        self._parse_meta(_Cursor(buf, meta_off, meta_off + meta_size, "metadata", self.path))
        self._parse_table(_Cursor(buf, table_off, table_off + table_size, "tensor table", self.path), n_tensors,
                          [(0, HEADER_SIZE), (meta_off, meta_off + meta_size), (table_off, table_off + table_size)])

    def _parse_meta(self, c: _Cursor) -> None:
        (n,) = c.unpack("I")
        if n * 17 > c.left():  # smallest entry: key_len 4 + key 1 + type 4 + value 8
            raise self._err(f"metadata claims {n} entries, which cannot fit in {c.left()} bytes")
        self.metadata: dict[str, Any] = {}
        self.meta_types: dict[str, str] = {}
        for _ in range(n):
            (klen,) = c.unpack("I")
            if not 1 <= klen <= MAX_KEY_LEN:
                raise self._err(f"metadata key length {klen} not in 1..{MAX_KEY_LEN}")
            try:
                key = bytes(c.take(klen)).decode("utf-8")
            except UnicodeDecodeError:
                raise self._err("metadata key is not UTF-8") from None
            if not key:
                raise self._err("empty metadata key")
            if key in self.metadata:
                raise self._err(f"duplicate metadata key {key!r}")
            (mtype,) = c.unpack("I")
            if mtype == I64:
                (v,) = c.unpack("q")
            elif mtype == F64:
                (v,) = c.unpack("d")
            elif mtype == STR:
                (ln,) = c.unpack("Q")
                v = self._utf8(c.take(ln), key)
            elif mtype in (ARR_I64, ARR_F32):
                (cnt,) = c.unpack("Q")
                if cnt > c.left() // (8 if mtype == ARR_I64 else 4):
                    raise self._err(f"metadata {key!r}: {cnt} elements cannot fit in the metadata section")
                dt = "<i8" if mtype == ARR_I64 else "<f4"
                v = np.frombuffer(c.take(cnt * np.dtype(dt).itemsize), dtype=dt).copy()
            elif mtype == ARR_STR:
                (cnt,) = c.unpack("Q")
                if cnt > c.left() // 4:
                    raise self._err(f"metadata {key!r}: {cnt} strings cannot fit in the metadata section")
                v = []
                for _ in range(cnt):
                    (ln,) = c.unpack("I")
                    v.append(self._utf8(c.take(ln), key))
            else:
                raise self._err(f"metadata {key!r}: unknown value type {mtype}")
            self.metadata[key] = v
            self.meta_types[key] = META_TYPE_NAMES[mtype]
        if c.left() != 0:
            raise self._err(f"{c.left()} unexplained bytes at the end of the metadata section")

    def _utf8(self, b: memoryview, key: str) -> str:
        try:
            return bytes(b).decode("utf-8")
        except UnicodeDecodeError:
            raise self._err(f"metadata {key!r}: string is not UTF-8") from None

    def _parse_table(self, c: _Cursor, n: int, sections: list[tuple[int, int]]) -> None:
        min_entry = 2 + 1 + 4 + 4 + 8 + 8 + 8 + 4
        if n * min_entry > c.left():
            raise self._err(f"header claims {n} tensors, which cannot fit in a {c.left()}-byte table")
        self.tensors: list[TensorInfo] = []
        self._by_name: dict[str, TensorInfo] = {}
        file_size = self.header["file_size"]
        for i in range(n):
            (nlen,) = c.unpack("H")
            if not 1 <= nlen <= MAX_NAME_LEN:
                raise self._err(f"tensor #{i}: name length {nlen} not in 1..{MAX_NAME_LEN}")
            try:
                name = bytes(c.take(nlen)).decode("utf-8")
            except UnicodeDecodeError:
                raise self._err(f"tensor #{i}: name is not UTF-8") from None
            dtype_id, ndim = c.unpack("II")
            if dtype_id not in DTYPE_BY_ID:
                raise self._err(f"tensor {name!r}: unknown dtype id {dtype_id}")
            if not 1 <= ndim <= MAX_NDIM:
                raise self._err(f"tensor {name!r}: ndim {ndim} not in 1..{MAX_NDIM}")
            shape = c.unpack(f"{ndim}Q")
            offset, nbytes, crc = c.unpack("QQI")
            dt = DTYPE_BY_ID[dtype_id]
            if any(s < 1 for s in shape):
                raise self._err(f"tensor {name!r}: shape {shape} has a zero dimension")
            if name in self._by_name:
                raise self._err(f"duplicate tensor name {name!r}")
            rb = row_bytes(dt.name, shape[-1])
            if rb <= 0:
                raise self._err(f"tensor {name!r}: last dim {shape[-1]} is not a multiple of the {dt.name} block")
            rows = math.prod(shape[:-1])
            if rows * rb != nbytes:
                raise self._err(f"tensor {name!r}: nbytes {nbytes} != rows × row_bytes = {rows} × {rb}")
            if offset % MIN_ALIGNMENT:
                raise self._err(f"tensor {name!r}: offset {offset} is not a multiple of {MIN_ALIGNMENT}")
            if dt.name == "blob" and (ndim != 1 or offset % PAGE_ALIGNMENT or nbytes % PAGE_ALIGNMENT):
                raise self._err(f"blob tensor {name!r}: offset {offset} and size {nbytes} must be multiples of "
                                f"{PAGE_ALIGNMENT} (1-D)")
            if offset + nbytes > file_size:
                raise self._err(f"tensor {name!r}: data [{offset}, {offset + nbytes}) runs past the end "
                                f"of the file ({file_size} bytes)")
            t = TensorInfo(name, dt.name, tuple(int(s) for s in shape), offset, nbytes, crc)
            self.tensors.append(t)
            self._by_name[name] = t
        if c.left() != 0:
            raise self._err(f"{c.left()} unexplained bytes at the end of the tensor table")
        spans = sorted(sections + [(t.offset, t.offset + t.nbytes) for t in self.tensors])
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            if b0 < a1:
                raise self._err(f"overlapping sections/tensors: [{a0}, {a1}) and [{b0}, {b1})")

    # -- access ----------------------------------------------------------------------------
    def tensor(self, name: str) -> TensorInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of a tensor, uint8[nbytes], a view of the mapping."""
        t = self.tensor(name)
        return self._mm[t.offset:t.offset + t.nbytes]

    def array(self, name: str) -> np.ndarray:
        """The tensor as float32 of its shape (dequantized for block types). Not for blobs: see expert_weights."""
        from .quant import dequantize

        t = self.tensor(name)
        if t.dtype == "blob":
            raise ValueError(f"{self.path}: tensor {name!r} is an expert blob, not an array; decode it with "
                             f"expert_weights(layer, expert, variant)")
        raw = self.raw(name)
        if t.dtype == "i32":
            return raw.view("<i4").reshape(t.shape).astype(np.float32)
        rows = math.prod(t.shape[:-1])
        return dequantize(raw.reshape(rows, -1), t.dtype, (rows, t.shape[-1])).reshape(t.shape)

    def verify(self) -> list[str]:
        """Names of tensors whose data CRC does not match the table (empty list: all good)."""
        bad = []
        for t in self.tensors:
            crc = 0
            raw = self.raw(t.name)
            step = 1 << 24
            for i in range(0, t.nbytes, step):
                crc = crc32(raw[i:i + step], crc)
            if crc != t.crc:
                bad.append(t.name)
        return bad

    def expert_variants(self) -> list[tuple[str, str, str]]:
        """[(variant name, blob, layout)] of an MoE file, best first (moe.variants / variant_blob / variant_layout)."""
        m = self.metadata
        names, blobs, lays = (m.get(k) for k in ("moe.variants", "moe.variant_blob", "moe.variant_layout"))
        if names is None or blobs is None or lays is None or not len(names) == len(blobs) == len(lays) > 0:
            raise ValueError(f"{self.path}: not an MoE file with expert variants (moe.variants / variant_blob / "
                             f"variant_layout missing or of different lengths)")
        return list(zip(names, blobs, lays))

    def expert_weights(self, layer: int, expert: int, variant: int | str | None = None) -> list[np.ndarray]:
        """float32 [gate [F, D], up [F, D], down [D, F]] of one expert in one variant (index or name; None:
        the file's moe.plan entry), decoded exactly as the runtime computes with them."""
        from .moe.blobs import expert_weights

        vs = self.expert_variants()
        m = self.metadata
        if variant is None:
            plan = m.get("moe.plan")
            variant = int(plan[layer * int(m["moe.n_experts"]) + expert]) if plan is not None else 0
        if isinstance(variant, str):
            names = [v[0] for v in vs]
            if variant not in names:
                raise ValueError(f"{self.path}: no expert variant {variant!r} (variants: {names})")
            variant = names.index(variant)
        if not 0 <= variant < len(vs):
            raise ValueError(f"{self.path}: expert variant {variant} out of range (0..{len(vs) - 1})")
        _, blob, layout = vs[variant]
        return expert_weights(self.raw(f"blk.{layer}.exp.{expert}.{blob}"), layout, int(m["llm.d_model"]),
                              int(m["moe.d_expert"]))

    @property
    def n_weights(self) -> int:
        """Model weights: every tensor's elements, blobs excepted, plus 3·D·F per expert of each MoE layer."""
        n = sum(t.n_elements for t in self.tensors if t.dtype != "blob")
        m = self.metadata
        if "moe.n_experts" in m and any(t.dtype == "blob" for t in self.tensors):
            layers = m.get("moe.layers")
            n_moe = int(np.sum(layers)) if layers is not None else int(m["llm.n_layers"])
            n += n_moe * int(m["moe.n_experts"]) * 3 * int(m["llm.d_model"]) * int(m["moe.d_expert"])
        return n

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.header["file_size"] / max(self.n_weights, 1)

    def close(self) -> None:
        mm = getattr(self, "_mm", None)
        if mm is not None and getattr(mm, "_mmap", None) is not None:
            try:
                mm._mmap.close()
            except (BufferError, ValueError):
                pass  # views still alive; the mapping goes when they do
        self._mm = None

    def __enter__(self) -> "EdgeFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
