"""OLMoE (OlmoeForCausalLM, e.g. OLMoE-1B-7B): Llama attention with RMSNorm over the whole q and k
projections (weights [q_dim] / [kv_dim]: llm.qk_norm_scope = full) and a softmax-routed SwiGLU expert
FFN in every block, top-k renormalised iff norm_topk_prob (false in OLMoE-1B-7B).

Experts: mlp.experts.{e}.{gate,up,down}_proj.weight, or transformers 5's fused mlp.experts.gate_up_proj /
down_proj. clip_qkv (clamping q/k/v) is not implemented and is rejected.
"""
from .registry import HF_IGNORED, Arch, MoeSpec, TensorSpec, moe_decoder_tensors, register, swiglu_experts

_L = "model.layers.{i}.self_attn."


@register("OlmoeForCausalLM")
class Olmoe(Arch):
    name = "olmoe"
    model_types = ("olmoe",)
    gguf_arch = "olmoe"
    qk_norm = True
    qk_norm_scope = "full"
    reject_if_true = ("attention_bias", "clip_qkv")
    moe = MoeSpec(n_experts=("num_experts", "num_local_experts"), n_used=("num_experts_per_tok",),
                  d_expert=("intermediate_size",), act="silu", router_input="ffn_norm", predictor="linear",
                  norm_topk_key="norm_topk_prob", norm_topk_default=False)
    tensors = moe_decoder_tensors("mlp.gate.weight") + (
        TensorSpec("blk.{i}.attn_q_norm", _L + "q_norm.weight", "blk.{i}.attn_q_norm.weight", ("q_dim",),
                   "norm", "f32"),
        TensorSpec("blk.{i}.attn_k_norm", _L + "k_norm.weight", "blk.{i}.attn_k_norm.weight", ("kv_dim",),
                   "norm", "f32"),
    )
    gguf_norm_topk = False  # llama.cpp's olmoe graph does not renormalise (as OLMoE-1B-7B)
    experts = swiglu_experts("mlp.experts.{e}.gate_proj.weight", "mlp.experts.{e}.up_proj.weight",
                             "mlp.experts.{e}.down_proj.weight")
    ignored_sources = HF_IGNORED
