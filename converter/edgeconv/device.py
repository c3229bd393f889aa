"""`edgeconv export --device NAME [--mem SIZE] [--ctx N]`: choose the recipe for a board profile, and say why.

    choice = choose_recipe("model_dir", get_profile("rpi5"), mem="1GB")
    choice.recipe            -> "q8"
    choice.lines()           -> the table of candidates and the reason, for stderr

The rule, in order:
  1. The budget is --mem (the same hard budget `edgerun --mem` enforces) or else the board's smallest RAM
     option less the OS reserve of its profile. A recipe *fits* when weights + KV cache + scratch, computed
     exactly as the runtime's memory plan (runtime_memory, a mirror of csrc/model.cpp) for ctx tokens
     (--ctx, default min(trained context, 4096)) and one thread per core, is within the budget.
  2. Candidates are the profile's `recipes` (preferred first: q8 where integer dot products are cheap,
     int4 first where they are not or where only scalar kernels exist). The choice is the first candidate
     that fits and whose every weight dtype has a SIMD kernel at the board's kernel level (`fast_dtypes`);
     if none has, the first that fits (with a warning naming the scalar dtypes); if none fits, an error that
     gives the largest context that would fit the smallest candidate.
  3. An explicit --quant is kept: it is checked the same way; not fitting is an error (the runtime would
     refuse the file), a dtype without a SIMD kernel is a warning.
Sizes are computed from the source's shapes and the recipe's dtype assignment (recipes.assign_dtypes), so
nothing is quantized to decide. Profiles come from edgerun.device (devices/profiles/*.toml).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from edgerun.device import Profile
from edgerun.sizes import parse_size

from .format import F64, HEADER_SIZE, MIN_ALIGNMENT, TensorInfo, encode_metadata, encode_table, tensor_nbytes
from .recipes import assign_dtypes, file_size, get_recipe, parse_overrides

BATCH = 128            # the runtime's default prefill batch (Model(batch=128))
DEFAULT_CTX_CAP = 4096  # the runtime's default context: min(trained, 4096)
Q8X_BYTES = 40         # sizeof(block_q8x), csrc/quant.h
KTILE = 16             # kKTile, csrc/kernels/kernels.h: K cache positions per transposed tile


KV_ELEMENT_BYTES = {"f32": 4, "f16": 2}  # the runtime's --kv forms without scales (its default: f16 on the CPU)


def runtime_memory(hp: Mapping, weight_bytes: int, ctx: int, threads: int, batch: int = BATCH,
                   kv: str = "f16") -> dict[str, int]:
    """The runtime's memory plan (csrc/model_load.cpp, Model::plan_buffers) for a dense decoder: bytes of
    resident weights (sum of tensor nbytes), kv_cache (K in 16-position tiles + V for ctx positions, elements
    of `kv`: f16 = the CPU default, f32) and scratch. tests/test_devices.py checks it against the C++ plan."""
    d, dff, vocab, hd = hp["llm.d_model"], hp["llm.d_ff"], hp["llm.vocab_size"], hp["llm.head_dim"]
    dq = hp["llm.n_heads"] * hd
    dkv = hp["llm.n_kv_heads"] * hd
    t = max(1, min(batch, ctx))
    maxw = max(d, dff, dq)
    ktile_head = (ctx + KTILE - 1) // KTILE * KTILE * hd
    scratch_floats = t * (2 * d + dq + 2 * dkv + dq + 2 * dff + hd) + hd // 2 + threads * ctx + vocab
    return {"resident": int(weight_bytes),
            "kv_cache": hp["llm.n_layers"] * (ktile_head * hp["llm.n_kv_heads"] + ctx * dkv) * KV_ELEMENT_BYTES[kv],
            "scratch": scratch_floats * 4 + t * ((maxw + 31) // 32) * Q8X_BYTES}


@dataclass
class SourcePlan:
    """What the exporter would write, without loading a weight: tensor plan, llm.* keys, metadata."""
    plan: list
    hp: dict
    meta: list
    n_layers: int
    stored: dict = field(default_factory=dict)  # export.stored_dtypes: tensors a keep recipe copies


def plan_source(src_path: str, tokenizer_pre: str | None = None) -> SourcePlan:
    from .archs import plan_tensors
    from .export import _metadata, stored_dtypes
    from .sources import open_source

    with open_source(src_path, tokenizer_pre) as src:
        hp = dict(src.hparams)
        plan, tied = plan_tensors(src.arch, hp, src.shapes, src.naming, src.tie_config)
        hp["llm.tied_head"] = int(tied)
        meta = _metadata(src, hp, "recipe", None)
        stored = stored_dtypes(src, plan)[0]
    return SourcePlan(plan, hp, meta, hp["llm.n_layers"], stored)


def plan_config(config: Mapping) -> SourcePlan:
    """SourcePlan of a Hugging Face config.json dict alone (shapes as the architecture declares them; no
    tokenizer, so the metadata is smaller than a real file's): for sizing models we do not have."""
    from .archs import arch_for_hf, hf_hparams, plan_tensors
    from .archs.plan import dims

    arch = arch_for_hf(dict(config))
    hp = hf_hparams(arch, config)
    d = dims(hp)
    shapes = {}
    for spec in arch.tensors:
        if spec.tied_head and config.get("tie_word_embeddings"):
            continue
        shape = tuple(d[x] for x in spec.shape)
        shape = tuple(reversed(shape)) if spec.transpose else shape
        for i in (range(hp["llm.n_layers"]) if spec.per_layer else [None]):
            shapes[spec.ours.replace("{i}", str(i)) if i is not None else spec.ours] = shape
    plan, tied = plan_tensors(arch, hp, shapes, "edge", config.get("tie_word_embeddings"))
    hp["llm.tied_head"] = int(tied)
    meta = [("general.architecture", 2, arch.name), ("quant.recipe", 2, "recipe")]
    return SourcePlan(plan, hp, meta, hp["llm.n_layers"])


def recipe_tensors(sp: SourcePlan, recipe: str, tensor_types: Sequence[str] = (),
                   alignment: int = MIN_ALIGNMENT) -> list[dict]:
    """[{name, dtype, shape, nbytes}] of the file `recipe` would write for `sp` (as edgerun._core.file_info)."""
    dtypes = _dtypes(sp, recipe, parse_overrides(list(tensor_types)), alignment)[0]
    return [{"name": p.name, "dtype": dtypes[p.name], "shape": list(p.shape),
             "nbytes": tensor_nbytes(dtypes[p.name], p.shape)} for p in sp.plan]


def _dtypes(sp: SourcePlan, recipe: str, overrides, alignment: int) -> tuple[dict[str, str], int]:
    """(dtype per tensor, fixed header+metadata+table bytes) for a recipe."""
    meta = [(k, t, recipe if k == "quant.recipe" else v) for k, t, v in sp.meta]
    fixed = (HEADER_SIZE + len(encode_metadata(meta + [("quant.bits_per_weight", F64, 0.0)]))
             + len(encode_table([TensorInfo(p.name, "f32", p.shape) for p in sp.plan])))
    return assign_dtypes(sp.plan, get_recipe(recipe), overrides, sp.n_layers, fixed, alignment, sp.stored), fixed


@dataclass
class Candidate:
    recipe: str
    file_bytes: int
    memory: dict[str, int]
    dtypes: dict[str, int]          # weight dtype -> tensor count (2-D tensors)
    slow: list[str]                 # weight dtypes without a SIMD kernel at the board's level
    fits: bool

    @property
    def need(self) -> int:
        return sum(self.memory.values())


@dataclass
class Choice:
    recipe: str
    profile: Profile
    budget: int
    budget_what: str
    ctx: int
    threads: int
    candidates: list[Candidate]
    reason: str
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        p = self.profile
        out = [f"device {p.name} ({p.board}; kernels {p.kernel_level}): budget {self.budget / 1e6:.0f} MB "
               f"({self.budget_what}), ctx {self.ctx}, {self.threads} threads"]
        for c in self.candidates:
            m = c.memory
            kinds = ("scalar reference kernels only" if not p.fast_dtypes else "no SIMD kernel for " + ", ".join(c.slow)
                     if c.slow else f"{p.kernel_level} kernels for all types")
            out.append(f"  {c.recipe:6s} weights {m['resident'] / 1e6:8.1f} + KV {m['kv_cache'] / 1e6:7.1f} + scratch "
                       f"{m['scratch'] / 1e6:5.1f} = {c.need / 1e6:8.1f} MB  {'fits' if c.fits else 'too big':7s} {kinds}")
        out.append(f"chose {self.recipe}: {self.reason}")
        out += [f"warning: {w}" for w in self.warnings]
        return out


def _candidate(sp: SourcePlan, recipe: str, overrides, ctx: int, threads: int, budget: int, profile: Profile,
               alignment: int) -> Candidate:
    dtypes, fixed = _dtypes(sp, recipe, overrides, alignment)
    weights = sum(tensor_nbytes(dtypes[p.name], p.shape) for p in sp.plan)
    mem = runtime_memory(sp.hp, weights, ctx, threads)
    counts = Counter(dtypes[p.name] for p in sp.plan if len(p.shape) > 1)
    slow = [d for d in counts if profile.fast_dtypes and d not in profile.fast_dtypes]
    return Candidate(recipe, file_size(sp.plan, dtypes, fixed, alignment), mem, dict(counts.most_common()), slow,
                     sum(mem.values()) <= budget)


def _max_ctx(sp: SourcePlan, c: Candidate, threads: int, budget: int, hi: int) -> int:
    """Largest context <= hi for which candidate c's memory plan fits the budget (0 if none)."""
    lo, best = 1, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if sum(runtime_memory(sp.hp, c.memory["resident"], mid, threads).values()) <= budget:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def choose_recipe(src: str | SourcePlan, profile: Profile, mem: str | int | None = None, ctx: int | None = None,
                  quant: str | None = None, tensor_types: Sequence[str] = (), ram_gb: float | None = None,
                  tokenizer_pre: str | None = None, alignment: int = MIN_ALIGNMENT) -> Choice:
    """The recipe for `src` (a checkpoint path or a SourcePlan) on `profile`; ValueError when nothing fits or
    an explicit `quant` does not fit (the message lists what would)."""
    sp = src if isinstance(src, SourcePlan) else plan_source(src, tokenizer_pre)
    overrides = parse_overrides(list(tensor_types))
    if mem:
        budget, what = parse_size(mem), f"--mem {mem}"
    else:
        ram = min(profile.ram_gb) if ram_gb is None else ram_gb
        budget = profile.budget_bytes(ram)
        what = f"{ram:g} GB RAM less {profile.os_reserve_mb:.0f} MB OS reserve; --mem to set it"
    ctx = ctx or min(sp.hp["llm.max_ctx"], DEFAULT_CTX_CAP)
    if ctx < 1:
        raise ValueError(f"--ctx must be positive, got {ctx}")
    threads = profile.cores
    names = [quant] if quant else list(profile.recipes)
    cands = [_candidate(sp, r, overrides, ctx, threads, budget, profile, alignment) for r in names]
    choice = Choice("", profile, budget, what, ctx, threads, cands, "")
    level = profile.kernel_level
    if quant:
        c = cands[0]
        if not c.fits:
            others = [_candidate(sp, r, overrides, ctx, threads, budget, profile, alignment)
                      for r in profile.recipes if r != quant]
            fit = [f"{o.recipe} ({o.need / 1e6:.0f} MB)" for o in others if o.fits]
            raise ValueError(f"--quant {quant} needs {c.need / 1e6:.0f} MB on {profile.name} (weights "
                             f"{c.memory['resident'] / 1e6:.0f} + KV {c.memory['kv_cache'] / 1e6:.0f} for ctx {ctx} + "
                             f"scratch {c.memory['scratch'] / 1e6:.0f}) but the budget is {budget / 1e6:.0f} MB ({what}). "
                             + (f"Recipes that fit: {', '.join(fit)}; drop --quant to let --device choose. "
                                if fit else "No recipe of this profile fits. ")
                             + f"A context of {_max_ctx(sp, c, threads, budget, ctx)} would fit --quant {quant} (--ctx).")
        choice.recipe = quant
        choice.reason = f"--quant {quant} given; it fits the {profile.name} budget"
        if not profile.fast_dtypes:
            choice.warnings.append(f"{profile.name} runs the scalar reference kernels ({level}) for every type")
        if c.slow:
            choice.warnings.append(f"--quant {quant}: {profile.name} ({level}) has no SIMD kernel for "
                                   f"{', '.join(c.slow)}: those matmuls run the scalar reference")
        return choice
    if not profile.fast_dtypes:
        choice.warnings.append(f"{profile.name} runs the scalar reference kernels ({level}) for every type")
    fast = [c for c in cands if c.fits and not c.slow]
    if fast:
        c = fast[0]
        skipped = [f"{o.recipe} ({'too big' if not o.fits else 'no SIMD kernel for ' + ', '.join(o.slow)})"
                   for o in cands[:cands.index(c)]]
        choice.recipe = c.recipe
        choice.reason = (f"the first of {profile.name}'s recipes ({', '.join(profile.recipes)}) that fits"
                         + (f" and has {level} kernels for every weight type" if profile.fast_dtypes else "")
                         + (f"; skipped {', '.join(skipped)}" if skipped else ""))
        return choice
    fitting = [c for c in cands if c.fits]
    if fitting:
        c = fitting[0]
        choice.recipe = c.recipe
        choice.reason = f"no recipe with {level} kernels for every type fits; {c.recipe} is the first that fits"
        choice.warnings.append(f"{c.recipe}: no SIMD kernel at {level} for {', '.join(c.slow)} (scalar reference)")
        return choice
    small = min(cands, key=lambda c: c.memory["resident"])
    n = _max_ctx(sp, small, threads, budget, ctx)
    raise ValueError(f"no recipe fits {profile.name} within {budget / 1e6:.0f} MB ({what}): the smallest, "
                     f"{small.recipe}, needs {small.need / 1e6:.0f} MB at ctx {ctx}"
                     + (f"; it fits with --ctx {n}" if n else "; its weights alone exceed the budget")
                     + " (or pass a larger --mem / a board with more RAM)")


def cli_choose(src: str, device: str | None, mem: str | None, ctx: int | None, quant: str | None,
               tensor_types: Sequence[str] = (), tokenizer_pre: str | None = None, alignment: int = MIN_ALIGNMENT,
               log=print) -> str:
    """edgeconv export's --device/--mem/--ctx: the recipe to export with; the decision goes to `log`."""
    if not device:
        raise ValueError("--mem and --ctx choose a recipe for a board: add --device NAME "
                         "(devices/profiles/*.toml; e.g. rpi5, spacemit-k1)")
    from edgerun.device import get_profile

    choice = choose_recipe(src, get_profile(device), mem=mem, ctx=ctx, quant=quant, tensor_types=tensor_types,
                           tokenizer_pre=tokenizer_pre, alignment=alignment)
    for line in choice.lines():
        log(line)
    return choice.recipe
