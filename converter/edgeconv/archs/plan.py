"""From an architecture declaration and a source to (a) llm.* hyper-parameters and (b) the tensor plan.

hf_hparams(arch, config) -> {"llm.n_layers": ..., ...}: the llm.* keys of docs/FORMAT.md from an HF
config.json dict (tied_head is decided by plan_tensors). Raises ValueError for config features the
runtime does not implement (RoPE scaling, sliding windows, another activation, biases a family lacks).

plan_tensors(arch, hparams, source_shapes, naming, tie_config) -> (plan, tied): every tensor of the
file in write order (tok_embd, blocks 0..n-1, output_norm, output), each with its source name, role,
expected shape, and the declared transforms. Errors name the tensor and the expected vs actual shape;
source tensors that are not part of the layout are an error too (they mean a feature we would drop).

MoE families (arch.moe, docs/MOE.md): hf_hparams adds the moe.* routing keys and llm.rope_layers /
llm.swa_layers / llm.swa_window / llm.qk_norm_scope where the family has them; plan_tensors plans the
dense FFN rows only for dense blocks and the router (+ the converter-derived predictor, src "") only for
MoE blocks; plan_experts(arch, hp, source_shapes, naming) -> [PlannedExpert] gives, per (MoE block,
expert), where gate [F, D], up [F, D] and down [D, F] are in the source: their own tensors, or slices of
fused [E, 2F, D] / [E, D, F] tensors. A missing expert matrix is an error naming block, expert, matrix.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from .registry import Arch, TensorSpec, arch_keys


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
    derived: bool = False        # computed by the converter (src is ""), e.g. the MoE predictor
    offset: float = 0.0          # added to the source values (Gemma's (1 + w) norms read from HF names)

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


def _first(cfg: Mapping, keys: tuple[str, ...], arch: type[Arch]) -> int:
    for k in keys:
        if cfg.get(k) is not None:
            return int(cfg[k])
    raise ValueError(f"{arch.name}: config.json has none of {', '.join(repr(k) for k in keys)}")


def _layer_flags(cfg: Mapping, key: str, n_layers: int, where: str) -> list[int]:
    v = cfg[key]
    if not isinstance(v, (list, tuple)) or len(v) != n_layers or any(int(x) not in (0, 1) for x in v):
        raise ValueError(f"{where}: {key} must be a list of {n_layers} zeros and ones, got {v!r}")
    return [int(x) for x in v]


def layout_hparams(arch: type[Arch], cfg: Mapping, n_layers: int, where: str) -> dict:
    """llm.rope_layers / llm.swa_layers / llm.swa_window / llm.qk_norm_scope where they differ from the
    defaults (all RoPE, no sliding window, per-head q/k norm); {} for the dense families."""
    out: dict = {}
    rope = [1] * n_layers
    swa = [0] * n_layers
    window = 0
    if arch.rope_layout_key and cfg.get(arch.rope_layout_key) is not None:
        rope = _layer_flags(cfg, arch.rope_layout_key, n_layers, where)
    if arch.swa_layout_key and cfg.get(arch.swa_layout_key) is not None:
        swa = _layer_flags(cfg, arch.swa_layout_key, n_layers, where)
        if any(swa):
            window = _first(cfg, (arch.swa_window_key,), arch)
    if arch.swa_all_key and cfg.get(arch.swa_all_key):
        swa, window = [1] * n_layers, int(cfg[arch.swa_all_key])
    if not all(rope):
        out["llm.rope_layers"] = rope
    if any(swa):
        if window < 1:
            raise ValueError(f"{where}: sliding window {window} must be >= 1")
        out["llm.swa_layers"] = swa
        out["llm.swa_window"] = window
    if arch.qk_norm and arch.qk_norm_scope != "head":
        out["llm.qk_norm_scope"] = arch.qk_norm_scope
    return out


def layer_type_hparams(arch: type[Arch], cfg: Mapping, n_layers: int, theta_swa: float, where: str) -> dict:
    """llm.swa_layers / llm.swa_window / llm.rope_theta_swa from per-layer attention type names (Gemma 3)."""
    lt = cfg.get(arch.layer_types_key)
    if not lt:
        return {}
    if len(lt) != n_layers or any(t not in ("sliding_attention", "full_attention") for t in lt):
        raise ValueError(f"{where}: {arch.layer_types_key} must name sliding_attention / full_attention for each "
                         f"of the {n_layers} layers, got {lt}")
    swa = [int(t == "sliding_attention") for t in lt]
    if not any(swa):
        return {}
    window = _first(cfg, (arch.swa_window_key,), arch)
    if window < 1:
        raise ValueError(f"{where}: sliding window {window} must be >= 1")
    return {"llm.swa_layers": swa, "llm.swa_window": window, "llm.rope_theta_swa": float(theta_swa)}


def moe_hparams(arch: type[Arch], cfg: Mapping, n_layers: int, where: str) -> dict:
    """The moe.* routing keys of docs/MOE.md §2 (variants, plan and recall are the exporter's) and llm.d_ff."""
    m = arch.moe
    E, k, F = _first(cfg, m.n_experts, arch), _first(cfg, m.n_used, arch), _first(cfg, m.d_expert, arch)
    if E < 1 or not 1 <= k <= E or F < 1:
        raise ValueError(f"{where}: needs 1 <= experts per token ({k}) <= experts ({E}) and an expert width "
                         f"F >= 1 (got {F})")
    gating = m.gating if m.softmax_flag is None else ("softmax" if cfg.get(m.softmax_flag) else "sigmoid")
    norm = m.norm_topk if m.norm_topk_key is None else bool(cfg.get(m.norm_topk_key, m.norm_topk_default))
    only = (cfg.get(m.mlp_only_layers_key) if m.mlp_only_layers_key else None) or []
    step = int((cfg.get(m.sparse_step_key) if m.sparse_step_key else None) or 1)
    if any(not 0 <= int(i) < n_layers for i in only) or step < 1:
        raise ValueError(f"{where}: {m.mlp_only_layers_key} {only} / {m.sparse_step_key} {step} do not fit "
                         f"{n_layers} layers")
    dense = {int(j) for j in only}
    layers = [int(i not in dense and (i + 1) % step == 0) for i in range(n_layers)]
    if not any(layers):
        raise ValueError(f"{where}: no block is MoE ({m.mlp_only_layers_key} / {m.sparse_step_key}); export it as "
                         f"the dense family instead")
    d_ff = 0
    if not all(layers):
        if m.dense_ff is None:
            raise ValueError(f"{where}: dense blocks need a dense FFN width, which {arch.name} does not declare")
        d_ff = _first(cfg, (m.dense_ff,), arch)
    return {"llm.d_ff": d_ff, "moe.n_experts": E, "moe.n_experts_used": k, "moe.d_expert": F,
            "moe.gating": gating, "moe.norm_topk": int(norm), "moe.act": m.act,
            "moe.router_input": m.router_input, "moe.layers": layers, "moe.predictor": m.predictor}


def hf_hparams(arch: type[Arch], cfg: Mapping) -> dict:
    where = f"{arch.name} config"
    for flag in arch.reject_if_true:
        if cfg.get(flag):
            raise ValueError(f"{where}: {flag}=true is not supported by edgerun's {arch.name} layout")
    act = cfg.get(arch.hidden_act_key, arch.hidden_act)
    if act != arch.hidden_act:
        raise ValueError(f"{where}: {arch.hidden_act_key}={act!r} is not supported (only {arch.hidden_act!r})")
    lt = cfg.get("layer_types")
    if lt and not arch.layer_types_key and any(t != "full_attention" for t in lt):
        raise ValueError(f"{where}: layer_types {sorted(set(lt))} — only full attention is supported")
    rope_by_type = arch.layer_types_key and isinstance((cfg.get("rope_parameters") or {}).get("full_attention"), dict)
    if rope_by_type:  # transformers 5: one RoPE entry per layer type
        rp = cfg["rope_parameters"]
        theta = check_rope({"rope_parameters": rp["full_attention"]}, where)
        theta_swa = check_rope({"rope_parameters": rp.get("sliding_attention") or rp["full_attention"]}, where)
    else:
        theta = check_rope(cfg, where)
        theta_swa = float(cfg.get("rope_local_base_freq") or theta)
    d_model = _req(cfg, "hidden_size", arch)
    n_heads = _req(cfg, "num_attention_heads", arch)
    n_kv = int(cfg.get("num_key_value_heads") or n_heads)
    head_dim = int(cfg.get("head_dim") or arch.default_head_dim or d_model // n_heads)
    if arch.query_scale_key and cfg.get(arch.query_scale_key) not in (None, head_dim):
        raise ValueError(f"{where}: {arch.query_scale_key}={cfg[arch.query_scale_key]} differs from head_dim "
                         f"{head_dim}; edgerun scales attention scores by 1/sqrt(head_dim) only")
    if n_heads % n_kv:
        raise ValueError(f"{where}: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}")
    n_layers = _req(cfg, "num_hidden_layers", arch)
    hp = {
        "llm.n_layers": n_layers,
        "llm.d_model": d_model,
        "llm.n_heads": n_heads,
        "llm.n_kv_heads": n_kv,
        "llm.head_dim": head_dim,
        "llm.d_ff": 0 if arch.moe else _req(cfg, "intermediate_size", arch),
        "llm.vocab_size": _req(cfg, "vocab_size", arch),
        "llm.max_ctx": int(cfg.get("max_position_embeddings") or 2048),
        "llm.rope_theta": theta,
        "llm.rms_eps": float(cfg.get("rms_norm_eps", 1e-6)),
        **arch_keys(arch),
    }
    hp.update(layout_hparams(arch, cfg, n_layers, where))
    if arch.layer_types_key:
        hp.update(layer_type_hparams(arch, cfg, n_layers, theta_swa, where))
    if arch.embed_scale_sqrt:
        hp["llm.embed_scale"] = math.sqrt(d_model)
    if arch.moe:
        hp.update(moe_hparams(arch, cfg, n_layers, where))
    return hp


def dims(hp: Mapping) -> dict[str, int]:
    return {
        "d_model": hp["llm.d_model"],
        "vocab": hp["llm.vocab_size"],
        "d_ff": hp["llm.d_ff"],
        "head_dim": hp["llm.head_dim"],
        "q_dim": hp["llm.n_heads"] * hp["llm.head_dim"],
        "kv_dim": hp["llm.n_kv_heads"] * hp["llm.head_dim"],
        "n_experts": hp.get("moe.n_experts", 0),
    }


def _src_name(spec: TensorSpec, naming: str) -> str:
    return {"hf": spec.hf, "gguf": spec.gguf, "edge": spec.ours}[naming]


def _pick_src(spec: TensorSpec, naming: str, fmt, source_shapes: Mapping) -> str:
    """The source name of a table row in one block: the first of hf / hf_alt present (HF naming)."""
    if spec.derived:
        return ""
    name = fmt(_src_name(spec, naming))
    if naming == "hf" and name not in source_shapes:
        for alt in spec.hf_alt:
            if fmt(alt) in source_shapes:
                return fmt(alt)
    return name


def _in_block(spec: TensorSpec, moe_layers, i: int | None) -> bool:
    if spec.layers is None or i is None:
        return True
    return (moe_layers[i] == 1) == (spec.layers == "moe")


def plan_tensors(arch: type[Arch], hp: Mapping, source_shapes: Mapping[str, tuple[int, ...]], naming: str,
                 tie_config: bool | None) -> tuple[list[PlannedTensor], bool]:
    """The write plan. tie_config: the config's tie_word_embeddings (None when it does not say)."""
    d = dims(hp)
    n_layers = hp["llm.n_layers"]
    moe_layers = hp.get("moe.layers")
    if arch.moe and naming not in ("hf", "gguf"):
        raise ValueError(f"{arch.name}: MoE checkpoints are read from Hugging Face or GGUF names (an HF folder, a GGUF, "
                         f"or a .pt state dict with HF names); {naming} naming is not supported for experts")
    if tie_config is None:
        tie_config = arch.tie_default
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
            if not _in_block(spec, moe_layers, i):
                continue
            fmt = (lambda s: s.replace("{i}", str(i))) if i is not None else (lambda s: s)
            offset = arch.hf_norm_offset if naming == "hf" and spec.role == "norm" else 0.0
            pt = PlannedTensor(fmt(spec.ours), _pick_src(spec, naming, fmt, source_shapes), spec.role, shape, i,
                               spec.min_dtype, spec.transpose, unperm, spec.derived, offset)
            if i is not None:
                layers.append(pt)
            elif spec.role == "embedding":
                globals_first.append(pt)
            else:
                globals_last.append(pt)
    layers.sort(key=lambda p: p.layer)  # stable: table order within a block
    plan = globals_first + layers + globals_last

    for p in plan:
        if p.derived:
            continue
        if p.src not in source_shapes:
            raise ValueError(f"missing tensor {p.name} (source name {p.src!r}, expected shape {p.shape})")
        got = tuple(int(s) for s in source_shapes[p.src])
        want = tuple(reversed(p.shape)) if p.transpose else p.shape
        if got != want:
            raise ValueError(f"tensor {p.name} (source {p.src!r}): expected shape {want}, got {got}")
        if p.unpermute_heads and p.shape[0] % (2 * p.unpermute_heads):
            raise ValueError(f"tensor {p.name}: {p.shape[0]} rows do not split into {p.unpermute_heads} RoPE heads")

    used = {p.src for p in plan if not p.derived}
    if arch.moe:
        used |= {part.src for e in plan_experts(arch, hp, source_shapes, naming) for part in e.parts}
    if tied:
        used.add(_src_name(head_spec, naming))  # a stored copy of a tied head carries nothing new
    ignored = [re.compile(r) for r in arch.ignored_sources]
    extra = sorted(n for n in source_shapes if n not in used and not any(r.search(n) for r in ignored))
    if extra:
        more = f" (+{len(extra) - 8} more)" if len(extra) > 8 else ""
        raise ValueError(f"{len(extra)} source tensors are not part of the {arch.name} layout and would be "
                         f"dropped: {', '.join(extra[:8])}{more}")
    return plan, tied


@dataclass(frozen=True)
class ExpertPart:
    """One expert matrix in the source: tensor `src`, or (index set) expert `index` of a fused 3-D tensor,
    rows `rows` of that expert's slice (None: all of it)."""
    matrix: str                      # gate | up | down
    src: str
    shape: tuple[int, int]           # ours: gate/up [F, D], down [D, F]
    index: int | None = None
    rows: tuple[int, int] | None = None


@dataclass(frozen=True)
class PlannedExpert:
    layer: int
    expert: int
    parts: tuple[ExpertPart, ExpertPart, ExpertPart]  # gate, up, down

    def blob_name(self, blob: str) -> str:
        return f"blk.{self.layer}.exp.{self.expert}.{blob}"

    @property
    def n_elements(self) -> int:
        return sum(p.shape[0] * p.shape[1] for p in self.parts)


def plan_experts(arch: type[Arch], hp: Mapping, source_shapes: Mapping[str, tuple[int, ...]],
                 naming: str) -> list[PlannedExpert]:
    """Every expert of every MoE block, in file order (block, then expert), with its sources checked."""
    if not arch.moe:
        return []
    E, F, D = hp["moe.n_experts"], hp["moe.d_expert"], hp["llm.d_model"]
    want = {"gate": (F, D), "up": (F, D), "down": (D, F)}
    specs = {s.matrix: s for s in arch.experts}
    assert set(specs) == set(want), arch.name
    out = []
    for i, is_moe in enumerate(hp["moe.layers"]):
        if not is_moe:
            continue
        if naming == "gguf":
            out += _gguf_experts(specs, i, E, want, source_shapes)
            continue
        for e in range(E):
            parts = []
            for m in ("gate", "up", "down"):
                s = specs[m]
                per = s.hf.replace("{i}", str(i)).replace("{e}", str(e))
                fused = s.fused.replace("{i}", str(i)) if s.fused else None
                if per in source_shapes:
                    got = tuple(int(x) for x in source_shapes[per])
                    if got != want[m]:
                        raise ValueError(f"expert tensor {per!r} (block {i}, expert {e}, {m}): expected shape "
                                         f"{want[m]}, got {got}")
                    parts.append(ExpertPart(m, per, want[m]))
                elif fused and fused in source_shapes:
                    got = tuple(int(x) for x in source_shapes[fused])
                    full = (E, 2 * F, D) if s.fused_half is not None else (E, D, F)
                    if got != full:
                        raise ValueError(f"fused expert tensor {fused!r} (block {i}): expected shape {full} "
                                         f"([experts, 2F, D] for gate_up, [experts, D, F] for down), got {got}")
                    rows = None if s.fused_half is None else (s.fused_half * F, (s.fused_half + 1) * F)
                    parts.append(ExpertPart(m, fused, want[m], e, rows))
                else:
                    alt = f" nor the fused {fused!r}" if fused else ""
                    raise ValueError(f"missing expert tensor: block {i}, expert {e}, {m} {want[m]}: neither "
                                     f"{per!r}{alt} is in the source")
            out.append(PlannedExpert(i, e, tuple(parts)))
    return out


def _gguf_experts(specs, i: int, E: int, want: dict, source_shapes: Mapping) -> list[PlannedExpert]:
    """Block i's experts in llama.cpp's layout: expert e of the fused blk.i.ffn_{gate,up,down}_exps tensors
    ([E, F, D] / [E, D, F], numpy order), one slice each."""
    parts = {}
    for m in ("gate", "up", "down"):
        name = specs[m].gguf.replace("{i}", str(i))
        if name not in source_shapes:
            raise ValueError(f"missing expert tensor: block {i}, {m}: {name!r} ([{E}, {want[m][0]}, {want[m][1]}]) "
                             "is not in the GGUF")
        got = tuple(int(x) for x in source_shapes[name])
        if got != (E,) + want[m]:
            raise ValueError(f"fused expert tensor {name!r} (block {i}): expected shape {(E,) + want[m]}, got {got}")
        parts[m] = name
    return [PlannedExpert(i, e, tuple(ExpertPart(m, parts[m], want[m], e) for m in ("gate", "up", "down")))
            for e in range(E)]
