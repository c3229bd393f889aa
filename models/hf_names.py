"""Hugging Face <-> edgerun names: state-dict tensor names and config.json -> `llm.*` keys.

Covers LlamaForCausalLM (Llama, SmolLM2, TinyLlama), Qwen2ForCausalLM and Qwen3ForCausalLM. The
tensor layouts are identical on both sides (nn.Linear [out, in], rotate-half RoPE), so a mapping is
a rename only: no transpose, no permutation.

    HF                                                 ours
    model.embed_tokens.weight                          tok_embd
    model.norm.weight                                  output_norm
    lm_head.weight                                     output          (dropped when tied)
    model.layers.{i}.input_layernorm.weight            blk.{i}.attn_norm
    model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   blk.{i}.attn_{q,k,v,o}
    model.layers.{i}.self_attn.{q,k,v}_proj.bias       blk.{i}.attn_{q,k,v}_bias   (Qwen2)
    model.layers.{i}.self_attn.{q,k}_norm.weight       blk.{i}.attn_{q,k}_norm     (Qwen3)
    model.layers.{i}.post_attention_layernorm.weight   blk.{i}.ffn_norm
    model.layers.{i}.mlp.{gate,up,down}_proj.weight    blk.{i}.ffn_{gate,up,down}
"""

from __future__ import annotations

import re
from typing import Mapping

__all__ = ["GLOBAL_NAMES", "LAYER_NAMES", "hf_to_ours", "ours_to_hf", "convert_state_dict",
           "hf_config_to_llm", "ARCHITECTURES"]

GLOBAL_NAMES: dict[str, str] = {
    "model.embed_tokens.weight": "tok_embd",
    "model.norm.weight": "output_norm",
    "lm_head.weight": "output",
}

# suffix after "model.layers.{i}." -> suffix after "blk.{i}."
LAYER_NAMES: dict[str, str] = {
    "input_layernorm.weight": "attn_norm",
    "self_attn.q_proj.weight": "attn_q",
    "self_attn.k_proj.weight": "attn_k",
    "self_attn.v_proj.weight": "attn_v",
    "self_attn.o_proj.weight": "attn_o",
    "self_attn.q_proj.bias": "attn_q_bias",
    "self_attn.k_proj.bias": "attn_k_bias",
    "self_attn.v_proj.bias": "attn_v_bias",
    "self_attn.q_norm.weight": "attn_q_norm",
    "self_attn.k_norm.weight": "attn_k_norm",
    "post_attention_layernorm.weight": "ffn_norm",
    "mlp.gate_proj.weight": "ffn_gate",
    "mlp.up_proj.weight": "ffn_up",
    "mlp.down_proj.weight": "ffn_down",
}
_LAYER_NAMES_REV = {v: k for k, v in LAYER_NAMES.items()}
_GLOBAL_NAMES_REV = {v: k for k, v in GLOBAL_NAMES.items()}
_HF_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_OUR_LAYER = re.compile(r"^blk\.(\d+)\.(.+)$")

# HF buffers that are not weights (recomputed from the config).
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$|\.rotary_emb\.")

# HF model_type -> (architectures[0], our general.architecture)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("LlamaForCausalLM", "llama"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
}


def hf_to_ours(name: str) -> str | None:
    """HF state-dict name -> our tensor name; None for a name we do not know."""
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    m = _HF_LAYER.match(name)
    if m and m.group(2) in LAYER_NAMES:
        return f"blk.{m.group(1)}.{LAYER_NAMES[m.group(2)]}"
    return None


def ours_to_hf(name: str) -> str | None:
    """Our tensor name -> HF state-dict name; None for a name we do not know."""
    if name in _GLOBAL_NAMES_REV:
        return _GLOBAL_NAMES_REV[name]
    m = _OUR_LAYER.match(name)
    if m and m.group(2) in _LAYER_NAMES_REV:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES_REV[m.group(2)]}"
    return None


def convert_state_dict(state_dict: Mapping[str, object], tied_head: bool) -> dict[str, object]:
    """Renames an HF state dict to our names (values untouched). With tied_head, `lm_head.weight` is
    dropped (HF state dicts hold it as an alias of the embedding). Unknown names raise ValueError."""
    out: dict[str, object] = {}
    unknown = []
    for name, value in state_dict.items():
        if _IGNORED.search(name):
            continue
        ours = hf_to_ours(name)
        if ours is None:
            unknown.append(name)
        elif ours == "output" and tied_head:
            continue
        else:
            out[ours] = value
    if unknown:
        raise ValueError(f"unknown Hugging Face tensors: {unknown[:8]}")
    if not tied_head and "output" not in out:
        raise ValueError("untied model (tie_word_embeddings=false) without lm_head.weight")
    return out


def _rope_theta(cfg: Mapping[str, object]) -> float:
    """rope_theta from a config.json: transformers 5 nests it in rope_parameters, 4.x keeps it top-level.
    Only the default (unscaled) RoPE is supported: the format has no keys for scaling."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    for p in (params, scaling):
        kind = p.get("rope_type", p.get("type", "default"))
        if kind not in ("default", None):
            raise NotImplementedError(f"rope_type '{kind}' is not supported (only default RoPE)")
    theta = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
    return float(theta)


def hf_config_to_llm(cfg: Mapping[str, object]) -> dict[str, object]:
    """An HF config.json dict -> our `general.architecture` + `llm.*` keys (docs/FORMAT.md).

    Raises NotImplementedError for features the format cannot express (o_proj/mlp biases, sliding
    window attention, scaled RoPE, a non-SiLU activation)."""
    model_type = cfg.get("model_type")
    if model_type not in ARCHITECTURES:
        raise NotImplementedError(f"model_type '{model_type}' is not one of {sorted(ARCHITECTURES)}")
    if cfg.get("hidden_act", "silu") != "silu":
        raise NotImplementedError(f"hidden_act '{cfg.get('hidden_act')}' (only silu)")
    if cfg.get("mlp_bias", False):
        raise NotImplementedError("mlp_bias=true is not supported")
    if cfg.get("use_sliding_window", False):
        raise NotImplementedError("sliding-window attention is not supported")
    if model_type == "qwen2":
        qkv_bias = True                      # Qwen2 always has q/k/v biases, never an o_proj bias
    else:
        if cfg.get("attention_bias", False):  # Llama/Qwen3 attention_bias also adds an o_proj bias
            raise NotImplementedError("attention_bias=true (o_proj bias) is not supported")
        qkv_bias = False
    d_model = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_kv_heads = cfg.get("num_key_value_heads") or n_heads
    head_dim = cfg.get("head_dim") or d_model // n_heads
    return {
        "general.architecture": ARCHITECTURES[model_type][1],
        "llm.n_layers": int(cfg["num_hidden_layers"]),
        "llm.d_model": d_model,
        "llm.n_heads": n_heads,
        "llm.n_kv_heads": int(n_kv_heads),
        "llm.head_dim": int(head_dim),
        "llm.d_ff": int(cfg["intermediate_size"]),
        "llm.vocab_size": int(cfg["vocab_size"]),
        "llm.max_ctx": int(cfg.get("max_position_embeddings", 2048)),
        "llm.rope_theta": _rope_theta(cfg),
        "llm.rms_eps": float(cfg.get("rms_norm_eps", 1e-6)),
        "llm.qkv_bias": int(qkv_bias),
        "llm.qk_norm": int(model_type == "qwen3"),
        "llm.tied_head": int(bool(cfg.get("tie_word_embeddings", False))),
    }
