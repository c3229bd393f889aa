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
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from .hf_names import convert_state_dict, hf_config_to_llm

__all__ = ["make_tiny", "make_tokenizer", "TINY_DEFAULTS", "SPECIAL_TOKENS", "CHATML_TEMPLATE"]

# Same ids as SmolLM2: <|endoftext|> = 0 (bos/pad), <|im_start|> = 1, <|im_end|> = 2 (eos).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

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

# Training text for the tokenizer: enough distinct words for ~300 merges.
_CORPUS = """\
The quick brown fox jumps over the lazy dog while the small grey cat watches from a sunny window.
Edge devices run language models on phones, boards and tiny computers without any network access.
A runtime reads weights from a single file, maps it into memory, and computes one token at a time.
Quantization stores numbers with fewer bits: four-bit integers, eight-bit blocks, and micro-scaled
floating point formats share one exponent among thirty-two neighbouring values.
Hello world! How are you today? I am fine, thank you. What time is it? It is twelve o'clock.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 128 256 1024 3.14159 2.71828 -7 +13 100% $5 #hashtag @user.
def main(): print("hello") return 0 # comments, brackets [x] {y} (z) <tag> a+b=c x*y/z
Rivers flow through valleys toward the ocean; mountains rise above forests covered in snow.
Students learn mathematics, physics, chemistry, biology, history, geography, music and painting.
The library opens at nine in the morning and closes at six in the evening, except on holidays.
Bonjour, merci, gracias, danke, grazie, obrigado, spasibo, arigato, xiexie, shukran, dhanyavad.
Assistant: I can help with writing, reading, summarizing, translating, explaining and planning.
User: Please explain attention, normalization, rotary embeddings, caches and greedy decoding.
"""


def make_tokenizer(vocab_size: int):
    """A byte-level BPE `tokenizers.Tokenizer` with exactly `vocab_size` ids (3 specials first, then
    the 256 byte symbols, then merges learned on a fixed text). Deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    if tok.get_vocab_size() != vocab_size:
        raise ValueError(f"the tokenizer corpus yields {tok.get_vocab_size()} ids, not vocab_size="
                         f"{vocab_size}; use a vocab_size in [{256 + len(SPECIAL_TOKENS)}, "
                         f"{tok.get_vocab_size()}]")
    return tok


def _write_tokenizer(tok, dir: str) -> None:
    tok.save(os.path.join(dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 256,
        "chat_template": CHATML_TEMPLATE,
    }
    with open(os.path.join(dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


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
    from .moe.tiny import MOE_TINY_ARCHS, make_tiny_moe
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
        _write_tokenizer(make_tokenizer(hf_cfg.vocab_size), dir)
        with open(os.path.join(dir, "config.json")) as f:
            saved = hf_config_to_llm(json.load(f))
        if saved != config:  # the on-disk config must describe the same model
            raise RuntimeError(f"config.json round trip changed the model: {saved} != {config}")
    return model, config, weights
