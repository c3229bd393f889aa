"""Qwen2 / Qwen2.5 (Qwen2ForCausalLM): the Llama layout plus q/k/v projection biases.

llama.cpp's Qwen2Model converter does not permute q/k rows, so GGUF rows are already rotate-half order.
Sliding-window attention is not implemented and is rejected.
"""
from .registry import HF_IGNORED, Arch, TensorSpec, decoder_tensors, register

_L = "model.layers.{i}.self_attn."


@register("Qwen2ForCausalLM")
class Qwen2(Arch):
    name = "qwen2"
    model_types = ("qwen2",)
    gguf_arch = "qwen2"
    qkv_bias = True
    reject_if_true = ("use_sliding_window",)
    tensors = decoder_tensors() + (
        TensorSpec("blk.{i}.attn_q_bias", _L + "q_proj.bias", "blk.{i}.attn_q.bias", ("q_dim",), "bias", "f32"),
        TensorSpec("blk.{i}.attn_k_bias", _L + "k_proj.bias", "blk.{i}.attn_k.bias", ("kv_dim",), "bias", "f32"),
        TensorSpec("blk.{i}.attn_v_bias", _L + "v_proj.bias", "blk.{i}.attn_v.bias", ("kv_dim",), "bias", "f32"),
    )
    ignored_sources = HF_IGNORED
