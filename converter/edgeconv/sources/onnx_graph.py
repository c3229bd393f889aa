"""An ONNX graph as the ONNX importer walks it: constants read lazily, producers and consumers indexed.

OnnxGraph(path) parses the model proto without its external data (onnx.load(load_external_data=False)), so
nothing of a multi-GB `model.onnx.data` is read until a tensor is asked for:
  const(value)      numpy array of an initializer or a Constant node's output (None for computed values);
                    external data (location, offset, length) is read from the file beside the model, with the
                    location checked to stay inside the model's folder and the range inside the file
  is_const(value)   whether `value` is a constant (no data read)
  const_shape(v)    its shape, from the proto (no data read)
  producer(v)       the node computing `v` (None for graph inputs and constants)
  consumers(v)      [(node, input index)] of the nodes reading `v`, in graph order
  index(node)       the node's position in the (topologically sorted) node list
  attrs(node)       {attribute name: python value}
  back(v, ops)      follow `v` back through single-input ops of type `ops` (Cast, Identity, ...) and return
                    (the first value not produced by one of them, [the ops passed])
Everything raises OnnxGraphError (a ValueError naming the file) for malformed input.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

PASS = ("Identity", "Cast")
SUPPORTED = "ONNX files other than llama / qwen2 / qwen3 decoder graphs are not supported yet"  # ops that do not change a value's meaning for weight tracing


class OnnxGraphError(ValueError):
    """A malformed or unreadable ONNX file; the message names the file."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise RuntimeError("reading ONNX models needs the onnx package: pip install onnx "
                           "(or pip install 'edgerun[onnx]')") from None
    return onnx


def node_label(node) -> str:
    """'name' (domain::Op) for messages."""
    dom = f"{node.domain}::" if node.domain not in ("", "ai.onnx") else ""
    return f"{node.name or node.output[0]!r} ({dom}{node.op_type})"


class OnnxGraph:
    def __init__(self, path: str):
        onnx = _onnx()
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        try:
            self.model = onnx.load(path, load_external_data=False)
        except Exception as e:  # untrusted bytes: any protobuf error is one line naming the file
            raise OnnxGraphError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                                 f"{' '.join(str(e).split())[:200]}); {SUPPORTED}") from None
        g = self.model.graph
        if not g.node:
            raise OnnxGraphError(f"{path}: the ONNX graph has no nodes; {SUPPORTED}")
        self.nodes = list(g.node)
        self.inputs = {i.name for i in g.input}
        self.outputs = [o.name for o in g.output]
        self._init = {t.name: t for t in g.initializer}
        self._const_node = {}
        self._producer = {}
        self._consumers: dict[str, list] = {}
        self._index = {}
        for k, n in enumerate(self.nodes):
            self._index[id(n)] = k
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                self._const_node[n.output[0]] = n
            for o in n.output:
                if o:
                    self._producer[o] = n
            for i, v in enumerate(n.input):
                if v:
                    self._consumers.setdefault(v, []).append((n, i))
        self._cache: dict[str, np.ndarray] = {}

    # ---- structure ----
    def producer(self, v: str):
        return self._producer.get(v)

    def consumers(self, v: str) -> list:
        return self._consumers.get(v, [])

    def index(self, node) -> int:
        return self._index[id(node)]

    @staticmethod
    def attrs(node) -> dict[str, Any]:
        onnx = _onnx()
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def back(self, v: str, ops=PASS) -> tuple[str, list]:
        seen = []
        while True:
            p = self._producer.get(v)
            if p is None or p.op_type not in ops or p.domain not in ("", "ai.onnx") or not p.input:
                return v, seen
            seen.append(p)
            v = p.input[0]

    # ---- constants ----
    def is_const(self, v: str) -> bool:
        return v in self._init or v in self._const_node

    def const_shape(self, v: str) -> tuple[int, ...] | None:
        if v in self._init:
            return tuple(int(d) for d in self._init[v].dims)
        if v in self._const_node:
            return tuple(self.const(v).shape)
        return None

    def const(self, v: str) -> np.ndarray | None:
        if v in self._cache:
            return self._cache[v]
        if v in self._init:
            arr = self._tensor(self._init[v], v)
        elif v in self._const_node:
            arr = self._constant_node(self._const_node[v])
        else:
            return None
        if arr.size <= 4096:  # small constants are looked at many times; weights are read once
            self._cache[v] = arr
        return arr

    def _constant_node(self, n) -> np.ndarray:
        a = n.attribute[0] if len(n.attribute) == 1 else None
        if a is None:
            raise OnnxGraphError(f"{self.path}: Constant node {node_label(n)} has {len(n.attribute)} attributes")
        onnx = _onnx()
        val = onnx.helper.get_attribute_value(a)
        if isinstance(val, onnx.TensorProto):
            return self._tensor(val, n.output[0])
        if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
            return np.asarray(val, dtype=np.float32 if "float" in a.name else np.int64)
        raise OnnxGraphError(f"{self.path}: Constant node {node_label(n)} has an unsupported {a.name!r} value")

    def _tensor(self, t, name: str) -> np.ndarray:
        onnx = _onnx()
        from onnx import numpy_helper

        dims = tuple(int(d) for d in t.dims)
        if any(d < 0 for d in dims):
            raise OnnxGraphError(f"{self.path}: tensor {name!r} has negative dims {dims}")
        if t.data_location != onnx.TensorProto.EXTERNAL:
            try:
                return numpy_helper.to_array(t)
            except Exception as e:
                raise OnnxGraphError(f"{self.path}: tensor {name!r} cannot be read ({type(e).__name__}: {e})") from None
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        full = os.path.realpath(os.path.join(self.folder, loc))
        if not loc or os.path.isabs(loc) or not full.startswith(os.path.realpath(self.folder) + os.sep):
            raise OnnxGraphError(f"{self.path}: tensor {name!r} has external data {loc!r} outside the model's folder")
        if not os.path.isfile(full):
            raise OnnxGraphError(f"{self.path}: tensor {name!r}: external data file {loc!r} is missing (it must lie "
                                 "beside the .onnx file)")
        bf16 = t.data_type == onnx.TensorProto.BFLOAT16
        try:
            dt = np.dtype(np.uint16) if bf16 else np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
        except Exception:
            raise OnnxGraphError(f"{self.path}: tensor {name!r} has unsupported data type {t.data_type}") from None
        n = int(np.prod(dims, dtype=np.int64))
        offset = int(info.get("offset", 0))
        length = int(info.get("length", n * dt.itemsize))
        size = os.path.getsize(full)
        if length != n * dt.itemsize or offset < 0 or offset + length > size:
            raise OnnxGraphError(f"{self.path}: truncated or inconsistent external data for tensor {name!r}: bytes "
                                 f"{offset}..{offset + length} of {loc!r} ({size} bytes), {n} × {dt} expected")
        arr = np.fromfile(full, dtype=dt.newbyteorder("<"), count=n, offset=offset).reshape(dims)
        if bf16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr
