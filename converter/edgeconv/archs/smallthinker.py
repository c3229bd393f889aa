"""SmallThinker (SmallThinkerForCausalLM, SmallThinker-4BA0.6B / 21BA3B): Llama attention without biases,
per-layer RoPE/NoPE (rope_layout) and sliding windows (sliding_window_layout, window
sliding_window_size); every block is MoE with ReGLU experts, routed from the raw residual before
input_layernorm (so the router itself is the pre-attention predictor: moe.predictor = router), top-k on
the raw logits with sigmoid + renormalise, or softmax when moe_primary_router_apply_softmax.

Names (HF remote code): block_sparse_moe.primary_router.weight [E, D] and
block_sparse_moe.experts.{e}.{gate,up,down}.weight. The 4B ties the head to the embedding.
"""
from .registry import HF_IGNORED, Arch, ExpertSpec, MoeSpec, moe_decoder_tensors, register

_M = "model.layers.{i}.block_sparse_moe."


@register("SmallThinkerForCausalLM")
class SmallThinker(Arch):
    name = "smallthinker"
    model_types = ("smallthinker",)
    gguf_arch = "smallthinker"
    hidden_act = "relu"
    default_head_dim = None
    reject_if_true = ("attention_bias", "mlp_bias")
    tie_default = True
    rope_layout_key = "rope_layout"
    swa_layout_key = "sliding_window_layout"
    swa_window_key = "sliding_window_size"
    moe = MoeSpec(n_experts=("moe_num_primary_experts",), n_used=("moe_num_active_primary_experts",),
                  d_expert=("moe_ffn_hidden_size",), act="relu", router_input="residual", predictor="router",
                  gating="sigmoid", softmax_flag="moe_primary_router_apply_softmax", norm_topk=True)
    tensors = moe_decoder_tensors("block_sparse_moe.primary_router.weight", predictor=False)
    gguf_swa_period = 4  # llama.cpp: with a sliding window, il % 4 == 0 are global NoPE layers
    experts = (ExpertSpec("gate", _M + "experts.{e}.gate.weight"),
               ExpertSpec("up", _M + "experts.{e}.up.weight"),
               ExpertSpec("down", _M + "experts.{e}.down.weight"))
    ignored_sources = HF_IGNORED
