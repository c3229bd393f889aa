"""Tiny random-weight Hugging Face models (Llama, Qwen2, Qwen3; MoE: Qwen3-MoE, Mixtral, OLMoE,
SmallThinker) for tests.

    hf_model, config, weights = make_tiny("qwen3", seed=0, dir=tmp_path / "m", tie_word_embeddings=True)

`hf_model` is a transformers *ForCausalLM in float32 and eval mode; `config` is our `llm.*` dict
(plus general.architecture) derived from its config.json; `weights` maps our tensor names to float32
numpy arrays. With `dir`, the folder is a complete Hugging Face checkpoint the converter can read:
config.json, model.safetensors, generation_config.json, tokenizer.json (byte-level BPE whose
vocabulary size equals the model's) and tokenizer_config.json (ChatML chat template).

Weights are re-drawn so that logits are far from uniform (HF's init std 0.02 gives nearly flat
logits, which would make greedy and top-k tests meaningless): a matrix [out, in] ~ N(0, 1/in) (unit
scale outputs), tok_embd and lm_head ~ N(0, 0.5²) (logits std ~4), norm weights 1 + N(0, 0.1²),
biases N(0, 0.2²). A random *tied* model tends to repeat its input token under greedy decoding (the
head reads back the token's own embedding); untied ones produce varied text.
Everything is drawn from a private torch.Generator(seed), so the global RNG is untouched and the same
seed always gives the same model.

make_tiny("qwen3moe" | "mixtral" | "olmoe" | "smallthinker", ...) builds a mixture-of-experts model
instead: see models/moe/tiny.py (its `config` holds moe.* keys too; SmallThinker returns hf_model None).
The tokenizer is models/tiny_tokenizer.py (re-exported here); imports point one way: tiny -> moe.tiny ->
tiny_tokenizer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from .hf_names import convert_state_dict, hf_config_to_llm
from .moe.tiny import MOE_TINY_ARCHS, make_tiny_moe
from .tiny_tokenizer import CHATML_TEMPLATE, SPECIAL_TOKENS, make_tokenizer, write_tokenizer
from .tiny_tokenizer import CORPUS as _CORPUS  # noqa: F401  (tests read the tokenizer's training text here)

__all__ = ["make_tiny", "make_tokenizer", "TINY_DEFAULTS", "SPECIAL_TOKENS", "CHATML_TEMPLATE"]

# Shared shape: GQA (4 query heads over 2 kv heads), head_dim 16, odd-ish sizes.
TINY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, vocab_size=320, max_position_embeddings=256,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
    "qwen2": dict(hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=384, max_position_embeddings=256,
                  rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True),
    "qwen3": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=24, vocab_size=352, max_position_embeddings=256,
                  rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False),
}

_CLASSES = {"llama": ("LlamaConfig", "LlamaForCausalLM"),
            "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
            "qwen3": ("Qwen3Config", "Qwen3ForCausalLM")}

@torch.no_grad()
def _reinit(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Re-draws every parameter (see the module docstring). Order = named_parameters() order."""
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            val = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif name.endswith(".bias"):
            val = 0.2 * torch.randn(p.shape, generator=gen)
        elif name.endswith("embed_tokens.weight"):
            val = 0.5 * torch.randn(p.shape, generator=gen)
        elif name.endswith("lm_head.weight"):
            val = 0.5 * torch.randn(p.shape, generator=gen)
        elif p.ndim == 2:
            val = torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1])
        else:
            raise ValueError(f"no init rule for parameter '{name}' {tuple(p.shape)}")
        p.copy_(val.to(p.dtype))


def make_tiny(arch: str, seed: int = 0, dir: str | os.PathLike | None = None, **overrides):
    """Builds a tiny random model. `overrides` are HF config fields (e.g. tie_word_embeddings=True,
    num_key_value_heads=4, vocab_size=300). Returns (hf_model, our_config, our_weights).
    MoE archs (qwen3moe, mixtral, olmoe, smallthinker) go to models.moe.tiny.make_tiny_moe."""
    if arch in MOE_TINY_ARCHS:
        return make_tiny_moe(arch, seed, dir, **overrides)
    import transformers

    if arch not in _CLASSES:
        raise ValueError(f"arch must be one of {sorted(_CLASSES) + sorted(MOE_TINY_ARCHS)}, got '{arch}'")
    kw = dict(TINY_DEFAULTS[arch])
    kw.update(overrides)
    rope_theta = kw.pop("rope_theta")
    kw.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": rope_theta})
    kw.update(bos_token_id=0, eos_token_id=2, pad_token_id=0)
    cfg_cls, model_cls = (getattr(transformers, n) for n in _CLASSES[arch])
    hf_cfg = cfg_cls(**kw)
    hf_cfg._attn_implementation = "eager"
    model = model_cls(hf_cfg).to(torch.float32).eval()
    _reinit(model, torch.Generator().manual_seed(seed))

    config = hf_config_to_llm(hf_cfg.to_dict())
    state = {k: v.detach().numpy().astype(np.float32, copy=True) for k, v in model.state_dict().items()}
    weights = convert_state_dict(state, tied_head=bool(config["llm.tied_head"]))

    if dir is not None:
        dir = os.fspath(dir)
        os.makedirs(dir, exist_ok=True)
        model.save_pretrained(dir)
        write_tokenizer(make_tokenizer(hf_cfg.vocab_size, allow_fewer=True), dir)
        with open(os.path.join(dir, "config.json")) as f:
            saved = hf_config_to_llm(json.load(f))
        if saved != config:  # the on-disk config must describe the same model
            raise RuntimeError(f"config.json round trip changed the model: {saved} != {config}")
    return model, config, weights
