"""Read a Hugging Face MoE folder (config.json + model.safetensors or sharded model-*.safetensors with
model.safetensors.index.json) into our config dict and our tensor names.

    config, weights = load_hf_folder("SmallThinker-4BA0.6B-Instruct", lazy=True)
    model = MoeReference(config, weights, lazy=True)       # runs a 4B model in the memory of one layer

weights maps our names (hf_names.moe_hf_to_ours, fused 3-D experts split) to torch tensors in the
file's dtype (bf16 stays bf16). lazy=True returns a Mapping that reads a tensor from the files each time
it is looked up (safetensors slices: a fused expert tensor is read one expert at a time); lazy=False
reads everything now.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Mapping

import torch

from ..hf_names import _IGNORED, hf_config_to_moe, moe_hf_to_ours

__all__ = ["load_hf_folder", "LazyWeights", "safetensors_index"]


def safetensors_index(dir: str | os.PathLike) -> dict[str, str]:
    """HF tensor name -> safetensors file path, from model.safetensors.index.json or model.safetensors."""
    dir = os.fspath(dir)
    index = os.path.join(dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return {name: os.path.join(dir, file) for name, file in weight_map.items()}
    single = os.path.join(dir, "model.safetensors")
    if not os.path.exists(single):
        raise FileNotFoundError(f"{dir}: neither model.safetensors nor model.safetensors.index.json")
    from safetensors import safe_open
    with safe_open(single, framework="pt") as f:
        return {name: single for name in f.keys()}


class LazyWeights(Mapping):
    """our name -> torch tensor, read from the safetensors files on each lookup (nothing is cached)."""

    def __init__(self, plan: dict[str, tuple[str, str, tuple]]):
        self._plan = plan                 # our name -> (file, HF name, index into the HF tensor)
        self._files: dict[str, object] = {}

    def _open(self, path: str):
        if path not in self._files:
            from safetensors import safe_open
            self._files[path] = safe_open(path, framework="pt")
        return self._files[path]

    def __getitem__(self, name: str) -> torch.Tensor:
        path, hf_name, index = self._plan[name]
        f = self._open(path)
        return f.get_slice(hf_name)[index] if index else f.get_tensor(hf_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan)

    def __len__(self) -> int:
        return len(self._plan)


def load_hf_folder(dir: str | os.PathLike, lazy: bool = False) -> tuple[dict, Mapping[str, torch.Tensor]]:
    """(our config dict, our weights) of an HF MoE folder. Unknown tensor names raise ValueError."""
    from safetensors import safe_open

    dir = os.fspath(dir)
    with open(os.path.join(dir, "config.json")) as f:
        config = hf_config_to_moe(json.load(f))
    arch, tied = str(config["general.architecture"]), bool(config["llm.tied_head"])
    plan: dict[str, tuple[str, str, tuple]] = {}
    unknown = []
    by_file: dict[str, list[str]] = {}
    for name, path in safetensors_index(dir).items():
        by_file.setdefault(path, []).append(name)
    for path, names in sorted(by_file.items()):
        with safe_open(path, framework="pt") as f:
            for name in names:
                if _IGNORED.search(name):
                    continue
                items = moe_hf_to_ours(name, f.get_slice(name).get_shape(), arch)
                if items is None:
                    unknown.append(name)
                    continue
                for ours, index in items:
                    if not (ours == "output" and tied):
                        plan[ours] = (path, name, index)
    if unknown:
        raise ValueError(f"{dir}: unknown tensors for {arch}: {sorted(unknown)[:8]}")
    lw = LazyWeights(plan)
    return config, (lw if lazy else {name: lw[name] for name in plan})
