"""Tiny random-weight MoE models (Qwen3-MoE, Mixtral, OLMoE, SmallThinker) as HF folders, for tests.

    hf_model, config, weights = make_tiny_moe("olmoe", seed=0, dir=tmp_path / "m", norm_topk_prob=True)

(models.tiny.make_tiny dispatches here for these four names; this module imports nothing from models.tiny.)
`overrides` are HF config fields.
`hf_model` is the transformers *ForCausalLM (float32, eval, eager attention, eager experts), or None
for SmallThinker, which has no transformers class; `config` is our llm.*/moe.* dict of the saved
config.json (hf_names.hf_config_to_moe); `weights` maps our names to float32 numpy arrays.

With `dir`: config.json (HF keys), model.safetensors in the per-expert names files hold (transformers'
save_pretrained for the three transformers families; SmallThinker's names from hf_names for it),
generation_config.json, tokenizer.json + tokenizer_config.json (models.tiny_tokenizer's byte-level BPE, vocabulary
= the model's).

Shapes (TINY_MOE_DEFAULTS): d_model 64, 4 query / 2 kv heads of 16, E = 8 experts, k = 2, F = 32,
vocabulary 320.
  qwen3moe      3 layers, layer 1 dense (mlp_only_layers=[1], d_ff 96), norm_topk_prob true
  mixtral       2 layers; sliding_window=None (pass e.g. sliding_window=6 for SWA on every layer)
  olmoe         2 layers, q/k norm over the whole projection, norm_topk_prob false
  smallthinker  4 layers, rope_layout [0,1,1,1] and sliding_window_layout [0,1,1,1] (window 8): layer 0
                NoPE + full attention, layers 1-3 RoPE + sliding window (the 21B pattern, il % 4 == 0
                global); sigmoid gating (moe_primary_router_apply_softmax=True for softmax); untied
                (the released 4B is tied: tie_word_embeddings=True; a random tied model greedily
                repeats its input). Overriding num_hidden_layers re-derives both layouts by that rule.

Initialisation (as models.tiny, so logits are far from flat): matrices [out, in] ~ N(0, 1/in), fused
expert tensors likewise per expert, embeddings and lm_head N(0, 0.5²), norm weights 1 + N(0, 0.1²);
routers N(0, (2/√in)²) when they read the normalised state (logits std ≈ 2, so top-k is decisive and
varied) and N(0, (4/√in)²) when they read the raw residual (SmallThinker: its rms is ≈ 0.5 at the
first layer). One private torch.Generator(seed).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from ..hf_names import MOE_ARCHITECTURES, convert_moe_state_dict, hf_config_to_moe, moe_ours_to_hf
from ..tiny_tokenizer import make_tokenizer, write_tokenizer
from .shape import MoeShape

__all__ = ["make_tiny_moe", "TINY_MOE_DEFAULTS", "MOE_TINY_ARCHS", "smallthinker_hf_config"]

_COMMON = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, vocab_size=320,
               max_position_embeddings=256)
TINY_MOE_DEFAULTS: dict[str, dict[str, Any]] = {
    "qwen3moe": dict(_COMMON, head_dim=16, num_hidden_layers=3, intermediate_size=96, moe_intermediate_size=32,
                     num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[1],
                     rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False),
    "mixtral": dict(_COMMON, head_dim=16, num_hidden_layers=2, intermediate_size=32, num_local_experts=8,
                    num_experts_per_tok=2, sliding_window=None, rms_norm_eps=1e-5, rope_theta=1000000.0,
                    tie_word_embeddings=False),
    "olmoe": dict(_COMMON, num_hidden_layers=2, intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                  norm_topk_prob=False, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
    "smallthinker": dict(_COMMON, head_dim=16, num_hidden_layers=4, moe_num_primary_experts=8,
                         moe_num_active_primary_experts=2, moe_ffn_hidden_size=32,
                         moe_primary_router_apply_softmax=False, sliding_window_size=8, rms_norm_eps=1e-6,
                         rope_theta=1500000.0, tie_word_embeddings=False),
}
MOE_TINY_ARCHS = tuple(TINY_MOE_DEFAULTS)

# our arch -> (HF model_type, transformers config class, model class)
_CLASSES = {"qwen3moe": ("qwen3_moe", "Qwen3MoeConfig", "Qwen3MoeForCausalLM"),
            "mixtral": ("mixtral", "MixtralConfig", "MixtralForCausalLM"),
            "olmoe": ("olmoe", "OlmoeConfig", "OlmoeForCausalLM")}


def _router_scale(residual: bool) -> float:
    return 4.0 if residual else 2.0


@torch.no_grad()
def _reinit_hf(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Re-draws every parameter of a transformers MoE model (module docstring). Order = named_parameters()."""
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            val = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif name.endswith(("embed_tokens.weight", "lm_head.weight")):
            val = 0.5 * torch.randn(p.shape, generator=gen)
        elif name.endswith(("mlp.gate.weight", "block_sparse_moe.gate.weight")):
            val = torch.randn(p.shape, generator=gen) * (_router_scale(False) / np.sqrt(p.shape[1]))
        elif p.ndim in (2, 3):
            val = torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1])
        else:
            raise ValueError(f"no init rule for parameter '{name}' {tuple(p.shape)}")
        p.copy_(val.to(p.dtype))


def _init_ours(shape: MoeShape, gen: torch.Generator) -> dict[str, np.ndarray]:
    """Random weights by our names (tensor_shapes() order), with the rules of _reinit_hf."""
    out = {}
    for name, shp in shape.tensor_shapes().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("norm"):
            val = 1.0 + 0.1 * torch.randn(shp, generator=gen)
        elif name in ("tok_embd", "output"):
            val = 0.5 * torch.randn(shp, generator=gen)
        elif leaf == "ffn_router":
            val = torch.randn(shp, generator=gen) * (_router_scale(shape.router_input == "residual") /
                                                     np.sqrt(shp[1]))
        elif len(shp) == 2:
            val = torch.randn(shp, generator=gen) / np.sqrt(shp[1])
        else:
            raise ValueError(f"no init rule for tensor '{name}' {shp}")
        out[name] = val.numpy().astype(np.float32)
    return out


def smallthinker_hf_config(**kw) -> dict[str, Any]:
    """A SmallThinker config.json dict (the keys of PowerInfer's configuration_smallthinker.py) from HF
    fields; rope_layout / sliding_window_layout default to the il % 4 == 0 global-NoPE pattern."""
    L = int(kw["num_hidden_layers"])
    pattern = [int(i % 4 != 0) for i in range(L)]
    cfg = {"architectures": ["SmallThinkerForCausalLM"], "model_type": "smallthinker",
           "rope_layout": pattern, "sliding_window_layout": pattern, "rope_scaling": None,
           "norm_topk_prob": True, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 0,
           "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


def _save_safetensors(weights: dict[str, np.ndarray], arch: str, path: str) -> None:
    from safetensors.numpy import save_file
    hf = {}
    for name, w in weights.items():
        hf_name = moe_ours_to_hf(name, arch)
        if hf_name is None:
            raise ValueError(f"internal: no HF name for '{name}'")
        hf[hf_name] = np.ascontiguousarray(w)
    save_file(hf, path, metadata={"format": "pt"})


def _make_smallthinker(seed: int, dir: str | None, overrides: dict):
    kw = dict(TINY_MOE_DEFAULTS["smallthinker"])
    kw.update(overrides)
    hf_cfg = smallthinker_hf_config(**kw)
    config = hf_config_to_moe(hf_cfg)
    weights = _init_ours(MoeShape.from_config(config), torch.Generator().manual_seed(seed))
    if dir is not None:
        with open(os.path.join(dir, "config.json"), "w") as f:
            json.dump(hf_cfg, f, indent=2)
        with open(os.path.join(dir, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 0}, f, indent=2)
        _save_safetensors(weights, "smallthinker", os.path.join(dir, "model.safetensors"))
    return None, config, weights


def _make_transformers(arch: str, seed: int, dir: str | None, overrides: dict):
    import transformers

    kw = dict(TINY_MOE_DEFAULTS[arch])
    kw.update(overrides)
    rope_theta = kw.pop("rope_theta")
    kw.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": rope_theta})
    kw.update(bos_token_id=0, eos_token_id=2, pad_token_id=0)
    _, cfg_name, model_name = _CLASSES[arch]
    hf_cfg = getattr(transformers, cfg_name)(**kw)
    hf_cfg._attn_implementation = "eager"
    hf_cfg._experts_implementation = "eager"
    model = getattr(transformers, model_name)(hf_cfg).to(torch.float32).eval()
    _reinit_hf(model, torch.Generator().manual_seed(seed))
    config = hf_config_to_moe(hf_cfg.to_dict())
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    weights = {k: np.array(v, dtype=np.float32) for k, v in convert_moe_state_dict(state, config).items()}
    if dir is not None:
        model.save_pretrained(dir)
    return model, config, weights


def make_tiny_moe(arch: str, seed: int = 0, dir: str | os.PathLike | None = None, **overrides):
    """Builds a tiny random MoE model (module docstring). Returns (hf_model or None, our config, our weights)."""
    if arch not in TINY_MOE_DEFAULTS:
        raise ValueError(f"arch must be one of {sorted(TINY_MOE_DEFAULTS)}, got '{arch}'")
    if dir is not None:
        dir = os.fspath(dir)
        os.makedirs(dir, exist_ok=True)
    if arch == "smallthinker":
        model, config, weights = _make_smallthinker(seed, dir, overrides)
    else:
        model, config, weights = _make_transformers(arch, seed, dir, overrides)
    if dir is not None:
        write_tokenizer(make_tokenizer(int(config["llm.vocab_size"])), dir)
        with open(os.path.join(dir, "config.json")) as f:
            saved = json.load(f)
        if MOE_ARCHITECTURES[saved["model_type"]][1] != arch or hf_config_to_moe(saved) != config:
            raise RuntimeError(f"config.json round trip changed the model: {hf_config_to_moe(saved)} != {config}")
    return model, config, weights
