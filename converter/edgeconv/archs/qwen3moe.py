"""Qwen3-MoE (Qwen3MoeForCausalLM, e.g. Qwen3-30B-A3B): Qwen3 attention (per-head q/k RMSNorm) with a
softmax-routed SwiGLU expert FFN on the post-attention-norm state; blocks listed in mlp_only_layers, or
not at a multiple of decoder_sparse_step, keep a dense FFN of width intermediate_size.

Experts: per expert mlp.experts.{e}.{gate,up,down}_proj.weight (checkpoints on disk), or the fused
mlp.experts.gate_up_proj [E, 2F, D] / down_proj [E, D, F] of transformers 5's in-memory modules.
Sliding windows (use_sliding_window) and shared experts (Qwen2-MoE style) are rejected.
"""
from .registry import (HF_IGNORED, Arch, MoeSpec, TensorSpec, moe_decoder_tensors, register, swiglu_experts)

_L = "model.layers.{i}.self_attn."


@register("Qwen3MoeForCausalLM")
class Qwen3Moe(Arch):
    name = "qwen3moe"
    model_types = ("qwen3_moe",)
    gguf_arch = "qwen3moe"
    qk_norm = True
    default_head_dim = None  # Qwen3MoeAttention: getattr(config, "head_dim", hidden_size // heads)
    reject_if_true = ("attention_bias", "use_sliding_window", "shared_expert_intermediate_size")
    moe = MoeSpec(n_experts=("num_experts", "num_local_experts"), n_used=("num_experts_per_tok",),
                  d_expert=("moe_intermediate_size",), act="silu", router_input="ffn_norm", predictor="linear",
                  norm_topk_key="norm_topk_prob", norm_topk_default=False, dense_ff="intermediate_size",
                  mlp_only_layers_key="mlp_only_layers", sparse_step_key="decoder_sparse_step")
    tensors = moe_decoder_tensors("mlp.gate.weight") + (
        TensorSpec("blk.{i}.attn_q_norm", _L + "q_norm.weight", "blk.{i}.attn_q_norm.weight", ("head_dim",),
                   "norm", "f32"),
        TensorSpec("blk.{i}.attn_k_norm", _L + "k_norm.weight", "blk.{i}.attn_k_norm.weight", ("head_dim",),
                   "norm", "f32"),
    )
    experts = swiglu_experts("mlp.experts.{e}.gate_proj.weight", "mlp.experts.{e}.up_proj.weight",
                             "mlp.experts.{e}.down_proj.weight")
    ignored_sources = HF_IGNORED
