"""Gemma 3 text decoders (Gemma3ForCausalLM, model_type gemma3_text; e.g. google/gemma-3-270m, -1b).

The Llama table plus: per-head q/k RMSNorm, RMSNorms of the attention and FFN outputs before each
residual add (post_attention_layernorm / post_feedforward_layernorm; the pre-FFN norm is
pre_feedforward_layernorm), GeGLU with tanh GELU, the embedding scaled by sqrt(d_model), sliding-window
blocks (layer_types; llama.cpp's GGUF: every 6th block global) with their own RoPE base (10000), and
norms of the form x̂·(1 + w): HF stores w (+1 on import), llama.cpp's GGUF already stores 1 + w.
llama.cpp's converter does not permute Gemma's q/k rows. query_pre_attn_scalar must equal head_dim
(every Gemma 3 up to 12B; the runtime scales scores by 1/sqrt(head_dim)); logit soft-capping is refused.
"""
from .registry import HF_IGNORED, Arch, TensorSpec, decoder_tensors, register

_L = "model.layers.{i}."


def _gemma3_tensors() -> tuple[TensorSpec, ...]:
    out = []
    for s in decoder_tensors():
        if s.ours == "blk.{i}.ffn_norm":  # Gemma's post_attention_layernorm is the post-attention norm
            s = TensorSpec(s.ours, _L + "pre_feedforward_layernorm.weight", s.gguf, s.shape, s.role, s.min_dtype)
        out.append(s)
    T = TensorSpec
    return tuple(out) + (
        T("blk.{i}.attn_q_norm", _L + "self_attn.q_norm.weight", "blk.{i}.attn_q_norm.weight", ("head_dim",),
          "norm", "f32"),
        T("blk.{i}.attn_k_norm", _L + "self_attn.k_norm.weight", "blk.{i}.attn_k_norm.weight", ("head_dim",),
          "norm", "f32"),
        T("blk.{i}.attn_post_norm", _L + "post_attention_layernorm.weight", "blk.{i}.post_attention_norm.weight",
          ("d_model",), "norm", "f32"),
        T("blk.{i}.ffn_post_norm", _L + "post_feedforward_layernorm.weight", "blk.{i}.post_ffw_norm.weight",
          ("d_model",), "norm", "f32"),
    )


@register("Gemma3ForCausalLM")
class Gemma3(Arch):
    name = "gemma3"
    model_types = ("gemma3_text",)
    gguf_arch = "gemma3"
    qk_norm = True
    ffn_act = "gelu_tanh"
    hidden_act = "gelu_pytorch_tanh"
    hidden_act_key = "hidden_activation"
    post_norms = True
    embed_scale_sqrt = True
    hf_norm_offset = 1.0
    layer_types_key = "layer_types"
    swa_window_key = "sliding_window"
    gguf_global_period = 6
    gguf_rope_theta_swa = 10000.0
    query_scale_key = "query_pre_attn_scalar"
    tie_default = True
    reject_if_true = ("attention_bias", "attn_logit_softcapping", "final_logit_softcapping",
                      "use_bidirectional_attention")
    tensors = _gemma3_tensors()
    ignored_sources = HF_IGNORED
