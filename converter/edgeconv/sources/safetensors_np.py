"""Minimal memory-mapped safetensors reader (numpy only, bf16 included, no torch).

File: u64 header_len, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": ...},
then the data; offsets are relative to the end of the header. load(name) returns a float32 copy of one
tensor (load_int: an integer tensor as it is stored); nothing else is read, so converting streams the model one
tensor at a time.
"""
from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

_NP = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "I16": "<i2",
       "I8": "i1", "U8": "u1", "BOOL": "u1"}


class SafetensorsFile:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{self.path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise ValueError(f"{self.path}: safetensors header length {n} exceeds the file")
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise ValueError(f"{self.path}: bad safetensors header: {e}") from None
        if not isinstance(header, dict):
            raise ValueError(f"{self.path}: bad safetensors header: a JSON {type(header).__name__}, not an object")
        self.metadata = header.pop("__metadata__", {}) or {}
        self._base = 8 + n
        self._mm = np.memmap(self.path, dtype=np.uint8, mode="r") if size > self._base else None
        self.tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, info in header.items():
            try:
                dt, shape, (b, e) = info["dtype"], tuple(int(s) for s in info["shape"]), info["data_offsets"]
                b, e = int(b), int(e)
                if any(d < 0 for d in shape) or not isinstance(dt, str):
                    raise ValueError("negative dimension or a dtype that is not a string")
            except (TypeError, KeyError, ValueError, OverflowError) as err:
                raise ValueError(f"{self.path}: tensor {name!r}: malformed safetensors header entry "
                                 f"({type(err).__name__}: {err})") from None
            if dt not in _NP:
                raise ValueError(f"{self.path}: tensor {name!r} has unsupported dtype {dt}")
            if not 0 <= b <= e or self._base + e > size or e - b != math.prod(shape) * np.dtype(_NP[dt]).itemsize:
                raise ValueError(f"{self.path}: tensor {name!r} has inconsistent data_offsets {b}..{e}")
            self.tensors[name] = (dt, shape, b, e)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][1]

    def load(self, name: str) -> np.ndarray:
        """The tensor as float32 (a fresh array)."""
        dt, shape, b, e = self.tensors[name]
        if b == e:
            return np.zeros(shape, np.float32)
        raw = self._mm[self._base + b:self._base + e].view(_NP[dt]).reshape(shape)
        if dt == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32)

    def load_int(self, name: str) -> np.ndarray:
        """An integer tensor as its own dtype (a fresh array): packed GPTQ / AWQ words, g_idx."""
        dt, shape, b, e = self.tensors[name]
        if dt not in ("I32", "I64", "I16", "I8", "U8"):
            raise ValueError(f"{self.path}: tensor {name!r} is {dt}, expected an integer tensor")
        if b == e:
            return np.zeros(shape, np.dtype(_NP[dt]))
        return self._mm[self._base + b:self._base + e].view(_NP[dt]).reshape(shape).copy()

    def close(self) -> None:
        self._mm = None
