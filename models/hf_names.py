"""Hugging Face <-> edgerun names: state-dict tensor names and config.json -> `llm.*` keys.

An independent test oracle, kept apart from the converter on purpose. The converter's own knowledge of a
family is converter/edgeconv/archs/ (the only source the exporter uses); this module is a second reading of
the same HF conventions, written from the transformers sources, for two users that must not depend on the
converter (models/ sits below converter/ in the layers): the PyTorch reference's loaders (models/tiny.py,
models/moe/tiny.py, models/moe/hf_folder.py, models/random_moe.py) and the tests that cross-check the
converter against it (test_models_reference, test_moe_reference, test_moe_converter, test_smollm2). A
converter bug that a shared table would copy into the check shows up here as a disagreement. So: do not
import edgeconv here, and do not make the converter import this. What differs between families is data
(the name tables, DENSE_FAMILIES, MOE_FAMILIES); the functions only apply it, with no branch on a family.

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

Mixture-of-experts models (docs/MOE.md): Qwen3MoeForCausalLM, MixtralForCausalLM, OlmoeForCausalLM,
SmallThinkerForCausalLM. Attention, norms, embeddings and dense FFN layers use the names above. The
router and the experts, after "model.layers.{i}." -> after "blk.{i}." (E experts, width F, C = d_model):

    arch          HF (per-expert: what save_pretrained writes and checkpoints hold)    ours
    qwen3moe      mlp.gate.weight [E, C]                                                 ffn_router
    olmoe         mlp.experts.{e}.gate_proj.weight [F, C]                                exp.{e}.gate
                  mlp.experts.{e}.up_proj.weight   [F, C]                                exp.{e}.up
                  mlp.experts.{e}.down_proj.weight [C, F]                                exp.{e}.down
    mixtral       block_sparse_moe.gate.weight                                           ffn_router
                  block_sparse_moe.experts.{e}.w1.weight / w3.weight / w2.weight         exp.{e}.gate / up / down
    smallthinker  block_sparse_moe.primary_router.weight                                 ffn_router
                  block_sparse_moe.experts.{e}.gate.weight / up.weight / down.weight     exp.{e}.gate / up / down

transformers 5.x holds the experts of qwen3moe, olmoe and mixtral *in memory* (model.state_dict()) as
fused 3-D parameters, and renames Mixtral's block_sparse_moe to mlp there:

    mlp.gate.weight [E, C]                         ffn_router               (mixtral too)
    mlp.experts.gate_up_proj [E, 2F, C]            exp.{e}.gate = [e, :F],  exp.{e}.up = [e, F:]
    mlp.experts.down_proj [E, C, F]                exp.{e}.down = [e]

Its save_pretrained converts back to the per-expert names of the table (checked with transformers
5.24: a saved Qwen3-MoE/OLMoE/Mixtral folder holds only per-expert 2-D tensors), so converters see the
per-expert names in files; both forms are accepted here (moe_hf_to_ours). No transpose anywhere: every
matrix is [out, in] on both sides. SmallThinker has no transformers class; its names are those of its
remote code (PowerInfer/SmallThinker-4BA0.6B-Instruct). The config keys of each family are the tables
DENSE_FAMILIES and MOE_FAMILIES.
"""

from __future__ import annotations

import re
from typing import Mapping

from .llama import LAYOUT_DEFAULTS

__all__ = ["GLOBAL_NAMES", "LAYER_NAMES", "hf_to_ours", "ours_to_hf", "convert_state_dict",
           "hf_config_to_llm", "ARCHITECTURES", "MOE_ARCHITECTURES", "hf_config_to_moe", "hf_config_to_ours",
           "moe_hf_to_ours", "moe_ours_to_hf", "convert_moe_state_dict", "DENSE_FAMILIES", "MOE_FAMILIES"]

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
# our arch -> its features: Qwen2 always has q/k/v biases (never an o_proj bias; attention_bias of the
# others adds both, so it is refused there); Qwen3 RMS-normalises q and k per head
DENSE_FAMILIES: dict[str, dict[str, bool]] = {
    "llama": dict(qkv_bias=False, qk_norm=False),
    "qwen2": dict(qkv_bias=True, qk_norm=False),
    "qwen3": dict(qkv_bias=False, qk_norm=True),
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
    fam = DENSE_FAMILIES[ARCHITECTURES[model_type][1]]
    if not fam["qkv_bias"] and cfg.get("attention_bias", False):
        raise NotImplementedError("attention_bias=true (o_proj bias) is not supported")
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
        "llm.qkv_bias": int(fam["qkv_bias"]),
        "llm.qk_norm": int(fam["qk_norm"]),
        **LAYOUT_DEFAULTS,  # RMSNorm, SwiGLU, rotate-half RoPE: every family here
        "llm.tied_head": int(bool(cfg.get("tie_word_embeddings", False))),
    }


# ---------------------------------------------------------------------------------------------------
# Mixture-of-experts models (docs/MOE.md). Separate functions: the dense ones above keep rejecting MoE
# names and model types, so nothing converts a MoE checkpoint as a dense one by accident.

# HF model_type -> (architectures[0], our general.architecture)
MOE_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "qwen3_moe": ("Qwen3MoeForCausalLM", "qwen3moe"),
    "mixtral": ("MixtralForCausalLM", "mixtral"),
    "olmoe": ("OlmoeForCausalLM", "olmoe"),
    "smallthinker": ("SmallThinkerForCausalLM", "smallthinker"),
}

# our arch -> (per-expert HF prefix after "model.layers.{i}.", {our leaf: HF leaf}); the names files hold
_MOE_EXPERT_NAMES: dict[str, tuple[str, dict[str, str]]] = {
    "qwen3moe": ("mlp.experts.{e}.", {"gate": "gate_proj.weight", "up": "up_proj.weight", "down": "down_proj.weight"}),
    "olmoe": ("mlp.experts.{e}.", {"gate": "gate_proj.weight", "up": "up_proj.weight", "down": "down_proj.weight"}),
    "mixtral": ("block_sparse_moe.experts.{e}.", {"gate": "w1.weight", "up": "w3.weight", "down": "w2.weight"}),
    "smallthinker": ("block_sparse_moe.experts.{e}.",
                     {"gate": "gate.weight", "up": "up.weight", "down": "down.weight"}),
}
# our arch -> router names; the first is the one files hold, the others transformers' in-memory name
_MOE_ROUTER_NAMES: dict[str, tuple[str, ...]] = {
    "qwen3moe": ("mlp.gate.weight",),
    "olmoe": ("mlp.gate.weight",),
    "mixtral": ("block_sparse_moe.gate.weight", "mlp.gate.weight"),
    "smallthinker": ("block_sparse_moe.primary_router.weight",),
}
# transformers 5.x fused experts (in memory); accepted in files too
_MOE_FUSED = {"qwen3moe", "olmoe", "mixtral"}
_FUSED_GATE_UP = "mlp.experts.gate_up_proj"       # [E, 2F, C]: rows :F gate, F: up
_FUSED_DOWN = "mlp.experts.down_proj"             # [E, C, F]

_EXPERT_RE = {a: re.compile("^" + re.escape(pre).replace(r"\{e\}", r"(\d+)") + r"(.+)$")
              for a, (pre, _) in _MOE_EXPERT_NAMES.items()}
_OUR_EXPERT = re.compile(r"^blk\.(\d+)\.exp\.(\d+)\.(gate|up|down)$")


def _moe_arch(arch: str) -> str:
    if arch not in _MOE_EXPERT_NAMES:
        raise ValueError(f"arch must be one of {sorted(_MOE_EXPERT_NAMES)}, got {arch!r}")
    return arch


def moe_hf_to_ours(name: str, shape, arch: str) -> list[tuple[str, tuple]] | None:
    """An HF tensor of a MoE model -> the list of (our name, index into the HF tensor) it yields; the
    index is () for a whole tensor, (e, slice) / (e,) for a slice of a fused 3-D expert tensor. `shape` is
    the HF tensor's shape (only fused tensors need it). `arch` is our general.architecture. None for a
    name we do not know (including rotary buffers: callers skip those as for dense models)."""
    arch = _moe_arch(arch)
    if name in GLOBAL_NAMES:
        return [(GLOBAL_NAMES[name], ())]
    m = _HF_LAYER.match(name)
    if not m:
        return None
    i, rest = m.group(1), m.group(2)
    if rest in _MOE_ROUTER_NAMES[arch]:
        return [(f"blk.{i}.ffn_router", ())]
    me = _EXPERT_RE[arch].match(rest)
    if me:
        leaf = {v: k for k, v in _MOE_EXPERT_NAMES[arch][1].items()}.get(me.group(2))
        return [(f"blk.{i}.exp.{me.group(1)}.{leaf}", ())] if leaf else None
    if arch in _MOE_FUSED and rest in (_FUSED_GATE_UP, _FUSED_DOWN):
        if len(shape) != 3:
            raise ValueError(f"{name}: a fused expert tensor must be 3-D [E, ., .], got shape {tuple(shape)}")
        E = int(shape[0])
        if rest == _FUSED_DOWN:
            return [(f"blk.{i}.exp.{e}.down", (e,)) for e in range(E)]
        if shape[1] % 2:
            raise ValueError(f"{name}: gate_up_proj rows {shape[1]} are not 2·F")
        F = int(shape[1]) // 2
        return [item for e in range(E) for item in ((f"blk.{i}.exp.{e}.gate", (e, slice(0, F))),
                                                    (f"blk.{i}.exp.{e}.up", (e, slice(F, 2 * F))))]
    if rest in LAYER_NAMES:
        return [(f"blk.{i}.{LAYER_NAMES[rest]}", ())]
    return None


def moe_ours_to_hf(name: str, arch: str) -> str | None:
    """Our tensor name -> the HF name a checkpoint file holds (per-expert form); None if unknown."""
    arch = _moe_arch(arch)
    m = _OUR_EXPERT.match(name)
    if m:
        pre, leaves = _MOE_EXPERT_NAMES[arch]
        return f"model.layers.{m.group(1)}." + pre.format(e=m.group(2)) + leaves[m.group(3)]
    m = _OUR_LAYER.match(name)
    if m and m.group(2) == "ffn_router":
        return f"model.layers.{m.group(1)}.{_MOE_ROUTER_NAMES[arch][0]}"
    return ours_to_hf(name)


def convert_moe_state_dict(state_dict: Mapping[str, object], config: Mapping[str, object]) -> dict[str, object]:
    """Renames (and splits fused experts of) an HF MoE state dict to our names. `config` is our dict
    (hf_config_to_moe): its general.architecture picks the names, llm.tied_head drops lm_head.weight.
    Values are indexed, not copied (numpy/torch views). Unknown names raise ValueError."""
    arch = str(config["general.architecture"])
    tied = bool(int(config["llm.tied_head"]))
    out: dict[str, object] = {}
    unknown = []
    for name, value in state_dict.items():
        if _IGNORED.search(name):
            continue
        items = moe_hf_to_ours(name, getattr(value, "shape", ()), arch)
        if items is None:
            unknown.append(name)
            continue
        for ours, index in items:
            if ours == "output" and tied:
                continue
            out[ours] = value[index] if index else value
    if unknown:
        raise ValueError(f"unknown Hugging Face tensors for {arch}: {unknown[:8]}")
    if not tied and "output" not in out:
        raise ValueError("untied model (tie_word_embeddings=false) without lm_head.weight")
    return out


def _layer_flags(cfg: Mapping[str, object], key: str, n: int, default: int) -> list[int]:
    vals = cfg.get(key)
    if vals is None:
        return [default] * n
    vals = [int(v) for v in vals]  # type: ignore[union-attr]
    if len(vals) != n or any(v not in (0, 1) for v in vals):
        raise ValueError(f"config '{key}' must hold {n} entries of 0/1, got {vals}")
    return vals


# our arch -> how its config.json says what docs/MOE.md §2 needs (read by hf_config_to_moe; plain data):
#   experts, used, width   config keys of E, k and F (experts: the first key present)
#   gating, softmax_flag   "softmax" / "sigmoid"; with softmax_flag: softmax when that config flag is true
#   norm_topk              True / False, or the config key that says it (absent: false)
#   act, router_input      moe.act, moe.router_input
#   qk_norm                None, or llm.qk_norm_scope ("full": q_norm spans hidden_size = n_heads·head_dim)
#   dense_layers           (mlp_only_layers key, sparse step key, dense width key): Qwen-MoE's dense blocks
#   swa_all                config key of a window that applies to every layer (when set)
#   rope_layout, swa_layout, swa_window   per-layer 0/1 arrays and the window of the sliding layers
#   all_moe_layout         a per-layer 0/1 "this block is MoE" array that must be all 1
#   reject                 config flags whose truth (or, for reject_set, whose presence) is not implemented
#   any_hidden_act         the config's hidden_act names the experts' activation (SmallThinker: relu)
#   tied_default           tie_word_embeddings when the config omits it
MOE_FAMILIES: dict[str, dict[str, object]] = {
    "qwen3moe": dict(experts=("num_experts", "num_local_experts"), used="num_experts_per_tok",
                     width="moe_intermediate_size", gating="softmax", norm_topk="norm_topk_prob", act="silu",
                     router_input="ffn_norm", qk_norm="head",
                     dense_layers=("mlp_only_layers", "decoder_sparse_step", "intermediate_size"),
                     reject=("use_sliding_window",)),
    "mixtral": dict(experts=("num_local_experts",), used="num_experts_per_tok", width="intermediate_size",
                    gating="softmax", norm_topk=True, act="silu", router_input="ffn_norm", swa_all="sliding_window"),
    "olmoe": dict(experts=("num_experts",), used="num_experts_per_tok", width="intermediate_size", gating="softmax",
                  norm_topk="norm_topk_prob", act="silu", router_input="ffn_norm", qk_norm="full",
                  reject_set=("clip_qkv",)),
    "smallthinker": dict(experts=("moe_num_primary_experts",), used="moe_num_active_primary_experts",
                         width="moe_ffn_hidden_size", gating="sigmoid",
                         softmax_flag="moe_primary_router_apply_softmax",
                         norm_topk=True, act="relu", router_input="residual", rope_layout="rope_layout",
                         swa_layout="sliding_window_layout", swa_window="sliding_window_size",
                         all_moe_layout="moe_layer_layout",
                         reject=("use_qk_norm", "moe_enable_secondary_experts", "moe_shared_primary_experts"),
                         any_hidden_act=True, tied_default=True),
}


def hf_config_to_moe(cfg: Mapping[str, object]) -> dict[str, object]:
    """An HF config.json dict of a MoE model -> general.architecture + llm.* + moe.* (docs/MOE.md §2).

    HF keys read: the dense ones of hf_config_to_llm (hidden_size, num_hidden_layers, num_attention_heads,
    num_key_value_heads, head_dim, vocab_size, max_position_embeddings, rope (rope_parameters / rope_theta),
    rms_norm_eps, tie_word_embeddings) and the family's keys of MOE_FAMILIES.
    Always written: llm.rope_layers, llm.swa_layers (per layer), moe.layers; llm.swa_window when a
    layer slides; llm.qk_norm_scope when llm.qk_norm. moe.predictor is the converter's choice, not here.
    Raises NotImplementedError for what the format cannot express.
    """
    model_type = cfg.get("model_type")
    if model_type not in MOE_ARCHITECTURES:
        raise NotImplementedError(f"model_type '{model_type}' is not one of {sorted(MOE_ARCHITECTURES)}")
    arch = MOE_ARCHITECTURES[model_type][1]
    fam = MOE_FAMILIES[arch]
    L = int(cfg["num_hidden_layers"])
    d_model = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_kv_heads = int(cfg.get("num_key_value_heads") or n_heads)
    head_dim = int(cfg.get("head_dim") or d_model // n_heads)
    if not fam.get("any_hidden_act") and cfg.get("hidden_act", "silu") != "silu":
        raise NotImplementedError(f"hidden_act '{cfg.get('hidden_act')}' (only silu)")
    for flag in ("attention_bias", "mlp_bias") + tuple(fam.get("reject", ())):
        if cfg.get(flag, False):
            raise NotImplementedError(f"{model_type}: {flag}={cfg[flag]!r} is not supported")
    for key in fam.get("reject_set", ()):
        if cfg.get(key) is not None:
            raise NotImplementedError(f"{model_type}: {key} is not supported")
    scope = fam.get("qk_norm")
    if scope == "full" and n_heads * head_dim != d_model:
        raise NotImplementedError(f"{model_type}: q_norm spans hidden_size: n_heads * head_dim must equal it")
    if fam.get("all_moe_layout") and not all(_layer_flags(cfg, fam["all_moe_layout"], L, 1)):
        raise NotImplementedError(f"{model_type}: {fam['all_moe_layout']} with dense layers is not supported")

    E = int(cfg[next((k for k in fam["experts"] if k in cfg), fam["experts"][-1])])
    k, F = int(cfg[fam["used"]]), int(cfg[fam["width"]])
    gating = "softmax" if fam.get("softmax_flag") and cfg.get(fam["softmax_flag"], False) else fam["gating"]
    norm_topk = fam["norm_topk"] if isinstance(fam["norm_topk"], bool) else bool(cfg.get(fam["norm_topk"], False))
    layers, d_ff = [1] * L, 0
    if fam.get("dense_layers"):
        only_key, step_key, width_key = fam["dense_layers"]
        step = int(cfg.get(step_key, 1))
        mlp_only = set(cfg.get(only_key) or [])
        layers = [int(i not in mlp_only and E > 0 and (i + 1) % step == 0) for i in range(L)]
        if not all(layers):
            d_ff = int(cfg[width_key])
    rope_layers = _layer_flags(cfg, fam["rope_layout"], L, 1) if fam.get("rope_layout") else [1] * L
    swa_layers, window = [0] * L, 0
    if fam.get("swa_layout"):
        swa_layers = _layer_flags(cfg, fam["swa_layout"], L, 0)
        if any(swa_layers):
            window = int(cfg[fam["swa_window"]])
    if fam.get("swa_all") and cfg.get(fam["swa_all"]):
        swa_layers, window = [1] * L, int(cfg[fam["swa_all"]])
    tied = bool(cfg.get("tie_word_embeddings", fam.get("tied_default", False)))
    out: dict[str, object] = {
        "general.architecture": arch,
        "llm.n_layers": L,
        "llm.d_model": d_model,
        "llm.n_heads": n_heads,
        "llm.n_kv_heads": n_kv_heads,
        "llm.head_dim": head_dim,
        "llm.d_ff": d_ff,
        "llm.vocab_size": int(cfg["vocab_size"]),
        "llm.max_ctx": int(cfg.get("max_position_embeddings", 2048)),
        "llm.rope_theta": _rope_theta(cfg),
        "llm.rms_eps": float(cfg.get("rms_norm_eps", 1e-6)),
        "llm.qkv_bias": 0,
        "llm.qk_norm": int(scope is not None),
        **LAYOUT_DEFAULTS,  # llm.ffn_act is the dense layers' SwiGLU; the experts' activation is moe.act
        "llm.tied_head": int(tied),
    }
    if scope is not None:
        out["llm.qk_norm_scope"] = scope
    out["llm.rope_layers"] = rope_layers
    out["llm.swa_layers"] = swa_layers
    if any(swa_layers):
        out["llm.swa_window"] = window
    out.update({"moe.n_experts": E, "moe.n_experts_used": k, "moe.d_expert": F, "moe.gating": gating,
                "moe.norm_topk": int(norm_topk), "moe.act": fam["act"], "moe.router_input": fam["router_input"],
                "moe.layers": layers})
    return out


def hf_config_to_ours(cfg: Mapping[str, object]) -> dict[str, object]:
    """hf_config_to_llm for a dense model_type, hf_config_to_moe for a MoE one."""
    return hf_config_to_moe(cfg) if cfg.get("model_type") in MOE_ARCHITECTURES else hf_config_to_llm(cfg)
