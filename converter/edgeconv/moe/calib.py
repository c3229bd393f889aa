"""Calibration of a mixture-of-experts model: run the PyTorch MoE reference (models/moe, the numerical spec)
over sample text and keep what the exporter needs.

collect(weights, config, tokens, ctx, max_tokens, hessians) -> MoeCalib:
  importance / hessians of the non-expert matmuls, exactly as calib.py defines them for dense models
      (attn_q/k/v: attn-normed layer input; attn_o: attention output before attn_o; dense ffn_gate/up:
      ffn-normed state, ffn_down: silu(gate)·up; the head: output-normed state);
  per MoE layer (MoeLayerStats, rows = calibration tokens in text order):
      u       (N, D) the layer input RMS-normalised without a weight (the linear predictor's input)
      logits  (N, E) the true router logits
      h       (N, D) the experts' input (ffn-normed post-attention state)
      idx, w  (N, k) the routed experts (largest logit first) and their gating weights
  from which the exporter fits the predictor (predictor.py), weighs each expert's quantization error by
  the inputs routed to it (expert_inputs) and measures sensitivity (expert_bits.py).
`weights` maps our names (experts as float blk.i.exp.e.gate/up/down) to arrays; it may load lazily: the
reference is built with lazy=True, so one chunk's forward holds one tensor at a time beyond the cache.
Memory of the result: N·(2D + E + 2k)·4 bytes per MoE layer (+ D² or F² float64 per input with hessians);
with predictor_inputs=False (moe.predictor = router: nothing to fit) u and logits are not kept, N·(D + 2k)·4.
attn_o's input is read by wrapping models.moe.reference's `attention` for the duration of the pass (it is
called with an identity output projection, then the real one is applied), so no attention code is copied.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..calib import reference_module
from .predictor import rms_normalise


@dataclass
class MoeLayerStats:
    layer: int
    u: np.ndarray | None
    logits: np.ndarray | None
    h: np.ndarray
    idx: np.ndarray
    w: np.ndarray

    def routed(self, expert: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (n, D), routing weights (n,)) of the calibration tokens routed to `expert`."""
        t, j = np.nonzero(self.idx == expert)
        return self.h[t], self.w[t, j]


@dataclass
class MoeCalib:
    n_tokens: int
    layers: dict[int, MoeLayerStats]
    importance: dict[str, np.ndarray]
    hessians: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _tap_attention(ref_mod, torch, record):
    """Within the block, models.moe.reference.attention also reports (layer, its input h, a before attn_o)."""
    orig = ref_mod.attention

    def tapped(h, w, layer, shape, cos, sin, start_pos, cache):
        name = f"blk.{layer}.attn_o"
        w_o = w(name)
        eye = torch.eye(w_o.shape[1], dtype=w_o.dtype)
        a = orig(h, lambda n: eye if n == name else w(n), layer, shape, cos, sin, start_pos, cache)
        record(layer, h, a)
        return a @ w_o.T

    ref_mod.attention = tapped
    try:
        yield
    finally:
        ref_mod.attention = orig


def collect(weights: Mapping[str, Any], config: Mapping[str, Any], tokens: list[int], ctx: int = 512,
            max_tokens: int = 8192, hessians: bool = False, predictor_inputs: bool = True) -> MoeCalib:
    """See the module docstring. `config`: llm.* + moe.* keys (moe.predictor is ignored: the pass needs no
    predictor tensors)."""
    torch, ref_mod = reference_module("moe.reference")
    tokens = list(tokens)[:max_tokens]
    if len(tokens) < 2:
        raise ValueError(f"calibration text gives {len(tokens)} tokens; need at least 2")
    cfg = {k: v for k, v in config.items() if k not in ("moe.predictor", "moe.predictor_recall")}
    ref = ref_mod.MoeReference(cfg, weights, lazy=True)
    shape = ref.shape
    eps = shape.llm.rms_eps
    sums: dict[str, Any] = {}
    hs: dict[tuple[str, ...], Any] = {}
    rows: dict[int, dict[str, list]] = {i: {k: [] for k in ("u", "logits", "h", "idx", "w")}
                                        for i in range(shape.llm.n_layers) if shape.is_moe(i)}

    def add(names, x):
        x = x.double()
        sq = (x ** 2).sum(dim=0)
        for n in names:
            sums[n] = sums[n] + sq if n in sums else sq.clone()
        if hessians:
            xf = x.float()
            xtx = (xf.T @ xf).double()
            key = tuple(names)
            hs[key] = hs[key] + xtx if key in hs else xtx

    def record(layer, h, a):
        p = f"blk.{layer}."
        add([p + "attn_q", p + "attn_k", p + "attn_v"], h)
        add([p + "attn_o"], a)

    n = 0
    with _tap_attention(ref_mod, torch, record):
        for s in range(0, len(tokens), ctx):
            chunk = tokens[s:s + ctx]
            if len(chunk) < 2 and s > 0:
                break
            tr: dict = {}
            ref.logits(chunk, trace=tr)
            for i in range(shape.llm.n_layers):
                p = f"blk.{i}."
                h = tr[p + "ffn_in"]
                if not shape.is_moe(i):
                    add([p + "ffn_gate", p + "ffn_up"], h)
                    g = torch.nn.functional.silu(h @ ref.weight(p + "ffn_gate").T) * (h @ ref.weight(p + "ffn_up").T)
                    add([p + "ffn_down"], g)
                    continue
                r = rows[i]
                if predictor_inputs:
                    r["u"].append(rms_normalise(tr[p + "in"].float().numpy(), eps))
                    r["logits"].append(tr[p + "router_logits"].float().numpy())
                r["h"].append(h.float().numpy())
                r["idx"].append(tr[p + "experts"].numpy().astype(np.int64))
                r["w"].append(tr[p + "expert_weights"].float().numpy())
            add(["tok_embd" if shape.llm.tied_head else "output"], tr["output_norm"])
            n += len(chunk)
    imp = {k: (v / n).float().numpy() for k, v in sums.items()}
    hmap = None
    if hessians:
        hmap = {}
        for names, v in hs.items():
            arr = (v / n).numpy()
            for k in names:
                hmap[k] = arr
    layers = {i: MoeLayerStats(i, *(np.concatenate(r[k]) if r[k] else None for k in ("u", "logits", "h", "idx", "w")))
              for i, r in rows.items()}
    return MoeCalib(n, layers, imp, hmap)


def expert_inputs(stats: MoeLayerStats, expert: int, gate: np.ndarray, up: np.ndarray, act: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h (n, D) routed to the expert, its down-projection input act(h gateᵀ)·(h upᵀ) (n, F), weights (n,))."""
    h, w = stats.routed(expert)
    g = h @ gate.T
    with np.errstate(over="ignore"):
        g = g / (1 + np.exp(-g)) if act == "silu" else np.maximum(g, 0)
    return h, (g * (h @ up.T)).astype(np.float32), w
