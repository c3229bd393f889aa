"""Float32 weights of an MoE source by our names, read one tensor at a time.

ExpertReader(src).load(planned_expert) -> [gate [F, D], up [F, D], down [D, F]] float32: from per-expert
    tensors, or from slices of fused [E, 2F, D] / [E, D, F] tensors. A fused tensor is read once and kept
    while the same tensors are asked for (the exporter goes expert by expert through one layer), so a
    layer's fused tensors are held once, never per expert.
SourceWeights(src, plan, experts, load) is a read-only Mapping {our name: float32 array} over the
    non-expert plan (`load(src, planned_tensor)` = export._load: transposes, checks) and the experts
    (blk.i.exp.e.gate/up/down), loading on access: the calibration pass builds the reference with it
    lazily, so the model is never held whole. Derived tensors (the predictor) are not in it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Iterator

import numpy as np


class ExpertReader:
    def __init__(self, src):
        self.src = src
        self._fused: dict[str, np.ndarray] = {}

    def _fused_tensor(self, name: str) -> np.ndarray:
        if name not in self._fused:
            if len(self._fused) >= 2:  # gate_up + down of one layer
                self._fused.clear()
            self._fused[name] = self.src.load(name)
        return self._fused[name]

    def load_part(self, part) -> np.ndarray:
        if part.index is None:
            w = self.src.load(part.src)
        else:
            w = self._fused_tensor(part.src)[part.index]
            if part.rows is not None:
                w = w[part.rows[0]:part.rows[1]]
        w = np.ascontiguousarray(w, dtype=np.float32)
        if w.shape != part.shape:
            raise ValueError(f"expert tensor {part.src!r}: expected shape {part.shape}, got {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError(f"expert tensor {part.src!r} ({part.matrix}) contains NaN or infinity")
        return w

    def load(self, expert) -> list[np.ndarray]:
        return [self.load_part(p) for p in expert.parts]

    def release(self) -> None:
        self._fused.clear()


class SourceWeights(Mapping):
    def __init__(self, src, plan, experts, load: Callable):
        self._src, self._load = src, load
        self._plain = {p.name: p for p in plan if not p.derived}
        self._experts = {}
        for e in experts:
            for part in e.parts:
                self._experts[f"blk.{e.layer}.exp.{e.expert}.{part.matrix}"] = part
        self._reader = ExpertReader(src)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._plain:
            return self._load(self._src, self._plain[name])
        if name in self._experts:
            return self._reader.load_part(self._experts[name])
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self._plain
        yield from self._experts

    def __len__(self) -> int:
        return len(self._plain) + len(self._experts)

    def __contains__(self, name: object) -> bool:
        return name in self._plain or name in self._experts
