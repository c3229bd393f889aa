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

import mmap
from collections.abc import Mapping
from typing import Callable, Iterator

import numpy as np

_PAGE = mmap.PAGESIZE


def release_pages(src, name: str) -> None:
    """Tell the kernel this process is done with the mapped pages of source tensor `name` (safetensors
    sources: madvise(MADV_DONTNEED) on its byte range). The page cache keeps them; they only stop counting
    in this process's resident set, which otherwise grows by every byte of the checkpoint read through the
    mapping (8 GB for a 4B bf16 model). Best effort: other sources, or a platform without madvise, are
    left alone. Callers must hold no view into the mapping (loads return copies)."""
    sf = src.mapped_file(name)
    mm = getattr(getattr(sf, "_mm", None), "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or name not in getattr(sf, "tensors", {}):
        return
    _, _, b, e = sf.tensors[name]
    start = (sf._base + b) // _PAGE * _PAGE
    end = sf._base + e
    try:
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)
    except (OSError, ValueError, AttributeError):
        pass


def source_row_blocks(src, name: str, shape: tuple[int, ...], step: int) -> Iterator[np.ndarray] | None:
    """float32 row blocks [<= step, cols] of source tensor `name` read straight from a safetensors
    mapping, each block's pages released after use; None when the source cannot be sliced (then load the
    whole tensor). For the largest tensors (a 151936 × 1536 embedding is 0.9 GB as float32, 1.9 GB
    while bf16 is widened in one piece) the exporter then holds one block, never the tensor."""
    from ..sources.safetensors_np import _NP

    sf = src.mapped_file(name)
    if sf is None or getattr(sf, "_mm", None) is None or name not in getattr(sf, "tensors", {}):
        return None
    dt, sshape, b, e = sf.tensors[name]
    if tuple(sshape) != tuple(shape) or dt not in ("F32", "F16", "BF16") or b == e:
        return None

    def gen() -> Iterator[np.ndarray]:
        cols = shape[-1]
        raw = sf._mm[sf._base + b:sf._base + e].view(_NP[dt]).reshape(-1, cols)
        isz = np.dtype(_NP[dt]).itemsize
        mm = getattr(sf._mm, "_mmap", None)
        for r0 in range(0, raw.shape[0], step):
            x = raw[r0:r0 + step]
            x = (x.astype(np.uint32) << 16).view(np.float32) if dt == "BF16" else x.astype(np.float32)
            if not np.isfinite(x).all():
                raise ValueError(f"tensor (source {name!r}) contains NaN or infinity in rows {r0}..{r0 + len(x) - 1}")
            yield x
            if mm is not None and hasattr(mm, "madvise"):
                lo = (sf._base + b + r0 * cols * isz) // _PAGE * _PAGE
                hi = sf._base + b + (r0 + len(x)) * cols * isz
                try:
                    mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
                except (OSError, ValueError):
                    pass

    return gen()


class ExpertReader:
    def __init__(self, src):
        self.src = src
        self._fused: dict[str, np.ndarray] = {}

    def _fused_tensor(self, name: str) -> np.ndarray:
        if name not in self._fused:
            if len(self._fused) >= 2:  # gate_up + down of one layer
                self._fused.clear()
            self._fused[name] = np.ascontiguousarray(self.src.load(name), dtype=np.float32)
            release_pages(self.src, name)
        return self._fused[name]

    def load_part(self, part) -> np.ndarray:
        if part.index is None:
            w = self.src.load(part.src)
            release_pages(self.src, part.src)
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
