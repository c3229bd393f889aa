"""Mixtral (MixtralForCausalLM): Llama attention with a softmax-routed SwiGLU expert FFN (top-k renormalised)
in every block; optional sliding-window attention (config sliding_window) on every layer.

Names: checkpoints keep block_sparse_moe.gate.weight and block_sparse_moe.experts.{e}.w1 (gate),
w3 (up), w2 (down); transformers 5's in-memory modules use mlp.gate.weight and the fused
mlp.experts.gate_up_proj [E, 2F, D] / down_proj [E, D, F]. Both are read. router_jitter_noise is a
training-time option and is ignored. GGUF (llama.cpp): general.architecture "llama" with llama.expert_count,
q/k rows permuted as for Llama, experts fused in blk.{i}.ffn_{gate,up,down}_exps.
"""
from .registry import HF_IGNORED, Arch, MoeSpec, moe_decoder_tensors, register, swiglu_experts


@register("MixtralForCausalLM")
class Mixtral(Arch):
    name = "mixtral"
    model_types = ("mixtral",)
    gguf_arch = "llama"  # llama.cpp stores Mixtral as "llama" with llama.expert_count (registry.arch_for_gguf)
    gguf_qk_permuted = True  # convert_hf_to_gguf's LlamaModel permutes q/k rows for Mixtral too
    reject_if_true = ("attention_bias", "mlp_bias")
    swa_all_key = "sliding_window"
    moe = MoeSpec(n_experts=("num_local_experts", "num_experts"), n_used=("num_experts_per_tok",),
                  d_expert=("intermediate_size",), act="silu", router_input="ffn_norm", predictor="linear",
                  norm_topk=True)
    tensors = moe_decoder_tensors("block_sparse_moe.gate.weight", router_alt=("mlp.gate.weight",))
    experts = swiglu_experts("block_sparse_moe.experts.{e}.w1.weight", "block_sparse_moe.experts.{e}.w3.weight",
                             "block_sparse_moe.experts.{e}.w2.weight")
    ignored_sources = HF_IGNORED
