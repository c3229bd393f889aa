"""MoeShape: the `llm.*` + `moe.*` hyper-parameters of a mixture-of-experts decoder (docs/MOE.md §2).

    shape = MoeShape.from_config(config)      # config: our metadata dict (HF configs: hf_names.hf_config_to_moe)
    shape.tensor_shapes()                     # every tensor name the reference needs, with its shape

Defaults for absent optional keys (docs/MOE.md): `moe.layers` all 1 (every layer MoE), `llm.rope_layers`
all 1, `llm.swa_layers` all 0, `llm.qk_norm_scope` "head", `moe.predictor` absent (no predictor tensors).
`moe.gating`, `moe.norm_topk`, `moe.act` and `moe.router_input` are required: each family differs there,
so no default can be right for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..llama import ModelShape

__all__ = ["MoeShape", "GATINGS", "ACTS", "ROUTER_INPUTS", "QK_NORM_SCOPES", "PREDICTORS"]

GATINGS = ("softmax", "sigmoid")
ACTS = ("silu", "relu")
ROUTER_INPUTS = ("residual", "ffn_norm")
QK_NORM_SCOPES = ("head", "full")
PREDICTORS = ("router", "linear")


def _flags(config: Mapping[str, object], key: str, n: int, default: int) -> tuple[int, ...]:
    """A per-layer 0/1 array key (ARR_I64); absent -> n copies of default."""
    if key not in config:
        return (default,) * n
    vals = tuple(int(v) for v in config[key])  # type: ignore[union-attr]
    if len(vals) != n or any(v not in (0, 1) for v in vals):
        raise ValueError(f"'{key}' must hold {n} entries of 0/1 (one per layer), got {list(vals)}")
    return vals


@dataclass(frozen=True)
class MoeShape:
    """`llm` holds the dense keys (ModelShape); the rest is per docs/MOE.md §2.

    layers[i]      1: layer i is MoE (router + experts), 0: dense SwiGLU FFN of width llm.d_ff
    rope_layers[i] 1: RoPE on q and k, 0: NoPE (no rotation)
    swa_layers[i]  1: sliding window: position p attends to p' with p - swa_window < p' <= p
    """

    llm: ModelShape
    n_experts: int
    n_experts_used: int
    d_expert: int
    gating: str
    norm_topk: bool
    act: str
    router_input: str
    layers: tuple[int, ...]
    rope_layers: tuple[int, ...]
    swa_layers: tuple[int, ...]
    swa_window: int
    qk_norm_scope: str
    predictor: str | None = None

    @staticmethod
    def from_config(config: Mapping[str, object]) -> "MoeShape":
        """Reads our metadata dict. Raises KeyError for a missing required key, ValueError for a bad value."""
        llm = ModelShape.from_config(config)
        L = llm.n_layers

        def need(key: str):
            if key not in config:
                raise KeyError(f"MoE config lacks '{key}' (see docs/MOE.md §2)")
            return config[key]

        def choice(key: str, allowed: Sequence[str], default: str | None = None):
            v = config.get(key, default) if default is not None else need(key)
            if v not in allowed:
                raise ValueError(f"'{key}' is {v!r}, expected one of {list(allowed)}")
            return str(v)

        layers = _flags(config, "moe.layers", L, 1)
        swa_layers = _flags(config, "llm.swa_layers", L, 0)
        swa_window = int(config.get("llm.swa_window", 0))
        if any(swa_layers) and swa_window < 1:
            raise ValueError(f"llm.swa_layers marks sliding-window layers but llm.swa_window={swa_window}")
        predictor = config.get("moe.predictor")
        if predictor is not None and predictor not in PREDICTORS:
            raise ValueError(f"'moe.predictor' is {predictor!r}, expected one of {list(PREDICTORS)}")
        shape = MoeShape(
            llm=llm, n_experts=int(need("moe.n_experts")), n_experts_used=int(need("moe.n_experts_used")),
            d_expert=int(need("moe.d_expert")), gating=choice("moe.gating", GATINGS),
            norm_topk=bool(int(need("moe.norm_topk"))), act=choice("moe.act", ACTS),
            router_input=choice("moe.router_input", ROUTER_INPUTS), layers=layers,
            rope_layers=_flags(config, "llm.rope_layers", L, 1), swa_layers=swa_layers,
            swa_window=swa_window if any(swa_layers) else 0,
            qk_norm_scope=choice("llm.qk_norm_scope", QK_NORM_SCOPES, "head"), predictor=predictor)
        if not 1 <= shape.n_experts_used <= shape.n_experts:
            raise ValueError(f"moe.n_experts_used={shape.n_experts_used} must be in [1, moe.n_experts="
                             f"{shape.n_experts}]")
        if shape.d_expert < 1:
            raise ValueError(f"moe.d_expert={shape.d_expert} must be positive")
        if not all(layers) and llm.d_ff < 1:
            raise ValueError("moe.layers has dense layers (0) but llm.d_ff is 0")
        return shape

    @property
    def q_dim(self) -> int:
        return self.llm.n_heads * self.llm.head_dim

    @property
    def kv_dim(self) -> int:
        return self.llm.n_kv_heads * self.llm.head_dim

    def is_moe(self, i: int) -> bool:
        return bool(self.layers[i])

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor name this model needs, with its shape ([out, in] for matrices). Experts are
        `blk.{i}.exp.{e}.gate` [F, C], `.up` [F, C], `.down` [C, F] (float, unpacked: packing them
        into blobs is the converter's business)."""
        s = self.llm
        C, V, E, F = s.d_model, s.vocab_size, self.n_experts, self.d_expert
        shapes: dict[str, tuple[int, ...]] = {"tok_embd": (V, C), "output_norm": (C,)}
        if not s.tied_head:
            shapes["output"] = (V, C)
        qn, kn = ((s.head_dim,), (s.head_dim,)) if self.qk_norm_scope == "head" else ((self.q_dim,),
                                                                                      (self.kv_dim,))
        for i in range(s.n_layers):
            p = f"blk.{i}."
            shapes.update({p + "attn_norm": (C,), p + "attn_q": (self.q_dim, C), p + "attn_k": (self.kv_dim, C),
                           p + "attn_v": (self.kv_dim, C), p + "attn_o": (C, self.q_dim), p + "ffn_norm": (C,)})
            if s.qkv_bias:
                shapes.update({p + "attn_q_bias": (self.q_dim,), p + "attn_k_bias": (self.kv_dim,),
                               p + "attn_v_bias": (self.kv_dim,)})
            if s.qk_norm:
                shapes.update({p + "attn_q_norm": qn, p + "attn_k_norm": kn})
            if not self.is_moe(i):
                shapes.update({p + "ffn_gate": (s.d_ff, C), p + "ffn_up": (s.d_ff, C), p + "ffn_down": (C, s.d_ff)})
                continue
            shapes[p + "ffn_router"] = (E, C)
            if self.predictor == "linear":
                shapes.update({p + "ffn_router_pred": (E, C), p + "ffn_router_pred_b": (E,)})
            for e in range(E):
                shapes.update({f"{p}exp.{e}.gate": (F, C), f"{p}exp.{e}.up": (F, C), f"{p}exp.{e}.down": (C, F)})
        return shapes
