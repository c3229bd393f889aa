"""A Hugging Face model folder: config.json + *.safetensors (single, sharded with an index, or several files)
or pytorch_model*.bin (read with torch, weights_only) + tokenizer files.

Weights are memory-mapped; load(name) reads one tensor. Tokenizer handling: sources/hf_tokenizer.py.
GPTQ / AWQ int checkpoints (config.json quantization_config; hf_quant.py): each packed linear P (P.qweight,
P.qzeros, P.scales, P.g_idx) is offered as P.weight [N, K]; load() dequantizes it, stored_dtype() names the .edge
dtype that holds it exactly (int4_B / int4a_B / q8_0, int_blocks.py) and load_stored() gives those blocks, so
`--quant keep` copies them; the others are dequantized and re-quantized with the recipe, one note per reason.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from ..archs import arch_for_hf, hf_hparams
from .base import Source, malformed, read_json_object
from .hf_quant import PARTS, decode_awq, decode_gptq, read_quant_config
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
        with malformed(cfg_path, "bad quantization_config"):
            self.qconfig = read_quant_config(folder, self.config)
        self._packed: dict[str, str] = {}  # P.weight -> P, for the packed linears
        self._decoded: dict = {}
        if self.qconfig is not None:
            self._find_packed()
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

    def _find_packed(self) -> None:
        """Replace each packed linear's parts in `shapes` by its P.weight [N, K]; note what is not exact."""
        q = self.qconfig
        if self._torch_sd is not None:
            raise ValueError(f"{self.folder}: a {q.method.upper()} checkpoint is read from *.safetensors only "
                             "(pytorch_model*.bin packed words would be read as floats)")
        prefixes = sorted(n[:-len(".qweight")] for n in self.shapes if n.endswith(".qweight"))
        if not prefixes:
            raise ValueError(f"{self.folder}: quantization_config says {q.method} but no tensor is *.qweight")
        for p in prefixes:
            for part in ("qzeros", "scales"):
                if f"{p}.{part}" not in self.shapes:
                    raise ValueError(f"{self.folder}: {p}.qweight has no {p}.{part}")
            for part in PARTS:
                self.shapes.pop(f"{p}.{part}", None)
            self._packed[f"{p}.weight"] = p
        reasons: dict[str, list[str]] = {}
        for name in self._packed:
            lin = self._decode(name)
            self.shapes[name] = (lin.n, lin.k)
            why = lin.why_inexact()
            if why:
                reasons.setdefault(why, []).append(name)
        self.quantized = True
        self.quant_types = [q.describe()]
        for why, names in reasons.items():
            self.notes.append(f"{len(names)} {q.method.upper()} weights have no exact .edge form ({names[0]}: {why}); "
                              f"they were dequantized and re-quantized with the recipe")

    def _decode(self, name: str):
        """The PackedLinear of P.weight `name` (the last two are cached)."""
        if name not in self._decoded:
            if len(self._decoded) >= 2:
                self._decoded.clear()
            p, q = self._packed[name], self.qconfig
            raw = lambda part: self._where[f"{p}.{part}"].load_int(f"{p}.{part}")  # noqa: E731
            scales = self._where[f"{p}.scales"]
            s = scales.load(f"{p}.scales")
            if scales.tensors[f"{p}.scales"][0] == "F16":
                s = s.astype(np.float16)
            with malformed(self.folder, f"bad {q.method.upper()} tensors of {p}"):
                if q.method == "gptq":
                    g = raw("g_idx") if f"{p}.g_idx" in self._where else None
                    lin = decode_gptq(p, q, raw("qweight"), raw("qzeros"), s, g)
                else:
                    lin = decode_awq(p, q, raw("qweight"), raw("qzeros"), s)
            self._decoded[name] = lin
        return self._decoded[name]

    def stored_dtype(self, name: str) -> str | None:
        return self._decode(name).exact_dtype() if name in self._packed else None

    def load_stored(self, name: str) -> np.ndarray:
        if name not in self._packed:
            return super().load_stored(name)
        return self._decode(name).stored()

    def load(self, name: str) -> np.ndarray:
        if name in self._packed:
            return self._decode(name).dequantize()
        if self._torch_sd is not None:
            return self._torch_sd[name].float().numpy()
        return self._where[name].load(name)

    def mapped_file(self, name: str):
        return self._where.get(name)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._torch_sd = None
