"""A Hugging Face model folder: config.json + *.safetensors (single, sharded with an index, or several files)
or pytorch_model*.bin (read with torch, weights_only) + tokenizer files.

Weights are memory-mapped; load(name) reads one tensor. Tokenizer handling: sources/hf_tokenizer.py.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from ..archs import arch_for_hf, hf_hparams
from .base import Source, malformed, read_json_object
from .hf_tokenizer import read_hf_tokenizer
from .safetensors_np import SafetensorsFile


class HFSource(Source):
    kind = "hf"
    naming = "hf"

    def __init__(self, folder: str, tokenizer_pre: str | None = None):
        super().__init__()
        self.folder = folder
        cfg_path = os.path.join(folder, "config.json")
        if not os.path.exists(cfg_path):
            raise ValueError(f"{folder}: no config.json (an HF model folder needs one)")
        self.config = read_json_object(cfg_path, "config.json")
        with malformed(cfg_path, "config.json does not describe a supported model"):
            self.arch = arch_for_hf(self.config)
            self.hparams = hf_hparams(self.arch, self.config)
        self.tie_config = self.config.get("tie_word_embeddings")
        self._files: list[SafetensorsFile] = []
        self._where: dict[str, SafetensorsFile] = {}
        self._torch_sd = None
        self._open_weights()
        with malformed(folder, "bad tokenizer files"):
            self.tokenizer = read_hf_tokenizer(folder, self.config, self.hparams["llm.vocab_size"], tokenizer_pre)
        self.general = {"general.name": self.config.get("_name_or_path") or os.path.basename(os.path.abspath(folder)),
                        "general.source": f"hf:{os.path.basename(os.path.abspath(folder))}"}

    def _open_weights(self) -> None:
        index = os.path.join(self.folder, "model.safetensors.index.json")
        if os.path.exists(index):
            with malformed(index, "bad safetensors index"):
                files = sorted(set(read_json_object(index, "the safetensors index")["weight_map"].values()))
                if not all(isinstance(p, str) for p in files):
                    raise ValueError("weight_map values must be file names")
            paths = [os.path.join(self.folder, p) for p in files]
        else:
            paths = sorted(glob.glob(os.path.join(self.folder, "*.safetensors")))
        if paths:
            for p in paths:
                sf = SafetensorsFile(p)
                self._files.append(sf)
                for name, (_, shape, _, _) in sf.tensors.items():
                    if name in self._where:
                        raise ValueError(f"{self.folder}: tensor {name!r} is in two safetensors files")
                    self._where[name] = sf
                    self.shapes[name] = shape
            return
        bins = sorted(glob.glob(os.path.join(self.folder, "pytorch_model*.bin")))
        if bins:
            from .torch_ckpt import load_state_dict

            self._torch_sd = {}
            for p in bins:
                sd, _ = load_state_dict(p)
                self._torch_sd.update(sd)
            self.shapes = {k: tuple(v.shape) for k, v in self._torch_sd.items()}
            return
        raise ValueError(f"{self.folder}: no *.safetensors or pytorch_model*.bin weights")

    def load(self, name: str) -> np.ndarray:
        if self._torch_sd is not None:
            return self._torch_sd[name].float().numpy()
        return self._where[name].load(name)

    def mapped_file(self, name: str):
        return self._where.get(name)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._torch_sd = None
