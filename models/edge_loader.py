"""Load an .edge file into the reference decoder, dequantizing every tensor to float32.

    model = load_edge_reference("tiny.q8.edge")          # Reference (dense) or MoeReference (MoE)
    model.logits(tokens)                                  # what the C++ runtime should compute, up to
                                                          # its activation quantization and summation order

The file is read with the converter's validating reader (edgeconv.format.EdgeFile); each tensor is
turned into float32 of its shape by edgeconv.quant.dequantize (via EdgeFile.array), so the reference
sees exactly the weights the runtime sees. The config is the file's metadata (`llm.*`, `moe.*` keys).

MoE files (docs/MOE.md): each expert is decoded from its blob by the converter's decoder
(EdgeFile.expert_weights -> edgeconv.moe.blobs) in one variant: `variant=None` reads each expert in its
moe.plan variant (what the runtime serves by default), an index or a name ("int4", "int2", "q8_0")
reads every expert in that variant. The reference gets them as float blk.i.exp.e.gate/up/down.
lazy=True keeps the file open and decodes each tensor when the reference uses it (a large model in the
memory of one layer; every use decodes again); lazy=False copies everything now.
Needs the edgeconv package: from an install, or from converter/ in this source tree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import numpy as np
import torch

from .hf_names import MOE_FAMILIES
from .llama import Reference

__all__ = ["load_edge_reference", "edge_weights", "EdgeWeights"]

_MOE_KEYS = ("moe.n_experts", "moe.n_experts_used", "moe.d_expert")


def _edgeconv_format():
    try:
        from edgeconv import format as edge_format
    except ImportError:
        # Source tree without an install: converter/ sits beside models/.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                        "converter"))
        from edgeconv import format as edge_format
    return edge_format


class EdgeWeights(Mapping):
    """{our tensor name: float32 numpy array} of an open .edge file, decoded on access (fresh arrays).
    Blob tensors are replaced by the float expert matrices blk.i.exp.e.gate/up/down of `variant`."""

    def __init__(self, f, variant: int | str | None = None):
        self._f = f
        self._variant = variant
        self._plain = [t.name for t in f.tensors if t.dtype != "blob"]
        self._experts: dict[str, tuple[int, int, int]] = {}
        m = f.metadata
        if any(t.dtype == "blob" for t in f.tensors):
            f.expert_variants()  # validates the variant keys
            layers = m.get("moe.layers")
            layers = [1] * int(m["llm.n_layers"]) if layers is None else [int(x) for x in layers]
            for i, is_moe in enumerate(layers):
                if is_moe:
                    for e in range(int(m["moe.n_experts"])):
                        for j, part in enumerate(("gate", "up", "down")):
                            self._experts[f"blk.{i}.exp.{e}.{part}"] = (i, e, j)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._experts:
            i, e, j = self._experts[name]
            return self._f.expert_weights(i, e, self._variant)[j]
        if name in self._plain:
            return self._f.array(name).copy()
        raise KeyError(name)

    def __iter__(self):
        yield from self._plain
        yield from self._experts

    def __len__(self) -> int:
        return len(self._plain) + len(self._experts)

    def __contains__(self, name: object) -> bool:
        return name in self._experts or name in self._plain


def edge_weights(path: str | os.PathLike, variant: int | str | None = None):
    """(metadata dict, {tensor name: float32 numpy array}) of an .edge file, every tensor dequantized
    (a private copy: nothing refers to the file's mapping afterwards); MoE experts decoded as above."""
    edge_format = _edgeconv_format()
    with edge_format.EdgeFile(path) as f:
        meta = dict(f.metadata)
        src = EdgeWeights(f, variant)
        weights = {}
        for name in src:  # expert by expert: a blob is decoded once for its three matrices
            if name.endswith(".gate") and name in src._experts:
                i, e, _ = src._experts[name]
                g, u, d = f.expert_weights(i, e, variant)
                weights.update({name: g, name[:-5] + ".up": u, name[:-5] + ".down": d})
            elif name not in weights:
                weights[name] = src[name]
    return meta, weights


def load_edge_reference(path: str | os.PathLike, dtype: torch.dtype = torch.float32,
                        variant: int | str | None = None, lazy: bool = False):
    """A Reference (a file without moe.* keys) or models.moe.MoeReference (with them) built from an .edge
    file's metadata and dequantized tensors. general.architecture is only checked against the keys: an MoE
    family's label on a file without its moe.* keys is an error.

    Raises ValueError for an invalid file (from the reader) or a tensor set that does not match the
    metadata (missing/extra tensor, wrong shape), naming the tensor."""
    edge_format = _edgeconv_format()
    with edge_format.EdgeFile(path) as f:
        arch = f.metadata.get("general.architecture")
        missing = [k for k in _MOE_KEYS if k not in f.metadata]
    if missing and (arch in MOE_FAMILIES or len(missing) < len(_MOE_KEYS)):
        what = (f"general.architecture {arch!r} is a mixture-of-experts family" if arch in MOE_FAMILIES else
                "the file has moe.* keys")
        raise ValueError(f"{os.fspath(path)}: {what} but the file lacks {', '.join(missing)} (docs/MOE.md §2); "
                         f"re-export it with edgeconv")
    if missing:  # no moe.* keys: a dense decoder, whatever its label
        if variant is not None or lazy:
            raise ValueError(f"{os.fspath(path)}: variant / lazy apply to MoE files; this one is {arch}")
        meta, weights = edge_weights(path)
        return Reference(meta, weights, dtype=dtype)
    from .moe import MoeReference

    if lazy:
        f = edge_format.EdgeFile(path)  # stays open while the reference lives (EdgeWeights holds it)
        return MoeReference(dict(f.metadata), EdgeWeights(f, variant), dtype=dtype, lazy=True)
    meta, weights = edge_weights(path, variant)
    return MoeReference(meta, weights, dtype=dtype)
