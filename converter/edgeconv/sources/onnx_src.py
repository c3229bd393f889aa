"""An ONNX decoder (`model.onnx`, external data `model.onnx.data` beside it) as a Source (sources/base.py).

The graph is matched structurally (onnx_decoder.match_decoder): exporter-specific initializer names are never
read, so torch.onnx.export (dynamo or TorchScript) and ONNX Runtime GenAI builder graphs all work, f32 / f16 /
bf16 weights or com.microsoft MatMulNBits. Tensors are offered under our names (naming "edge").
  hyper-parameters  from the graph; genai_config.json beside the model (when present) gives context_length and
                    is cross-checked (head_size, heads, kv heads, hidden size, layers: a mismatch is an error);
                    config.json beside it gives max_position_embeddings. Otherwise llm.max_ctx is the RoPE cache
                    length, or 2048.
  tokenizer         tokenizer.json / tokenizer.model (+ tokenizer_config.json) beside the model, ids from
                    config.json or genai_config.json (read_hf_tokenizer)
  MatMulNBits       load() dequantizes; stored_dtype() names the .edge dtype that holds the blocks exactly
                    (onnx_nbits.py: int4_B / int4a_B / q8_0), so `--quant keep` (or int4 on block-32 symmetric
                    weights) copies them; the others are dequantized and re-quantized with a note.
A directory holding genai_config.json (and no config.json) opens the model file it names.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..archs import ARCHS, arch_keys
from .base import Source
from .hf_tokenizer import read_hf_tokenizer
from .onnx_decoder import match_decoder
from .onnx_graph import OnnxGraph
from .onnx_nbits import read_nbits


def _json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            v = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if not isinstance(v, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return v


def onnx_model_in(folder: str) -> str | None:
    """The model file named by folder/genai_config.json (an ONNX Runtime GenAI folder), else None."""
    gc = os.path.join(folder, "genai_config.json")
    if not os.path.exists(gc) or os.path.exists(os.path.join(folder, "config.json")):
        return None
    name = ((_json(gc).get("model") or {}).get("decoder") or {}).get("filename") or "model.onnx"
    return os.path.join(folder, os.path.basename(name))


class OnnxSource(Source):
    kind = "onnx"
    naming = "edge"

    def __init__(self, path: str, tokenizer_pre: str | None = None):
        super().__init__()
        self.path = path
        self.g = OnnxGraph(path)
        m = match_decoder(self.g, path)
        self.match = m
        self.arch = next(a for a in ARCHS.values() if a.name == m.arch)
        folder = self.g.folder
        gc_path, cfg_path = os.path.join(folder, "genai_config.json"), os.path.join(folder, "config.json")
        genai = _json(gc_path).get("model", {}) if os.path.exists(gc_path) else {}
        cfg = _json(cfg_path) if os.path.exists(cfg_path) else {}
        hp = dict(m.hp)
        self._check_genai(genai, hp, gc_path)
        ctx = genai.get("context_length") or cfg.get("max_position_embeddings") or hp.get("llm.max_ctx") or 2048
        hp["llm.max_ctx"] = int(ctx)
        self.hparams = {**hp, **arch_keys(self.arch)}
        self.tie_config = m.tied
        self.shapes = {name: w.shape for name, w in m.tensors.items()}
        self._nbits: dict[int, Any] = {}
        inexact = {}
        for name, w in m.tensors.items():
            if w.nbits is not None:
                nb = self._decode(w.nbits)
                why = nb.why_inexact()
                if why:
                    inexact[name] = why
        nodes = {id(w.nbits): w.nbits for w in m.tensors.values() if w.nbits is not None}
        self.quantized = bool(nodes)
        if nodes:
            kinds = sorted({f"{nb.bits}-bit block {nb.block}{'' if np.all(nb.zp == 1 << (nb.bits - 1)) else ' asym'}"
                            for nb in (self._decode(n) for n in nodes.values())})
            self.quant_types = [f"MatMulNBits {k}" for k in kinds]
        if inexact:
            first = next(iter(inexact.items()))
            blocks = sorted({self._decode(w.nbits).block for n, w in m.tensors.items() if n in inexact})
            self.notes.append(f"{len(inexact)} MatMulNBits weights have no exact .edge form ({first[0]}: "
                              f"{first[1]}); they were dequantized and re-quantized with the recipe (their blocks "
                              f"are {'/'.join(map(str, blocks))} wide: --tensor-type 'REGEX=int4_{blocks[0]}' "
                              "re-quantizes them on the same blocks, the smallest error)")
        tok_cfg = dict(cfg)
        for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if k in genai and k not in tok_cfg:
                tok_cfg[k] = genai[k]
        self.tokenizer = read_hf_tokenizer(folder, tok_cfg, hp["llm.vocab_size"], tokenizer_pre)
        self.general = {"general.name": cfg.get("_name_or_path") or os.path.basename(folder) or "onnx",
                        "general.source": f"onnx:{os.path.basename(path)}"}

    @staticmethod
    def _check_genai(genai: dict, hp: dict, where: str) -> None:
        dec = genai.get("decoder") or {}
        pairs = (("head_size", "llm.head_dim"), ("hidden_size", "llm.d_model"), ("num_attention_heads", "llm.n_heads"),
                 ("num_key_value_heads", "llm.n_kv_heads"), ("num_hidden_layers", "llm.n_layers"))
        for theirs, ours in pairs:
            if theirs in dec and int(dec[theirs]) != hp[ours]:
                raise ValueError(f"{where}: decoder.{theirs} = {dec[theirs]} but the graph has {ours} = {hp[ours]}")
        if "vocab_size" in genai and int(genai["vocab_size"]) != hp["llm.vocab_size"]:
            raise ValueError(f"{where}: vocab_size {genai['vocab_size']} but the embedding has {hp['llm.vocab_size']}")

    def _decode(self, node):
        if id(node) not in self._nbits:
            if len(self._nbits) >= 2:
                self._nbits.clear()
            self._nbits[id(node)] = read_nbits(self.g, node, self.path)
        return self._nbits[id(node)]

    def load(self, name: str) -> np.ndarray:
        w = self.match.tensors[name]
        if w.nbits is not None:
            a = self._decode(w.nbits).dequantize()
        else:
            a = self.g.const(w.const)
            if a.dtype.kind != "f":
                raise ValueError(f"{self.path}: tensor {name} (constant {w.const!r}) is {a.dtype}, not float")
            a = a.astype(np.float32)
            if w.transpose:
                a = a.T
        if w.rows is not None:
            a = a[w.rows[0]:w.rows[1]]
        return np.ascontiguousarray(a, dtype=np.float32)

    def stored_dtype(self, name: str) -> str | None:
        w = self.match.tensors[name]
        if w.nbits is not None:
            return self._decode(w.nbits).exact_dtype()
        return None

    def load_stored(self, name: str) -> np.ndarray:
        w = self.match.tensors[name]
        b = self._decode(w.nbits).stored()
        return b if w.rows is None else b[w.rows[0]:w.rows[1]]
