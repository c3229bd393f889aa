"""Architecture registry: one declarative module per model family, registered by HF architecture name.

This package is the only place that knows a family. The runtime (csrc/) and the reference (models/) read
only the llm.* / moe.* keys a file carries, never general.architecture, so every difference between
families must end up in those keys: a declared field below, written by plan.hf_hparams / the GGUF source.

Adding a family = one new file `archs/<family>.py` (archs/__init__.py imports every module of the
package) plus its tests. The file declares one `Arch` subclass, decorated `@register("<HF architecture>",
...)`, that sets only class attributes:
  required   name, model_types, gguf_arch, tensors (usually decoder_tensors() or moe_decoder_tensors(...)
             plus the family's extra rows), ignored_sources (usually HF_IGNORED)
  optional   every other field below, when the family differs from the default; an MoE family also sets
             moe (MoeSpec) and experts (ExpertSpec rows, e.g. swiglu_experts(...))
If the family needs something no field expresses, add a field here (with its default = today's
behaviour), interpret it in plan.py, write it as a key (docs/FORMAT.md / docs/MOE.md), and teach the
runtime and models/ that key: never a branch on the family's name.

An architecture is a class of plain data (no behaviour beyond what the fields say):
  name                general.architecture written to the file (llama, qwen2, qwen3, ...): a label only
  hf_names            HF `architectures` entries it handles (the decorator's arguments)
  model_types         HF config `model_type` values (used when `architectures` is absent)
  gguf_arch           GGUF `general.architecture` value; its keys are `<gguf_arch>.*` (two families may share
                      one: llama.cpp stores Mixtral as "llama", told apart by `llama.expert_count`)
  gguf_qk_permuted    True when llama.cpp's converter permuted attn_q/attn_k rows into interleaved RoPE
                      order for this family; the rows are un-permuted on GGUF import
  qkv_bias, qk_norm   model features, stored as llm.qkv_bias / llm.qk_norm
  norm                llm.norm: "rms" (RMSNorm, the weight multiplied after normalising)
  ffn_act             llm.ffn_act: the dense FFN's gated activation, "silu" (SwiGLU); MoE experts use moe.act
  rope_type           llm.rope_type: "rotate_half" (HF/NeoX pairs (i, i + head_dim/2) over all head_dim dims)
                      (norm / ffn_act / rope_type take the values of LAYOUT_KEYS; every file carries them)
  hidden_act          the config's hidden_act this family accepts (an input check, not written)
  default_head_dim    head_dim when the config omits it (None: d_model / n_heads)
  reject_if_true      HF config flags this converter does not implement (error when true)
  tensors             the tensor table (TensorSpec rows; `{i}` = block index)
  ignored_sources     regexes of source tensors that carry nothing (rotary buffers)
  qk_norm_scope       "head" (one [head_dim] weight, Qwen3) or "full" (one [q_dim]/[kv_dim] weight, OLMoE)
  rope_layout_key     config key of a per-layer 0/1 RoPE array (SmallThinker rope_layout) -> llm.rope_layers
  swa_layout_key      config key of a per-layer 0/1 sliding-window array -> llm.swa_layers, window from
                      swa_window_key; or swa_all_key: a config window that applies to every layer (Mixtral)
  moe                 MoeSpec of a mixture-of-experts family (docs/MOE.md), None for dense families
  experts             ExpertSpec rows: where each expert matrix is in an HF source (per expert or fused)
  tie_default         tie_word_embeddings of a config that omits it (SmallThinker's class default: true)
  hidden_act_key      the config key of the activation ("hidden_act"; Gemma: "hidden_activation")
  post_norms          llm.post_norms: RMSNorms of the attention and FFN outputs before the residual add
                      (tensors blk.{i}.attn_post_norm / blk.{i}.ffn_post_norm)
  embed_scale_sqrt    llm.embed_scale = sqrt(d_model): the embedding rows are scaled (Gemma)
  hf_norm_offset      added to every norm weight read from HF names (Gemma stores w for a (1 + w) norm;
                      llama.cpp's GGUF already holds 1 + w)
  layer_types_key     config key of per-layer "sliding_attention" / "full_attention" names -> llm.swa_layers
                      (window from swa_window_key), and RoPE bases per layer type in rope_parameters ->
                      llm.rope_theta (full) / llm.rope_theta_swa (sliding)
  gguf_global_period  GGUF (dense): every gguf_global_period-th block (i + 1) % p == 0 is global, the others
                      slide over <arch>.attention.sliding_window (llama.cpp's Gemma 3 pattern); 0: none
  gguf_rope_theta_swa GGUF: the RoPE base of sliding blocks (llama.cpp fixes it; GGUF does not store it)
  query_scale_key     config key of the attention's query scale base (Gemma: query_pre_attn_scalar); it must
                      equal head_dim (scores are scaled by 1/sqrt(head_dim)), else the config is refused
  gguf_norm_topk      MoE: whether llama.cpp's graph for this family renormalises the top-k weights, used when
                      a GGUF has no `<arch>.expert_weights_norm` (qwen3moe, mixtral, smallthinker: true; olmoe: false)
  gguf_swa_period     MoE GGUF layout rule of llama.cpp's loader: with `<arch>.attention.sliding_window` set,
                      blocks i % period == 0 are global NoPE layers, the others RoPE + sliding window
                      (SmallThinker: 4); None: every block RoPE, no window

A TensorSpec row names a tensor in every source naming scheme (HF/torch, GGUF, ours) with its shape
in symbolic dims (d_model, vocab, d_ff, head_dim, q_dim = n_heads·head_dim, kv_dim = n_kv_heads·head_dim),
its role (what recipes key on), the minimum dtype (norms/biases: f32, never quantized), whether the
source stores it transposed, how to undo GGUF's RoPE row permutation, and whether it is the output
head that a tied model does not store.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

ROLES = ("embedding", "head", "attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down",
         "norm", "bias", "router", "router_pred")
LAYER_KINDS = (None, "dense", "moe")  # TensorSpec.layers: every block, dense-FFN blocks only, MoE blocks only


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
    layers: str | None = None        # "dense"/"moe": only in blocks whose moe.layers entry is 0/1
    hf_alt: tuple[str, ...] = ()     # other HF names of the same tensor (first present one is read)
    derived: bool = False            # computed by the converter (no source tensor), e.g. the MoE predictor

    def __post_init__(self) -> None:
        assert self.role in ROLES, self.role
        assert self.layers in LAYER_KINDS, self.layers

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.ours


@dataclass(frozen=True)
class MoeSpec:
    """The routing of one MoE family (docs/MOE.md §1) and where its config keeps each number.

    n_experts/n_used/d_expert: config keys of E, k and F (the first key present is read: transformers
    writes Qwen3-MoE's num_experts as num_local_experts, for instance). dense_ff: config key of the dense FFN width
    (llm.d_ff) when some blocks are dense (None: every block is MoE, llm.d_ff = 0).
    gating: "softmax" or "sigmoid", or softmax_flag: a config key that selects softmax when true, sigmoid
    otherwise. norm_topk: a constant, or norm_topk_key (+ its HF default when the config omits it).
    Which blocks are MoE: every block, except those listed in the config's `mlp_only_layers_key` array and
    those i with (i + 1) % step != 0, step the config's `sparse_step_key` value (Qwen-MoE's mlp_only_layers /
    decoder_sparse_step); a key left None (or absent from the config) excludes nothing.
    predictor: "router" (the router already reads the pre-attention residual) or "linear".
    """

    n_experts: tuple[str, ...]
    n_used: tuple[str, ...]
    d_expert: tuple[str, ...]
    act: str                          # "silu" (SwiGLU) or "relu" (ReGLU)
    router_input: str                 # "residual" or "ffn_norm"
    predictor: str                    # "router" or "linear"
    gating: str = "softmax"
    softmax_flag: str | None = None
    norm_topk: bool = True
    norm_topk_key: str | None = None
    norm_topk_default: bool = False
    dense_ff: str | None = None
    mlp_only_layers_key: str | None = None
    sparse_step_key: str | None = None

    def __post_init__(self) -> None:
        assert self.act in ("silu", "relu") and self.router_input in ("residual", "ffn_norm")
        assert self.predictor in ("router", "linear") and self.gating in ("softmax", "sigmoid")


@dataclass(frozen=True)
class ExpertSpec:
    """One expert matrix (gate [F, D], up [F, D] or down [D, F]) in an HF source: per-expert name `hf`
    ({i} block, {e} expert), or a fused 3-D tensor `fused` ({i}) as transformers 5 keeps them in memory:
    gate_up_proj [E, 2F, D] (gate rows first: fused_half 0 = gate, 1 = up) or down_proj [E, D, F]
    (fused_half None: the whole [D, F] slice of expert e)."""

    matrix: str
    hf: str
    fused: str | None = None
    fused_half: int | None = None

    def __post_init__(self) -> None:
        assert self.matrix in ("gate", "up", "down"), self.matrix

    @property
    def gguf(self) -> str:
        """llama.cpp's fused expert tensor of this matrix ({i} block): every expert in one [E, F, D] (gate,
        up) or [E, D, F] (down) tensor, the same name in every llama.cpp MoE family."""
        return f"blk.{{i}}.ffn_{self.matrix}_exps.weight"


class Arch:
    """Base of the architecture declarations; subclasses only set class attributes."""

    name: ClassVar[str]
    hf_names: ClassVar[tuple[str, ...]] = ()
    model_types: ClassVar[tuple[str, ...]] = ()
    gguf_arch: ClassVar[str]
    gguf_qk_permuted: ClassVar[bool] = False
    qkv_bias: ClassVar[bool] = False
    qk_norm: ClassVar[bool] = False
    norm: ClassVar[str] = "rms"                 # llm.norm
    ffn_act: ClassVar[str] = "silu"             # llm.ffn_act (the dense FFN; MoE experts: moe.act)
    rope_type: ClassVar[str] = "rotate_half"    # llm.rope_type
    default_head_dim: ClassVar[int | None] = None
    hidden_act: ClassVar[str] = "silu"
    reject_if_true: ClassVar[tuple[str, ...]] = ()
    tensors: ClassVar[tuple[TensorSpec, ...]] = ()
    ignored_sources: ClassVar[tuple[str, ...]] = ()  # regexes of source tensors that carry nothing
    qk_norm_scope: ClassVar[str] = "head"
    rope_layout_key: ClassVar[str | None] = None
    swa_layout_key: ClassVar[str | None] = None
    swa_window_key: ClassVar[str | None] = None
    swa_all_key: ClassVar[str | None] = None
    moe: ClassVar[MoeSpec | None] = None
    tie_default: ClassVar[bool | None] = None  # tie_word_embeddings when the config omits it (HF class default)
    experts: ClassVar[tuple[ExpertSpec, ...]] = ()
    hidden_act_key: ClassVar[str] = "hidden_act"
    post_norms: ClassVar[bool] = False
    embed_scale_sqrt: ClassVar[bool] = False
    hf_norm_offset: ClassVar[float] = 0.0
    layer_types_key: ClassVar[str | None] = None
    gguf_global_period: ClassVar[int] = 0
    gguf_rope_theta_swa: ClassVar[float | None] = None
    query_scale_key: ClassVar[str | None] = None
    gguf_norm_topk: ClassVar[bool] = True
    gguf_swa_period: ClassVar[int | None] = None


ARCHS: dict[str, type[Arch]] = {}  # HF architecture name -> Arch

# The values docs/FORMAT.md defines for the layout keys every file carries (Arch field -> llm.* key, values).
# A family that needs another value adds it here, in FORMAT.md and in the runtime.
LAYOUT_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "norm": ("llm.norm", ("rms",)),
    "ffn_act": ("llm.ffn_act", ("silu", "gelu_tanh")),
    "rope_type": ("llm.rope_type", ("rotate_half",)),
}


def arch_keys(arch: type[Arch]) -> dict:
    """The llm.* keys an architecture fixes whatever the checkpoint: features (llm.qkv_bias, llm.qk_norm)
    and layout (llm.norm, llm.ffn_act, llm.rope_type). Every source (HF, GGUF) writes these."""
    out = {"llm.qkv_bias": int(arch.qkv_bias), "llm.qk_norm": int(arch.qk_norm)}
    for field, (key, _) in LAYOUT_KEYS.items():
        out[key] = getattr(arch, field)
    if arch.post_norms:
        out["llm.post_norms"] = 1
    return out

# HF architectures that are known and deliberately not converted, with the reason given to the user.
UNSUPPORTED: dict[str, str] = {
    "Qwen2MoeForCausalLM": "Qwen2-MoE has shared experts (mlp.shared_expert + shared_expert_gate), which the "
                           "edgerun MoE layout (docs/MOE.md) does not implement",
    "DeepseekV2ForCausalLM": "DeepSeek-V2 has shared experts and MLA attention, which edgerun does not implement",
    "DeepseekV3ForCausalLM": "DeepSeek-V3 has shared experts and MLA attention, which edgerun does not implement",
}


def register(*hf_names: str):
    """Class decorator: register an Arch under one or more HF architecture names."""

    def deco(cls: type[Arch]) -> type[Arch]:
        for field, (key, values) in LAYOUT_KEYS.items():
            if getattr(cls, field) not in values:
                raise ValueError(f"{cls.__name__}.{field} = {getattr(cls, field)!r}: {key} is one of {values} "
                                 f"(docs/FORMAT.md)")
        cls.hf_names = tuple(hf_names)
        for n in hf_names:
            if n in ARCHS:
                raise ValueError(f"architecture {n} registered twice")
            ARCHS[n] = cls
        return cls

    return deco


def supported() -> str:
    """The HF architecture names: dense families, then "; MoE: " and the mixture-of-experts ones."""
    dense = sorted(n for n, a in ARCHS.items() if a.moe is None)
    moe = sorted(n for n, a in ARCHS.items() if a.moe is not None)
    return ", ".join(dense) + ("; MoE: " + ", ".join(moe) if moe else "")


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
    for n in names:
        if n in UNSUPPORTED:
            raise ValueError(f"unsupported architecture {n}: {UNSUPPORTED[n]}; supported: {supported()}")
    got = ", ".join(names) if names else f"model_type={mt!r}"
    raise ValueError(f"unsupported architecture {got}; supported: {supported()}")


def arch_for_gguf(gguf_arch: str, has_experts: bool = False) -> type[Arch]:
    """The family of a GGUF `general.architecture`; where an MoE and a dense family share it (llama / Mixtral),
    `has_experts` (the GGUF's `<arch>.expert_count` > 0) picks one."""
    found = [a for a in ARCHS.values() if a.gguf_arch == gguf_arch]
    for a in found:
        if (a.moe is not None) == has_experts:
            return a
    if found:
        return found[0]
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


def moe_decoder_tensors(router: str, router_alt: tuple[str, ...] = (), predictor: bool = True
                        ) -> tuple[TensorSpec, ...]:
    """The decoder table of an MoE family: the dense FFN rows only in dense blocks, the router
    `blk.{i}.ffn_router` [E, d_model] (f32: docs/MOE.md §3) in MoE blocks, and with `predictor` the
    converter-made pre-attention predictor blk.{i}.ffn_router_pred [E, d_model] + _b [E] (f32)."""
    L = "model.layers.{i}."
    out = []
    for s in decoder_tensors():
        out.append(replace(s, layers="dense") if s.role in ("ffn_gate", "ffn_up", "ffn_down") else s)
    out.append(TensorSpec("blk.{i}.ffn_router", L + router, "blk.{i}.ffn_gate_inp.weight", ("n_experts", "d_model"),
                          "router", "f32", layers="moe", hf_alt=tuple(L + a for a in router_alt)))
    if predictor:
        out.append(TensorSpec("blk.{i}.ffn_router_pred", "", "", ("n_experts", "d_model"), "router_pred", "f32",
                              layers="moe", derived=True))
        out.append(TensorSpec("blk.{i}.ffn_router_pred_b", "", "", ("n_experts",), "router_pred", "f32",
                              layers="moe", derived=True))
    return tuple(out)


def swiglu_experts(gate: str, up: str, down: str, fused_prefix: str = "mlp.experts.") -> tuple[ExpertSpec, ...]:
    """Expert rows for the transformers layout: per-expert `model.layers.{i}.<gate|up|down with {e}>` or the
    fused `model.layers.{i}.<fused_prefix>gate_up_proj` [E, 2F, D] / `down_proj` [E, D, F]."""
    L = "model.layers.{i}."
    return (ExpertSpec("gate", L + gate, L + fused_prefix + "gate_up_proj", 0),
            ExpertSpec("up", L + up, L + fused_prefix + "gate_up_proj", 1),
            ExpertSpec("down", L + down, L + fused_prefix + "down_proj", None))


HF_IGNORED = (r"(^|\.)rotary_emb\.inv_freq$",)
