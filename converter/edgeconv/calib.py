"""Calibration: per-column importance of every matmul weight from activations on sample text.

importance[name][j] = mean over calibration tokens of x_j², where x is the input row the matmul `name`
multiplies (x @ W.T, W [out, in], so j indexes W's columns). The quantizer weighs each column's squared
error by it (llama.cpp's imatrix idea): columns that see large activations are kept more precisely.

Inputs per tensor:   attn_q/k/v  attn-normed residual     attn_o    attention output before attn_o
                     ffn_gate/up ffn-normed residual       ffn_down  silu(gate) * up
                     output      output-normed residual (tok_embd gets it when the head is tied)
The forward pass is the PyTorch reference (models/llama.py, the numerical spec), run over the text in
chunks of `ctx` tokens, tokenized with the runtime's own tokenizer (edgerun._core.Tokenizer). The
reference is subclassed to tap the two sub-layers; attn_o's input is taken by running the reference
attention with an identity output projection, so no attention code is duplicated here.
With hessians=True, collect_stats also returns each input's second-moment matrix H = XᵀX / N
[cols, cols] (float64; the GPTQ objective, quant/gptq.py): one array per distinct input, shared by the
tensors that read it (attn_q/k/v are the same object, as are ffn_gate/up). diag(H) == importance up to
rounding (importance sums squares in float64; H sums float32 per-chunk products in float64).
Memory: SmolLM2-135M holds 30 × (3·576² + 1536²) float64 ≈ 0.8 GB of H.
Needs torch, the models/ reference (a source checkout, or `edgerun_models` as the wheel installs it) and
the built edgerun extension. The exporter uses it only for MoE models (moe/calib.py) and as the test oracle:
dense models are calibrated by calib_native.py (the same statistics from edgerun's C++ forward pass, no torch;
tests/test_calib_native.py checks both agree).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def reference_module(name: str):
    """(torch, the reference module `name`, e.g. "llama" or "moe.reference"): models/ from a source
    checkout, else edgerun_models as installed by the wheel. RuntimeError naming what is missing."""
    import importlib
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(root, "models", "llama.py")) and root not in sys.path:
        sys.path.append(root)  # source checkout: models/ sits beside converter/
    try:
        import torch
    except ImportError as e:
        raise RuntimeError(f"--calib needs torch: pip install 'edgerun[torch]' ({e})") from None
    try:
        return torch, importlib.import_module(f"models.{name}")  # source checkout
    except ImportError:
        try:
            return torch, importlib.import_module(f"edgerun_models.{name}")  # as installed by the wheel
        except ImportError as e:
            raise RuntimeError(f"--calib needs the PyTorch reference (models/{name.replace('.', '/')}) ({e})") from None


def _imports():
    torch, mod = reference_module("llama")
    return torch, mod.Reference


def load_text(calib: str) -> tuple[str, str]:
    """--calib value -> (text, label for notes): "builtin" is the text shipped with edgeconv
    (calib_builtin.txt + calib_docs.txt, calib_native.default_text), "stdlib" the Python stdlib docstrings of the
    running Python (calib_text.py), anything else a UTF-8 file path (a file literally named builtin / stdlib: pass
    ./stdlib)."""
    if calib == "builtin":
        from .calib_native import default_text

        t = default_text()
        import hashlib

        return t, ("the built-in calibration text (calib_builtin.txt + calib_docs.txt, sha256 "
                   f"{hashlib.sha256(t.encode()).hexdigest()[:12]})")
    if calib == "stdlib":
        from .calib_text import describe, stdlib_text

        d = describe()
        return stdlib_text(), f"the built-in stdlib docstrings (Python {d['python']}, sha256 {d['sha256'][:12]})"
    import os

    with open(calib, encoding="utf-8") as fh:
        return fh.read(), os.path.basename(calib)


def tokenize(text: str, tokenizer_meta: Mapping[str, Any]) -> list[int]:
    """Token ids of `text` with the runtime tokenizer described by tokenizer.* metadata."""
    if not tokenizer_meta:
        raise ValueError("--calib needs a tokenizer, and this source has none")
    try:
        from edgerun import _core
    except ImportError as e:
        raise RuntimeError(f"--calib tokenizes with the edgerun runtime, which is not importable ({e})") from None
    m = tokenizer_meta
    n = len(m["tokenizer.tokens"])
    tok = _core.Tokenizer(m["tokenizer.model"], m["tokenizer.pre"], list(m["tokenizer.tokens"]),
                          [float(s) for s in m.get("tokenizer.scores", [])],
                          [int(t) for t in m.get("tokenizer.token_type", [1] * n)],
                          list(m.get("tokenizer.merges", [])), int(m.get("tokenizer.bos_id", -1)),
                          int(m.get("tokenizer.eos_id", -1)), int(m.get("tokenizer.unk_id", -1)),
                          int(m.get("tokenizer.pad_id", -1)), bool(m.get("tokenizer.add_bos", 0)))
    return list(tok.encode(text, False, False))


def collect_importance(weights: Mapping[str, np.ndarray], config: Mapping[str, Any], tokens: list[int],
                       ctx: int = 512, max_tokens: int = 8192) -> dict[str, np.ndarray]:
    """{tensor name: float32[cols]} mean squared inputs over up to max_tokens tokens, in chunks of ctx."""
    return collect_stats(weights, config, tokens, ctx, max_tokens)[0]


def collect_stats(weights: Mapping[str, np.ndarray], config: Mapping[str, Any], tokens: list[int],
                  ctx: int = 512, max_tokens: int = 8192, hessians: bool = False
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """(importance, H): importance as collect_importance; H {tensor name: float64 [cols, cols]} mean
    XᵀX of the tensor's input when `hessians` (tensors sharing an input share the array), else None."""
    torch, Reference = _imports()
    tokens = list(tokens)[:max_tokens]
    if len(tokens) < 2:
        raise ValueError(f"calibration text gives {len(tokens)} tokens; need at least 2")
    sums: dict[str, Any] = {}
    hs: dict[tuple[str, ...], Any] = {}
    count = [0]

    def add(names, x):
        sq = (x.double() ** 2).sum(dim=0)
        for n in names:
            sums[n] = sums[n] + sq if n in sums else sq.clone()
        if hessians:
            xf = x.float()
            xtx = (xf.T @ xf).double()
            key = tuple(names)
            if key in hs:
                hs[key].add_(xtx)
            else:
                hs[key] = xtx

    class Tapped(Reference):
        def _attention(self, i, h, cos, sin, start_pos, cache):
            p = f"blk.{i}."
            add([p + "attn_q", p + "attn_k", p + "attn_v"], h)
            w_o = self.w[p + "attn_o"]
            self.w[p + "attn_o"] = torch.eye(w_o.shape[1], dtype=w_o.dtype)
            try:
                a = super()._attention(i, h, cos, sin, start_pos, cache)  # (T, H·D), before attn_o
            finally:
                self.w[p + "attn_o"] = w_o
            add([p + "attn_o"], a)
            return a @ w_o.T

        def _ffn(self, i, h):
            p = f"blk.{i}."
            add([p + "ffn_gate", p + "ffn_up"], h)
            g = torch.nn.functional.silu(h @ self.w[p + "ffn_gate"].T) * (h @ self.w[p + "ffn_up"].T)
            add([p + "ffn_down"], g)
            return g @ self.w[p + "ffn_down"].T

    ref = Tapped(config, weights)
    head = "tok_embd" if int(config.get("llm.tied_head", 0)) else "output"
    for s in range(0, len(tokens), ctx):
        chunk = tokens[s:s + ctx]
        if len(chunk) < 2 and s > 0:
            break
        trace: dict = {}
        ref.logits(chunk, trace=trace)
        add([head], trace["output_norm"])
        count[0] += len(chunk)
    imp = {n: (v / count[0]).float().numpy() for n, v in sums.items()}
    if not hessians:
        return imp, None
    hmap: dict[str, np.ndarray] = {}
    for names, v in hs.items():
        h = (v / count[0]).numpy()
        for n in names:
            hmap[n] = h
    return imp, hmap
