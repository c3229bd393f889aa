"""Llama family (LlamaForCausalLM: Llama 2/3 shapes without RoPE scaling, SmolLM/SmolLM2, TinyLlama).

llama.cpp's convert_hf_to_gguf.py (LlamaModel.modify_tensors) permutes the rows of q_proj (n_head groups)
and k_proj (n_kv_head groups) into interleaved RoPE order; the GGUF import undoes that (gguf_qk_permuted).
No biases: attention_bias / mlp_bias models are rejected rather than silently mis-converted.
"""
from .registry import HF_IGNORED, Arch, decoder_tensors, register


@register("LlamaForCausalLM")
class Llama(Arch):
    name = "llama"
    model_types = ("llama",)
    gguf_arch = "llama"
    gguf_qk_permuted = True
    reject_if_true = ("attention_bias", "mlp_bias")
    tensors = decoder_tensors()
    ignored_sources = HF_IGNORED
