"""Adapter files (docs/TRAINING.md "Adapter files") and training checkpoints: write atomically, read, and the
base file's checksum.

An adapter is an .edge file of f32 tensors `blk.{i}.{stem}.lora_a [r, in]`, `.lora_b [out, r]`, `.bias [out]`
(stem: attn_q attn_k attn_v attn_o ffn_gate ffn_up ffn_down; on an MoE layer the experts' matrices are
`blk.{i}.exp.{e}.{ffn_gate|ffn_up|ffn_down}.*`) with general.type = "adapter" and adapter.* keys;
the runtime applies it with `Model(path, adapter=...)` (csrc/adapter.h merges several). A checkpoint
(`ADAPTER.edge.ckpt`, general.type = "train_state") holds what `--resume` needs in one file: the parameters,
the optimizer state and the data position. Both are written by edgeconv's EdgeWriter: a temporary file in the
destination folder, fsync'ed and renamed over the destination, so a kill at any moment leaves the previous
file or the new one, never a mix. The checkpoint is self-contained (it does not need the adapter beside it).

base_checksum(path): CRC-32 of "name:dtype:d0xd1...:crc32hex\\n" over the base's tensor table in order: the
tensors' names, dtypes, shapes and stored CRCs (no offsets, no metadata; nothing is re-read), the same value as
csrc/adapter.cpp's base_checksum.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["TARGETS", "Adapter", "base_checksum", "write_adapter", "read_adapter", "parse_adapter_spec",
           "write_checkpoint", "read_checkpoint", "checkpoint_path"]

# --targets names -> the base file's tensor stems
TARGETS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_o", "gate": "ffn_gate", "up": "ffn_up",
           "down": "ffn_down"}
_PARTS = ("lora_a", "lora_b", "bias")


def base_checksum(path: str | os.PathLike) -> int:
    """The identity an adapter records for its base (see the module docstring)."""
    from edgeconv.format import EdgeFile

    crc = 0
    with EdgeFile(path) as f:
        for t in f.tensors:
            line = f"{t.name}:{t.dtype}:{'x'.join(str(int(s)) for s in t.shape)}:{t.crc:08x}\n"
            crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc & 0xFFFFFFFF


@dataclass
class Adapter:
    """An adapter's tensors (name -> f32 array) and metadata (key -> value)."""
    tensors: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.metadata.get("adapter.method", ""))

    @property
    def scale(self) -> float:
        """The LoRA scale alpha / rank (1.0 for an adapter without LoRA tensors)."""
        r = self.metadata.get("adapter.rank")
        return float(self.metadata["adapter.alpha"]) / float(r) if r else 1.0


_EXPERT_STEMS = ("ffn_gate", "ffn_up", "ffn_down")


def _check_name(name: str) -> None:
    parts = name.split(".")
    dense = (len(parts) == 4 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in TARGETS.values()
             and parts[3] in _PARTS)
    expert = (len(parts) == 6 and parts[0] == "blk" and parts[1].isdigit() and parts[2] == "exp" and parts[3].isdigit()
              and parts[4] in _EXPERT_STEMS and parts[5] in _PARTS)
    if not (dense or expert):
        raise ValueError(f"adapter tensor name {name!r} is not blk.{{i}}.{{{'|'.join(TARGETS.values())}}}."
                         f"{{{'|'.join(_PARTS)}}} or blk.{{i}}.exp.{{e}}.{{{'|'.join(_EXPERT_STEMS)}}}.{{{'|'.join(_PARTS)}}}")


def write_adapter(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], base_path: str | os.PathLike, *,
                  method: str, rank: int = 0, alpha: float = 0.0, targets: list[str] | tuple[str, ...] = (),
                  sparse_plan: list[str] | None = None, train_meta: Mapping[str, Any] | None = None,
                  checksum: int | None = None) -> None:
    """Write an adapter atomically. train_meta: extra `train.*` keys (step, seed, loss, ...)."""
    from edgeconv.writer import EdgeWriter

    names = sorted(tensors, key=_sort_key)
    for n in names:
        _check_name(n)
    with EdgeWriter(path, bits_per_weight_key=None) as w:
        w.add_metadata("general.type", "adapter")
        w.add_metadata("general.architecture", "adapter")
        w.add_metadata("adapter.method", method)
        w.add_metadata("adapter.rank", int(rank))
        w.add_metadata("adapter.alpha", float(alpha))
        if targets:
            w.add_metadata("adapter.targets", list(targets))
        w.add_metadata("adapter.base_checksum", int(base_checksum(base_path) if checksum is None else checksum))
        w.add_metadata("adapter.base_name", os.path.basename(os.fspath(base_path)))
        if sparse_plan:
            w.add_metadata("adapter.sparse_plan", list(sparse_plan))
        for k, v in (train_meta or {}).items():
            w.add_metadata(k if k.startswith("train.") else "train." + k, v)
        arrays = {n: np.ascontiguousarray(tensors[n], dtype=np.float32) for n in names}
        for n in names:
            w.declare(n, "f32", arrays[n].shape)
        w.begin()
        for n in names:
            w.write_tensor(n, arrays[n])


def _sort_key(name: str):
    p = name.split(".")
    if len(p) >= 3 and p[1].isdigit():
        return (int(p[1]), p[2], name)
    return (1 << 30, name, name)


def read_adapter(path: str | os.PathLike) -> Adapter:
    """Read and check an adapter (its type and tensor names; the CRCs)."""
    from edgeconv.format import EdgeFile

    with EdgeFile(path) as f:
        meta = dict(f.metadata)
        if meta.get("general.type") != "adapter":
            raise ValueError(f"{os.fspath(path)}: not an adapter (general.type is {meta.get('general.type')!r}); "
                             "adapters are written by `edgerun train`")
        bad = f.verify()
        if bad:
            raise ValueError(f"{os.fspath(path)}: tensors fail their checksum: {', '.join(bad[:5])}")
        tensors = {}
        for t in f.tensors:
            _check_name(t.name)
            if t.dtype != "f32":
                raise ValueError(f"{os.fspath(path)}: tensor {t.name!r} must be f32, not {t.dtype}")
            tensors[t.name] = np.array(f.array(t.name), dtype=np.float32)
    return Adapter(tensors, meta)


def parse_adapter_spec(spec: str | tuple | os.PathLike) -> tuple[str, float]:
    """'A.edge' -> (A.edge, 1.0); 'A.edge:0.5' -> (A.edge, 0.5); (path, scale) as it is. A path with a colon
    keeps it unless what follows the last colon is a number."""
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"an adapter is a path or (path, scale), got {spec!r}")
        path, scale = os.fspath(spec[0]), float(spec[1])
    else:
        text = os.fspath(spec)
        path, scale = text, 1.0
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                scale = float(tail)
                path = head
            except ValueError:
                pass
    if not np.isfinite(scale):
        raise ValueError(f"adapter {path}: the scale must be a finite number, got {scale}")
    if not path:
        raise ValueError("an adapter needs a file name")
    return path, scale


# ---- checkpoints (--resume) --------------------------------------------------------------------------

def checkpoint_path(adapter_path: str | os.PathLike) -> str:
    return os.fspath(adapter_path) + ".ckpt"


def _encode(obj: Any, tensors: dict[str, np.ndarray]) -> Any:
    """A JSON-able tree of obj: every array is moved to `tensors` (named by its index) and referenced."""
    if isinstance(obj, Mapping):
        return {"d": {str(k): _encode(v, tensors) for k, v in obj.items()}}
    if isinstance(obj, np.ndarray):
        name = f"t{len(tensors)}"
        tensors[name] = obj
        return {"t": name, "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, (list, tuple)):
        return {"l": [_encode(v, tensors) for v in obj], "tuple": isinstance(obj, tuple)}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"v": obj}
    raise TypeError(f"checkpoint: cannot store a value of type {type(obj).__name__}")


def _decode(node: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if "d" in node:
        return {k: _decode(v, arrays) for k, v in node["d"].items()}
    if "t" in node:
        dt = np.dtype(node["dtype"])
        n = int(np.prod(node["shape"], dtype=np.int64)) * dt.itemsize
        return arrays[node["t"]][:n].view(dt).reshape(node["shape"]).copy()
    if "l" in node:
        items = [_decode(v, arrays) for v in node["l"]]
        return tuple(items) if node["tuple"] else items
    return node["v"]


def write_checkpoint(path: str | os.PathLike, parameters: Mapping[str, np.ndarray], optimizer_state: Mapping,
                     state: Mapping[str, Any]) -> None:
    """One file with the parameters, the optimizer state (whatever dict of arrays and scalars the trainer
    returns) and the loop's state (step, data position, seed, ...), written atomically. Arrays are stored as
    raw bytes (exact), the tree as JSON in ckpt.tree."""
    import json

    from edgeconv.writer import EdgeWriter

    tensors: dict[str, np.ndarray] = {}
    tree = _encode({"param": dict(parameters), "opt": dict(optimizer_state), "state": dict(state)}, tensors)
    with EdgeWriter(path, bits_per_weight_key=None) as w:
        w.add_metadata("general.type", "train_state")
        w.add_metadata("general.architecture", "train_state")
        w.add_metadata("ckpt.tree", json.dumps(tree))
        raw = {}
        for n, a in tensors.items():  # the bytes, zero-padded to whole i32 words (the format has no u8 dtype)
            b = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
            raw[n] = np.concatenate([b, np.zeros(-len(b) % 4 or (4 if not len(b) else 0), np.uint8)])
        for n, b in raw.items():
            w.declare(n, "i32", (len(b) // 4,))
        w.begin()
        for n, b in raw.items():
            w.write_tensor(n, b)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(parameters, optimizer_state, state) as written by write_checkpoint; CRCs checked."""
    import json

    from edgeconv.format import EdgeFile

    path = os.fspath(path)
    with EdgeFile(path) as f:
        if f.metadata.get("general.type") != "train_state":
            raise ValueError(f"{path}: not a training checkpoint (general.type {f.metadata.get('general.type')!r})")
        bad = f.verify()
        if bad:
            raise ValueError(f"{path}: tensors fail their checksum: {', '.join(bad[:5])}")
        tree = json.loads(f.metadata["ckpt.tree"])
        arrays = {t.name: np.array(f.raw(t.name)) for t in f.tensors}
    out = _decode(tree, arrays)
    return out["param"], out["opt"], out["state"]
