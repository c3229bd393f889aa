"""Load an .edge file into the reference decoder, dequantizing every tensor to float32.

    model = load_edge_reference("tiny.q8.edge")          # Reference over the dequantized weights
    model.logits(tokens)                                  # what the C++ runtime should compute, up to
                                                          # its activation quantization and summation order

The file is read with the converter's validating reader (edgeconv.format.EdgeFile); each tensor is
turned into float32 of its shape by edgeconv.quant.dequantize (via EdgeFile.array), so the reference
sees exactly the weights the runtime sees. The config is the file's metadata (`llm.*` keys).
Needs the edgeconv package: from an install, or from converter/ in this source tree.
"""

from __future__ import annotations

import os
import sys

import torch

from .llama import Reference

__all__ = ["load_edge_reference", "edge_weights"]


def _edgeconv_format():
    try:
        from edgeconv import format as edge_format
    except ImportError:
        # Source tree without an install: converter/ sits beside models/.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                        "converter"))
        from edgeconv import format as edge_format
    return edge_format


def edge_weights(path: str | os.PathLike):
    """(metadata dict, {tensor name: float32 numpy array}) of an .edge file, every tensor dequantized
    (a private copy: nothing refers to the file's mapping afterwards)."""
    edge_format = _edgeconv_format()
    with edge_format.EdgeFile(path) as f:
        meta = dict(f.metadata)
        weights = {t.name: f.array(t.name).copy() for t in f.tensors}
    return meta, weights


def load_edge_reference(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Reference:
    """A Reference built from an .edge file's `llm.*` metadata and dequantized tensors.

    Raises ValueError for an invalid file (from the reader) or a tensor set that does not match the
    metadata (missing/extra tensor, wrong shape), naming the tensor."""
    meta, weights = edge_weights(path)
    arch = meta.get("general.architecture")
    if arch not in ("llama", "qwen2", "qwen3"):
        raise ValueError(f"{os.fspath(path)}: general.architecture {arch!r} is not a dense decoder this "
                         f"reference implements (llama, qwen2, qwen3)")
    return Reference(meta, weights, dtype=dtype)
