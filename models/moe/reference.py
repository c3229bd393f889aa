"""Reference decoder for mixture-of-experts models: SmallThinker, Qwen3-MoE, Mixtral, OLMoE.

This is the numerical spec of docs/MOE.md §1 that the converter and the C++ runtime are tested against:
plain PyTorch, driven only by our `llm.*` / `moe.*` keys (never by an architecture name), weights by our
tensor names (MoeShape.tensor_shapes()). Notation of models/llama.py: T tokens, C = d_model, E experts,
k = moe.n_experts_used, F = moe.d_expert.

    x = tok_embd[tokens]                                                     (T, C)
    per block i:
      x_in   = x                                                             layer input (the residual)
      a      = attention(rmsnorm(x_in) * attn_norm)                          moe/attention.py
      x      = x_in + a                                                      post-attention residual
      h      = rmsnorm(x) * ffn_norm
      MoE layer (moe.layers[i] = 1):
        r      = x_in (moe.router_input = residual, SmallThinker) or h (ffn_norm, all others)
        logits = r @ ffn_router^T                                            (T, E)
        idx, w = route(logits, k, moe.gating, moe.norm_topk)                 moe/routing.py
        f      = sum_j w[:, j] * expert_{idx[:, j]}(h)                       act = moe.act
      dense layer: f = (silu(h ffn_gate^T) * (h ffn_up^T)) ffn_down^T        width llm.d_ff
      x      = x + f
    logits = (rmsnorm(x) * output_norm) @ output^T   (tok_embd when llm.tied_head)

Dense FFN layers inside a MoE model are SwiGLU (Qwen3-MoE's `mlp_only_layers`); no supported family
has a dense layer with another activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from ..llama import KVCache, Reference, check_tokens, rmsnorm, rope_cos_sin
from .attention import attention
from .routing import moe_ffn, predictor_logits, route
from .shape import MoeShape

__all__ = ["MoeReference", "LayerRouting"]


@dataclass
class LayerRouting:
    """What one MoE layer saw and decided, for T tokens (the converter fits and scores predictors on it).

    x           (T, C)  the layer input: the residual before attn_norm (a linear predictor's input)
    x_attn      (T, C)  the residual after attention, x + attn_out (the post-attention hidden state)
    router_in   (T, C)  what the router read: x (router_input = residual) or rmsnorm(x_attn) * ffn_norm
    logits      (T, E)  the true router logits
    experts     (T, k)  long, the chosen experts, largest logit first
    weights     (T, k)  their gating weights
    pred_logits (T, E)  the linear predictor's logits (moe.predictor = linear), else None
    """

    layer: int
    x: torch.Tensor
    x_attn: torch.Tensor
    router_in: torch.Tensor
    logits: torch.Tensor
    experts: torch.Tensor
    weights: torch.Tensor
    pred_logits: torch.Tensor | None = None


def _to_tensor(t, dtype: torch.dtype) -> torch.Tensor:
    # Always a private copy: the source may be a view of a memory map that is closed later.
    if isinstance(t, torch.Tensor):
        return t.detach().to(dtype=dtype, copy=True).contiguous()
    return torch.from_numpy(np.array(t, dtype=np.float64 if dtype == torch.float64 else np.float32))


class MoeReference:
    """The MoE reference decoder. `config` holds `llm.*` and `moe.*` keys; `weights` maps our tensor
    names to arrays (numpy or torch, any float dtype, bf16 included).

    lazy=False copies every tensor to `dtype` now (the dense Reference's behaviour). lazy=True keeps the
    mapping and converts a tensor each time it is used (shape checked then): with a lazy mapping (e.g.
    models.moe.hf_folder.load_hf_folder(dir, lazy=True)) a large model runs in the memory of one
    layer, and experts nobody routes to are never read.
    A missing tensor raises KeyError, an unexpected one or a wrong shape ValueError.
    """

    def __init__(self, config: Mapping[str, object], weights: Mapping[str, object],
                 dtype: torch.dtype = torch.float32, lazy: bool = False):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.shape = MoeShape.from_config(config)
        self.arch = config.get("general.architecture")
        self.dtype = dtype
        self.lazy = lazy
        self._expected = self.shape.tensor_shapes()
        extra = sorted(set(weights) - set(self._expected))
        if extra:
            raise ValueError(f"weights hold tensors this config does not use: {extra[:8]} (check "
                             f"moe.layers / moe.predictor / llm.qk_norm / llm.tied_head)")
        missing = [n for n in self._expected if n not in weights]
        if missing:
            raise KeyError(f"weights lack tensor '{missing[0]}' of shape {self._expected[missing[0]]}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        if lazy:
            self._src = weights
            self.w: dict[str, torch.Tensor] = {}
        else:
            self.w = {name: self._load(name, weights[name]) for name in self._expected}

    def _load(self, name: str, t) -> torch.Tensor:
        t = _to_tensor(t, self.dtype)
        if tuple(t.shape) != self._expected[name]:
            raise ValueError(f"tensor '{name}' has shape {tuple(t.shape)}, expected {self._expected[name]}")
        return t

    def weight(self, name: str) -> torch.Tensor:
        """A tensor by our name, in self.dtype (converted now when lazy)."""
        return self._load(name, self._src[name]) if self.lazy else self.w[name]

    def new_cache(self) -> KVCache:
        return KVCache()

    @torch.no_grad()
    def logits(self, tokens, start_pos: int = 0, cache: KVCache | None = None,
               trace: dict | None = None) -> torch.Tensor:
        """tokens is (T,) int. Returns logits (T, V) for positions start_pos..start_pos+T-1.

        Cache use as in the dense Reference: without a cache start_pos must be 0; with one, start_pos must
        equal cache.n and the new keys/values are appended. When `trace` is a dict it receives, each (T, ...):
        `blk.{i}.in` (layer input), `blk.{i}.attn_out`, `blk.{i}.attn_res` (in + attn_out), `blk.{i}.ffn_in`
        (rmsnorm(attn_res) * ffn_norm), `blk.{i}.ffn_out`, `blk.{i}.out`, and for MoE layers
        `blk.{i}.router_in`, `blk.{i}.router_logits` (T, E), `blk.{i}.experts` (T, k) long,
        `blk.{i}.expert_weights` (T, k), `blk.{i}.router_pred_logits` (T, E, moe.predictor = linear);
        and `output_norm`.
        """
        ms, s, w = self.shape, self.shape.llm, self.weight
        tokens = check_tokens(tokens, s.vocab_size, start_pos, cache)
        T = tokens.numel()

        cos, sin = rope_cos_sin(torch.arange(start_pos, start_pos + T), s.head_dim, s.rope_theta, self.dtype)
        x = w("tok_embd")[tokens]                                                       # (T, C)
        for i in range(s.n_layers):
            p = f"blk.{i}."
            x_in = x
            a = attention(rmsnorm(x_in, w(p + "attn_norm"), s.rms_eps), w, i, ms, cos, sin, start_pos, cache)
            x = x_in + a
            h = rmsnorm(x, w(p + "ffn_norm"), s.rms_eps)
            t: dict = {"in": x_in, "attn_out": a, "attn_res": x, "ffn_in": h}
            if ms.is_moe(i):
                r = x_in if ms.router_input == "residual" else h
                lg = r @ w(p + "ffn_router").T                                          # (T, E)
                idx, gw = route(lg, ms.n_experts_used, ms.gating, ms.norm_topk)
                f = moe_ffn(h, idx, gw, lambda e: (w(f"{p}exp.{e}.gate"), w(f"{p}exp.{e}.up"),
                                                   w(f"{p}exp.{e}.down")), ms.act)
                t.update(router_in=r, router_logits=lg, experts=idx, expert_weights=gw)
                if ms.predictor == "linear":
                    t["router_pred_logits"] = predictor_logits(x_in, w(p + "ffn_router_pred"),
                                                               w(p + "ffn_router_pred_b"), s.rms_eps)
            else:
                g = torch.nn.functional.silu(h @ w(p + "ffn_gate").T) * (h @ w(p + "ffn_up").T)
                f = g @ w(p + "ffn_down").T
            x = x + f
            if trace is not None:
                t.update(ffn_out=f, out=x)
                trace.update({p + k: v for k, v in t.items()})
        if cache is not None:
            cache.n += T
        h = rmsnorm(x, w("output_norm"), s.rms_eps)
        if trace is not None:
            trace["output_norm"] = h
        return h @ w("tok_embd" if s.tied_head else "output").T                        # (T, V)

    def routing(self, tokens, start_pos: int = 0, cache: KVCache | None = None) -> list[LayerRouting]:
        """Runs `tokens` (cache rules of logits()) and returns one LayerRouting per MoE layer, in layer
        order. For long calibration text, feed chunks with one cache and concatenate."""
        tr: dict = {}
        self.logits(tokens, start_pos, cache, trace=tr)
        out = []
        for i in range(self.shape.llm.n_layers):
            if self.shape.is_moe(i):
                p = f"blk.{i}."
                out.append(LayerRouting(i, tr[p + "in"], tr[p + "attn_res"], tr[p + "router_in"],
                                        tr[p + "router_logits"], tr[p + "experts"], tr[p + "expert_weights"],
                                        tr.get(p + "router_pred_logits")))
        return out

    # One decode step and greedy decoding, exactly as the dense reference (they only use logits/new_cache).
    step = Reference.step
    greedy = Reference.greedy
