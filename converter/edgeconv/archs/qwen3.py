"""Qwen3 (Qwen3ForCausalLM): the Llama layout plus per-head RMSNorm of q and k (weights [head_dim]) before
RoPE; head_dim is explicit in the config (128 when omitted, as transformers defaults it).

llama.cpp's Qwen3Model converter (a Qwen2Model subclass) does not permute q/k rows.
"""
from .registry import HF_IGNORED, Arch, TensorSpec, decoder_tensors, register

_L = "model.layers.{i}.self_attn."


@register("Qwen3ForCausalLM")
class Qwen3(Arch):
    name = "qwen3"
    model_types = ("qwen3",)
    gguf_arch = "qwen3"
    qk_norm = True
    default_head_dim = 128
    reject_if_true = ("attention_bias", "use_sliding_window")
    tensors = decoder_tensors() + (
        TensorSpec("blk.{i}.attn_q_norm", _L + "q_norm.weight", "blk.{i}.attn_q_norm.weight", ("head_dim",),
                   "norm", "f32"),
        TensorSpec("blk.{i}.attn_k_norm", _L + "k_norm.weight", "blk.{i}.attn_k_norm.weight", ("head_dim",),
                   "norm", "f32"),
    )
    ignored_sources = HF_IGNORED
