"""From an architecture declaration and a source to (a) llm.* hyper-parameters and (b) the tensor plan.

hf_hparams(arch, config) -> {"llm.n_layers": ..., ...}: the llm.* keys of docs/FORMAT.md from an HF
config.json dict (tied_head is decided by plan_tensors). Raises ValueError for config features the
runtime does not implement (RoPE scaling, sliding windows, another activation, biases a family lacks).

plan_tensors(arch, hparams, source_shapes, naming, tie_config) -> (plan, tied): every tensor of the
file in write order (tok_embd, blocks 0..n-1, output_norm, output), each with its source name, role,
expected shape, and the declared transforms. Errors name the tensor and the expected vs actual shape;
source tensors that are not part of the layout are an error too (they mean a feature we would drop).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from .registry import Arch, TensorSpec


@dataclass(frozen=True)
class PlannedTensor:
    name: str                 # our name, e.g. "blk.3.attn_q"
    src: str                  # name in the source
    role: str
    shape: tuple[int, ...]    # our layout (after transpose)
    layer: int | None         # block index, None for global tensors
    min_dtype: str | None
    transpose: bool
    unpermute_heads: int | None  # un-permute GGUF RoPE rows in this many head groups (None: no)

    @property
    def n_elements(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def _req(cfg: Mapping, key: str, arch: type[Arch]) -> int:
    if cfg.get(key) is None:
        raise ValueError(f"{arch.name}: config.json has no {key!r}")
    return int(cfg[key])


def check_rope(cfg: Mapping, where: str) -> float:
    """RoPE base from either config style; only plain RoPE (no scaling, full rotary) is accepted."""
    rp = cfg.get("rope_parameters") or {}
    rs = cfg.get("rope_scaling") or {}
    rope_type = rs.get("rope_type", rs.get("type")) or rp.get("rope_type")
    if rope_type not in (None, "default"):
        raise ValueError(f"{where}: RoPE scaling {rope_type!r} is not supported (only plain RoPE; "
                         f"rope_scaling={rs or rp})")
    prf = cfg.get("partial_rotary_factor", rp.get("partial_rotary_factor", 1.0))
    if prf not in (None, 1, 1.0):
        raise ValueError(f"{where}: partial_rotary_factor={prf} is not supported (full rotary only)")
    theta = cfg.get("rope_theta", rp.get("rope_theta", 10000.0))
    return float(theta)


def hf_hparams(arch: type[Arch], cfg: Mapping) -> dict:
    where = f"{arch.name} config"
    for flag in arch.reject_if_true:
        if cfg.get(flag):
            raise ValueError(f"{where}: {flag}=true is not supported by edgerun's {arch.name} layout")
    act = cfg.get("hidden_act", arch.hidden_act)
    if act != arch.hidden_act:
        raise ValueError(f"{where}: hidden_act={act!r} is not supported (only {arch.hidden_act!r})")
    lt = cfg.get("layer_types")
    if lt and any(t != "full_attention" for t in lt):
        raise ValueError(f"{where}: layer_types {sorted(set(lt))} — only full attention is supported")
    theta = check_rope(cfg, where)
    d_model = _req(cfg, "hidden_size", arch)
    n_heads = _req(cfg, "num_attention_heads", arch)
    n_kv = int(cfg.get("num_key_value_heads") or n_heads)
    head_dim = int(cfg.get("head_dim") or arch.default_head_dim or d_model // n_heads)
    if n_heads % n_kv:
        raise ValueError(f"{where}: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}")
    return {
        "llm.n_layers": _req(cfg, "num_hidden_layers", arch),
        "llm.d_model": d_model,
        "llm.n_heads": n_heads,
        "llm.n_kv_heads": n_kv,
        "llm.head_dim": head_dim,
        "llm.d_ff": _req(cfg, "intermediate_size", arch),
        "llm.vocab_size": _req(cfg, "vocab_size", arch),
        "llm.max_ctx": int(cfg.get("max_position_embeddings") or 2048),
        "llm.rope_theta": theta,
        "llm.rms_eps": float(cfg.get("rms_norm_eps", 1e-6)),
        "llm.qkv_bias": int(arch.qkv_bias),
        "llm.qk_norm": int(arch.qk_norm),
    }


def dims(hp: Mapping) -> dict[str, int]:
    return {
        "d_model": hp["llm.d_model"],
        "vocab": hp["llm.vocab_size"],
        "d_ff": hp["llm.d_ff"],
        "head_dim": hp["llm.head_dim"],
        "q_dim": hp["llm.n_heads"] * hp["llm.head_dim"],
        "kv_dim": hp["llm.n_kv_heads"] * hp["llm.head_dim"],
    }


def _src_name(spec: TensorSpec, naming: str) -> str:
    return {"hf": spec.hf, "gguf": spec.gguf, "edge": spec.ours}[naming]


def plan_tensors(arch: type[Arch], hp: Mapping, source_shapes: Mapping[str, tuple[int, ...]], naming: str,
                 tie_config: bool | None) -> tuple[list[PlannedTensor], bool]:
    """The write plan. tie_config: the config's tie_word_embeddings (None when it does not say)."""
    d = dims(hp)
    n_layers = hp["llm.n_layers"]
    head_spec = next(s for s in arch.tensors if s.tied_head)
    head_present = _src_name(head_spec, naming) in source_shapes
    tied = bool(tie_config) or not head_present

    globals_first, layers, globals_last = [], [], []
    for spec in arch.tensors:
        if spec.tied_head and tied:
            continue
        unperm = None
        if naming == "gguf" and arch.gguf_qk_permuted and spec.gguf_unpermute:
            unperm = hp["llm." + spec.gguf_unpermute]
        shape = tuple(d[s] for s in spec.shape)
        for i in (range(n_layers) if spec.per_layer else [None]):
            fmt = (lambda s: s.replace("{i}", str(i))) if i is not None else (lambda s: s)
            pt = PlannedTensor(fmt(spec.ours), fmt(_src_name(spec, naming)), spec.role, shape, i, spec.min_dtype,
                               spec.transpose, unperm)
            if i is not None:
                layers.append(pt)
            elif spec.role == "embedding":
                globals_first.append(pt)
            else:
                globals_last.append(pt)
    layers.sort(key=lambda p: p.layer)  # stable: table order within a block
    plan = globals_first + layers + globals_last

    for p in plan:
        if p.src not in source_shapes:
            raise ValueError(f"missing tensor {p.name} (source name {p.src!r}, expected shape {p.shape})")
        got = tuple(int(s) for s in source_shapes[p.src])
        want = tuple(reversed(p.shape)) if p.transpose else p.shape
        if got != want:
            raise ValueError(f"tensor {p.name} (source {p.src!r}): expected shape {want}, got {got}")
        if p.unpermute_heads and p.shape[0] % (2 * p.unpermute_heads):
            raise ValueError(f"tensor {p.name}: {p.shape[0]} rows do not split into {p.unpermute_heads} RoPE heads")

    used = {p.src for p in plan}
    if tied:
        used.add(_src_name(head_spec, naming))  # a stored copy of a tied head carries nothing new
    ignored = [re.compile(r) for r in arch.ignored_sources]
    extra = sorted(n for n in source_shapes if n not in used and not any(r.search(n) for r in ignored))
    if extra:
        more = f" (+{len(extra) - 8} more)" if len(extra) > 8 else ""
        raise ValueError(f"{len(extra)} source tensors are not part of the {arch.name} layout and would be "
                         f"dropped: {', '.join(extra[:8])}{more}")
    return plan, tied
