"""Architecture registry: one declarative module per model family, registered by HF architecture name.

An architecture is a class of plain data (no behaviour beyond what the fields say):
  name                general.architecture written to the file (llama, qwen2, qwen3)
  hf_names            HF `architectures` entries it handles (the decorator's arguments)
  model_types         HF config `model_type` values (used when `architectures` is absent)
  gguf_arch           GGUF `general.architecture` value; its keys are `<gguf_arch>.*`
  gguf_qk_permuted    True when llama.cpp's converter permuted attn_q/attn_k rows into interleaved RoPE
                      order for this family; the rows are un-permuted on GGUF import
  qkv_bias, qk_norm   model features, stored as llm.qkv_bias / llm.qk_norm
  default_head_dim    head_dim when the config omits it (None: d_model / n_heads)
  reject_if_true      HF config flags this converter does not implement (error when true)
  tensors             the tensor table (TensorSpec rows; `{i}` = block index)

A TensorSpec row names a tensor in every source naming scheme (HF/torch, GGUF, ours) with its shape
in symbolic dims (d_model, vocab, d_ff, head_dim, q_dim = n_heads·head_dim, kv_dim = n_kv_heads·head_dim),
its role (what recipes key on), the minimum dtype (norms/biases: f32, never quantized), whether the
source stores it transposed, how to undo GGUF's RoPE row permutation, and whether it is the output
head that a tied model does not store.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

ROLES = ("embedding", "head", "attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down",
         "norm", "bias")


@dataclass(frozen=True)
class TensorSpec:
    ours: str                        # name in the .edge file, e.g. "blk.{i}.attn_q"
    hf: str                          # HF safetensors / torch state-dict name
    gguf: str                        # GGUF tensor name
    shape: tuple[str, ...]           # symbolic dims, outermost first (our layout)
    role: str
    min_dtype: str | None = None     # "f32": never quantized (norms, biases)
    transpose: bool = False          # the source stores it [in, out]: transpose on import
    gguf_unpermute: str | None = None  # "n_heads"/"n_kv_heads": head count of GGUF's RoPE permutation
    tied_head: bool = False          # the output head: absent (and ignored in the source) when tied

    def __post_init__(self) -> None:
        assert self.role in ROLES, self.role

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.ours


class Arch:
    """Base of the architecture declarations; subclasses only set class attributes."""

    name: ClassVar[str]
    hf_names: ClassVar[tuple[str, ...]] = ()
    model_types: ClassVar[tuple[str, ...]] = ()
    gguf_arch: ClassVar[str]
    gguf_qk_permuted: ClassVar[bool] = False
    qkv_bias: ClassVar[bool] = False
    qk_norm: ClassVar[bool] = False
    default_head_dim: ClassVar[int | None] = None
    hidden_act: ClassVar[str] = "silu"
    reject_if_true: ClassVar[tuple[str, ...]] = ()
    tensors: ClassVar[tuple[TensorSpec, ...]] = ()
    ignored_sources: ClassVar[tuple[str, ...]] = ()  # regexes of source tensors that carry nothing


ARCHS: dict[str, type[Arch]] = {}  # HF architecture name -> Arch


def register(*hf_names: str):
    """Class decorator: register an Arch under one or more HF architecture names."""

    def deco(cls: type[Arch]) -> type[Arch]:
        cls.hf_names = tuple(hf_names)
        for n in hf_names:
            if n in ARCHS:
                raise ValueError(f"architecture {n} registered twice")
            ARCHS[n] = cls
        return cls

    return deco


def supported() -> str:
    return ", ".join(sorted(ARCHS))


def arch_for_hf(config: dict) -> type[Arch]:
    """The Arch for an HF config dict (its `architectures`, else its `model_type`)."""
    names = config.get("architectures") or []
    for n in names:
        if n in ARCHS:
            return ARCHS[n]
    mt = config.get("model_type")
    if not names:
        for a in ARCHS.values():
            if mt in a.model_types:
                return a
    got = ", ".join(names) if names else f"model_type={mt!r}"
    raise ValueError(f"unsupported architecture {got}; supported: {supported()}")


def arch_for_gguf(gguf_arch: str) -> type[Arch]:
    for a in ARCHS.values():
        if a.gguf_arch == gguf_arch:
            return a
    known = ", ".join(sorted({a.gguf_arch for a in ARCHS.values()}))
    raise ValueError(f"unsupported GGUF architecture {gguf_arch!r}; supported: {known} "
                     f"(HF names: {supported()})")


def decoder_tensors() -> tuple[TensorSpec, ...]:
    """The table shared by every decoder-only family here (Llama layout)."""
    T = TensorSpec
    L = "model.layers.{i}."
    return (
        T("tok_embd", "model.embed_tokens.weight", "token_embd.weight", ("vocab", "d_model"), "embedding"),
        T("output_norm", "model.norm.weight", "output_norm.weight", ("d_model",), "norm", "f32"),
        T("output", "lm_head.weight", "output.weight", ("vocab", "d_model"), "head", tied_head=True),
        T("blk.{i}.attn_norm", L + "input_layernorm.weight", "blk.{i}.attn_norm.weight", ("d_model",),
          "norm", "f32"),
        T("blk.{i}.attn_q", L + "self_attn.q_proj.weight", "blk.{i}.attn_q.weight", ("q_dim", "d_model"),
          "attn_q", gguf_unpermute="n_heads"),
        T("blk.{i}.attn_k", L + "self_attn.k_proj.weight", "blk.{i}.attn_k.weight", ("kv_dim", "d_model"),
          "attn_k", gguf_unpermute="n_kv_heads"),
        T("blk.{i}.attn_v", L + "self_attn.v_proj.weight", "blk.{i}.attn_v.weight", ("kv_dim", "d_model"),
          "attn_v"),
        T("blk.{i}.attn_o", L + "self_attn.o_proj.weight", "blk.{i}.attn_output.weight", ("d_model", "q_dim"),
          "attn_o"),
        T("blk.{i}.ffn_norm", L + "post_attention_layernorm.weight", "blk.{i}.ffn_norm.weight", ("d_model",),
          "norm", "f32"),
        T("blk.{i}.ffn_gate", L + "mlp.gate_proj.weight", "blk.{i}.ffn_gate.weight", ("d_ff", "d_model"),
          "ffn_gate"),
        T("blk.{i}.ffn_up", L + "mlp.up_proj.weight", "blk.{i}.ffn_up.weight", ("d_ff", "d_model"), "ffn_up"),
        T("blk.{i}.ffn_down", L + "mlp.down_proj.weight", "blk.{i}.ffn_down.weight", ("d_model", "d_ff"),
          "ffn_down"),
    )


HF_IGNORED = (r"(^|\.)rotary_emb\.inv_freq$",)
