"""Quantization recipes: which dtype each tensor of the plan gets.

A Recipe maps tensor roles to a dtype (`default` for every matmul weight, `by_role` exceptions). Then:
  0. an export that runs GPTQ (the CLI's calibrated default of --quant int4; export(gptq=True)) uses the recipe
     named by `gptq_mix` instead, when there is one: int4 -> int4g (--no-calib, --no-gptq and export() without
     gptq keep int4's dtypes: the fast round-to-nearest path is unchanged; export(gptq_mix=False) keeps them
     under GPTQ too); `refine_scales` then re-fits the block scales after GPTQ;
  1. 1-D tensors and tensors with min_dtype "f32" (norms, biases) are always f32;
  1b. a recipe with keep_source ("keep", "keep:RECIPE") gives every tensor that the source stores already
     quantized in a block type an .edge dtype holds exactly (`stored`: GGUF Q4_0 -> int4_32, Q4_1 ->
     int4a_32, Q8_0 -> q8_0; sources/base.py stored_dtype) that dtype; such tensors are never upgraded.
     The others (K-quants, and weights stored as F32/F16/BF16, which are not quantized yet) get the
     recipe's dtypes ("keep" = q8's, "keep:int4" = int4's, ...);
  2. user overrides `REGEX=dtype` (like llama-quantize --tensor-type) win; the first regex that
     re.search-es the tensor's .edge name applies;
  3. a dtype whose block does not divide the row length falls back along FALLBACK
     (int4_128 -> int4_64 -> int4_32 -> q8_0 -> f16, mx* -> f16, ...);
  3b. `choose` (export.py, after calibration): a tensor whose dtype is one of the recipe's `choose`
     candidates (all of equal bytes per block, so the file size is unchanged) gets the candidate whose
     reconstruction error, weighted by the calibration importance when there is one, is least
     (quant/choose.py). Overridden and exactly copied tensors keep theirs;
  4. `upgrades` are then tried in order, one tensor at a time: a tensor moves to the upgrade's dtype only
     if the whole file (header, metadata, table, padding, all tensors) stays within `budget_bpw`
     bits per weight. Overridden tensors are never upgraded.

Under every recipe, a tensor whose chosen dtype is its stored dtype (q8 on a GGUF Q8_0 tensor, f16 on an
F16 one) has its stored blocks copied, not re-quantized (export.py): re-quantizing values that are already
on that grid can only move them. A tensor whose chosen dtype differs is dequantized and re-quantized as
the recipe asks (q8 or int4 of a Q4_1 GGUF: double rounding, said in the export notes; "keep" avoids it).

The quality 4-bit recipe ("int4"), and why: the tied embedding of small models is a large part of the
weights (SmolLM2-135M: 28M of 135M) and is also the output head, the most error-sensitive matmul, so it
gets the finer int4_32 blocks (4.5 bpw); everything else int4_64 (4.25 bpw). The remaining budget up to
4.5 bpw for the whole file then buys q8_0 (8.5 bpw), in this order, for: an untied output head; attn_v
(first/last layer, then llama.cpp's "use_more_bits" layers — first 1/8, last 1/8, every third between —
then the rest); then ffn_down in the same layer order (the tensors llama.cpp's Q4_K_M also upgrades).
attn_v comes first because it buys the most per bit: on SmolLM2-135M (norm-folded float copy,
bench/make_float_model.py; 4 chunks of 512 tokens of pydoc topics, f16 ppl 11.75) moving one role of
all 30 layers from f16 to int4_64 costs attn_v +0.57 ppl for 3.3M weights, ffn_down +1.38 for 26.5M;
the tied embedding alone at int4_32 costs +1.19 (int4_64: +2.42). Whole recipe: 17.96 with this order,
18.24 with ffn_down/attn_v of the edge layers first. A q8_0 embedding (+0.84 bpw) does not fit 4.5.
Calibration matters more than any of these choices. With the built-in calibration text (--calib stdlib:
stdlib docstrings, disjoint from the pydoc-topics evaluation text), 8 chunks, f16 11.95: int4 18.80,
+ --calib stdlib 14.19, + --gptq 13.21 (same file size). (q8 recipe for scale: 12.01 vs f16 11.92.)
`edgeconv export --quant int4` (the CLI; also the int4a / keep:int4 recipes) is calibrated by default: statistics
from the C++ forward pass on calib_builtin.txt (4803 SmolLM2 tokens) + GPTQ, no torch (cli.calib_choice;
--no-calib: round-to-nearest, the export() API's default). Same protocol, 2026-12-02 on the contended 2-core
machine: default 13.51 (+13.0 %), --no-calib 18.80, --calib stdlib (8192 tokens, now also through C++) 13.21 —
the same as the torch path's 13.21, so the C++ statistics lose nothing; stdlib's edge is partly its genre (Python
docs, like the evaluation text). Session 18: with GPTQ the CLI uses int4g (rule 0): the same mix with the embedding /
head in nl4_32 (GPTQ'd against the non-uniform table; same bytes as int4_32) and refined scales: 13.35 (+11.7 %);
nl4_32 upgrades of attn_v / ffn_down in place of q8_0 attn_v were worse (13.66). Session 21: act-order GPTQ
(quant/gptq.py block_act_order) 13.16 (+10.1 %; 13.88 vs 13.89 on 32 chunks), the export in 33 s on 2 cores.
Session 25: int4g spends the budget per role on the 4-bit form that measured best (_INT4G_UPGRADES). One role of
all 30 layers GPTQ-quantized, everything else f16 (embedding nl4_32; 8 chunks; 12.168 with no role quantized):

    role      int4_64   nl4_32   int4a_32        role      int4_64   nl4_32   int4a_32
    attn_q    +0.5 %    +0.9 %   +0.1 %          ffn_gate  +0.7 %    +0.8 %   +1.0 %
    attn_k    +1.2 %    +0.3 %   -0.0 %          ffn_up    +1.2 %    +0.2 %   +0.5 %
    attn_v    +6.6 %    +1.9 %   +0.6 %          ffn_down  +2.8 %    +0.4 %
    attn_o    +0.4 %    +0.6 %   +0.3 %

nl4_32 helps attn_k / attn_v / ffn_up / ffn_down a lot and attn_q / attn_o / ffn_gate not at all, so those stay
int4_64; by gain per bit: attn_v nl4_32, attn_k nl4_32, attn_v int4a_32, ffn_down nl4_32, ffn_up nl4_32 (llama.cpp's
more_bits layers first), then int4's q8_0 upgrades. Whole file 4.500 b/w: 12.694 (+6.2 %; was 13.164) on 8 chunks,
13.279 (+8.8 %; was 13.879) on 32 (f16 11.954 / 12.202); export 34 s. The cost: decode of the 135M file on a
2-core AVX2 Zen 1 ~9 % slower (nl4_32 and int4a_32 lack int4's int16 sum tree there; bench/README.md). Then the
default calibration grew from 4803 tokens (calib_builtin.txt) to 16384 (+ calib_docs.txt, calib_native.default_text):
12.783 on 8 chunks (noise: the KL says otherwise), 13.126 (+7.6 %) on 32, KL to the f16 logits 0.0997 -> 0.0664
(bench/kl_vs_ref.py; on license texts neither calibration text holds 0.155 -> 0.117); export 64 s.
bench/README.md has the tables. Session 26 (2-core Xeon, AVX-512 VNNI): with the GEMVs' software prefetch this file
decodes at 258 tok/s vs 192 for session 21-24's mix before it (280 for that mix in the same build: still ~8 % apart).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Mapping

from .format import HEADER_SIZE, MIN_ALIGNMENT, tensor_nbytes
from .quant import DTYPES, row_bytes

FALLBACK = {
    "int4_128": "int4_64", "int4_64": "int4_32", "int4_32": "q8_0",
    "int4a_128": "int4a_64", "int4a_64": "int4a_32", "int4a_32": "q8_0",
    "q8_0": "f16", "mxint8": "f16", "mxfp8": "f16", "mxfp6": "f16", "mxfp4": "f16", "nl4_32": "q8_0",
    "q5_0": "q8_0", "q4_k": "q8_0", "q6_k": "q8_0",  # import-only (quant/kquant.py); GGUF rows always fit
}


@dataclass(frozen=True)
class Upgrade:
    roles: tuple[str, ...]
    layers: str          # "all", "edge" (first and last block) or "more_bits" (llama.cpp's use_more_bits)
    dtype: str


@dataclass(frozen=True)
class Recipe:
    name: str
    default: str
    by_role: dict[str, str] = field(default_factory=dict)
    upgrades: tuple[Upgrade, ...] = ()
    budget_bpw: float | None = None
    description: str = ""
    keep_source: bool = False  # already-quantized tensors an .edge dtype holds exactly keep it (rule 1b)
    choose: tuple[str, ...] = ()  # equal-size candidate dtypes chosen per tensor by measured error (rule 3b)
    gptq_mix: str | None = None  # the recipe whose dtypes an export with GPTQ uses instead (rule 0)
    refine_scales: bool = False  # GPTQ: re-fit int4_B / nl4_32 block scales to the codes (quant/gptq.refine_scales)


# int4 / int4g: q8_0 for the sensitive tensors, in this order, while the file stays within budget_bpw
_INT4_UPGRADES = (Upgrade(("head",), "all", "q8_0"),
                  Upgrade(("attn_v",), "edge", "q8_0"),
                  Upgrade(("attn_v",), "more_bits", "q8_0"),
                  Upgrade(("attn_v",), "all", "q8_0"),
                  Upgrade(("ffn_down",), "edge", "q8_0"),
                  Upgrade(("ffn_down",), "more_bits", "q8_0"))

# int4g (the GPTQ mix): per role the 4-bit form that measured best, bought in order of ppl gained per bit
# (the table in the module docstring, session 25), then int4's q8_0 upgrades with what is left
_INT4G_UPGRADES = (Upgrade(("head",), "all", "q8_0"),
                   Upgrade(("attn_v",), "all", "nl4_32"),
                   Upgrade(("attn_k",), "all", "nl4_32"),
                   Upgrade(("attn_v",), "all", "int4a_32"),
                   Upgrade(("ffn_down",), "all", "nl4_32"),
                   Upgrade(("ffn_up",), "more_bits", "nl4_32"),
                   Upgrade(("ffn_up",), "all", "nl4_32")) + _INT4_UPGRADES[1:]

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("f32", "f32", description="everything f32"),
    Recipe("f16", "f16", description="weights f16"),
    Recipe("bf16", "bf16", description="weights bf16"),
    Recipe("q8", "q8_0", description="weights q8_0 (8.5 bpw)"),
    Recipe("mxint8", "mxint8", description="weights MXINT8 (8.25 bpw)"),
    Recipe("mxfp8", "mxfp8", description="weights MXFP8 E4M3 (8.25 bpw)"),
    Recipe("mxfp6", "mxfp6", description="weights MXFP6 E2M3 (6.25 bpw)"),
    Recipe("mxfp4", "mxfp4", description="weights MXFP4 E2M1 (4.25 bpw)"),
    Recipe("int4", "int4_64", {"embedding": "int4_32", "head": "int4_32"}, gptq_mix="int4g",
           upgrades=_INT4_UPGRADES,
           budget_bpw=4.5,
           description="quality 4-bit mix: int4_64, int4_32 embedding/head, q8_0 for sensitive tensors "
                       "while the file stays <= 4.5 bpw"),
    Recipe("int4g", "int4_64", {"embedding": "nl4_32", "head": "nl4_32"},
           upgrades=_INT4G_UPGRADES,
           budget_bpw=4.5, refine_scales=True,
           description="the int4 mix for GPTQ: int4_64, an nl4_32 embedding/head, then per role the 4-bit form that "
                       "measured best (attn_v int4a_32; attn_k, ffn_down, ffn_up nl4_32) and q8_0 while the file stays "
                       "<= 4.5 bpw; block scales re-fitted after GPTQ"),
    Recipe("int4a", "int4a_64", {"embedding": "int4a_32", "head": "int4a_32"},
           description="asymmetric 4-bit: int4a_64, int4a_32 embedding/head"),
    Recipe("nl4", "nl4_32",
           description="non-uniform 4-bit: nl4_32 (GGML IQ4_NL's table, f16 scale per 32; 4.5 bpw) everywhere"),
    Recipe("int4nl", "nl4_32", choose=("nl4_32", "int4_32"),
           description="4.5 bpw: per tensor nl4_32 or int4_32 (same size), whichever reconstructs it with "
                       "less (importance-weighted) error"),
    Recipe("keep", "q8_0", keep_source=True,
           description="keep each already-quantized tensor whose blocks an .edge dtype holds exactly (GGUF Q4_0, "
                       "Q4_1, Q8_0; ONNX MatMulNBits, HF GPTQ / AWQ where exact: blocks copied), q8_0 for the rest "
                       "(keep:RECIPE names another fallback)"),
)}
KEEP_PREFIX = "keep:"


def get_recipe(name: str) -> Recipe:
    """A recipe by name; "keep:RECIPE" is RECIPE with keep_source (exactly stored tensors keep their type)."""
    if isinstance(name, str) and name.startswith(KEEP_PREFIX):
        base = get_recipe(name[len(KEEP_PREFIX):])
        if base.keep_source:
            raise ValueError(f"recipe {name!r}: the fallback of keep must be a plain recipe")
        return replace(base, name=name, keep_source=True,
                       description=f"keep exactly stored tensors, {base.name} for the rest")
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}, keep:RECIPE") from None


def parse_overrides(specs: list[str] | tuple[str, ...]) -> list[tuple[re.Pattern, str]]:
    """["REGEX=dtype", ...] -> compiled (regex, dtype) pairs; ValueError on a bad spec."""
    out = []
    for s in specs or ():
        rx, sep, dt = s.rpartition("=")
        if not sep or not rx:
            raise ValueError(f"--tensor-type {s!r}: expected REGEX=dtype")
        if dt not in DTYPES:
            raise ValueError(f"--tensor-type {s!r}: unknown dtype {dt!r}; known: {', '.join(DTYPES)}")
        try:
            out.append((re.compile(rx), dt))
        except re.error as e:
            raise ValueError(f"--tensor-type {s!r}: bad regex: {e}") from None
    return out


def fit_dtype(dtype: str, cols: int) -> str:
    """dtype, or the first type along FALLBACK whose block divides cols."""
    d = dtype
    while row_bytes(d, cols) <= 0:
        if d not in FALLBACK:
            raise ValueError(f"no dtype in the fallback chain of {dtype} fits {cols} columns")
        d = FALLBACK[d]
    return d


def more_bits_layers(n_layers: int) -> set[int]:
    """llama.cpp's use_more_bits: first 1/8, last 1/8, and every third block in between."""
    e = n_layers // 8
    return {i for i in range(n_layers) if i < e or i >= 7 * n_layers // 8 or (i - e) % 3 == 2}


def _layer_set(sel: str, n_layers: int) -> set[int] | None:
    if sel == "all":
        return None
    if sel == "edge":
        return {0, n_layers - 1}
    if sel == "more_bits":
        return more_bits_layers(n_layers)
    raise ValueError(f"unknown layer selector {sel!r}")


def file_size(plan, dtypes: dict[str, str], fixed_bytes: int, alignment: int = MIN_ALIGNMENT) -> int:
    """Exact size of a file with this plan/dtypes, given header+metadata+table bytes."""
    pos = fixed_bytes
    for p in plan:
        pos = (pos + alignment - 1) // alignment * alignment + tensor_nbytes(dtypes[p.name], p.shape)
    return pos


def assign_dtypes(plan, recipe: Recipe, overrides=(), n_layers: int = 0, fixed_bytes: int = HEADER_SIZE,
                  alignment: int = MIN_ALIGNMENT, stored: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """{tensor name: dtype} for a plan (archs.PlannedTensor list). stored: {tensor name: the .edge dtype
    its source bytes already are} for the tensors that can be copied (export.stored_dtypes); only a
    keep_source recipe reads it."""
    out: dict[str, str] = {}
    locked = set()
    for p in plan:
        if len(p.shape) == 1 or p.min_dtype == "f32":
            out[p.name] = "f32"
            locked.add(p.name)
            continue
        dt = recipe.by_role.get(p.role, recipe.default)
        kept = (stored or {}).get(p.name) if recipe.keep_source else None
        if kept is not None and DTYPES[kept].block > 1:  # float-stored weights are not quantized yet
            dt = kept
            locked.add(p.name)
        for rx, odt in overrides:
            if rx.search(p.name):
                dt = odt
                locked.add(p.name)
                break
        out[p.name] = fit_dtype(dt, p.shape[-1])
    if recipe.budget_bpw is None or not recipe.upgrades:
        return out
    n_weights = sum(p.n_elements for p in plan)
    budget_bytes = recipe.budget_bpw * n_weights / 8
    size = file_size(plan, out, fixed_bytes, alignment)
    for up in recipe.upgrades:
        layers = _layer_set(up.layers, n_layers)
        for p in plan:
            if p.name in locked or p.role not in up.roles or (layers is not None and p.layer not in layers):
                continue
            new = fit_dtype(up.dtype, p.shape[-1])
            if tensor_nbytes(new, p.shape) <= tensor_nbytes(out[p.name], p.shape):
                continue
            trial = dict(out)
            trial[p.name] = new
            trial_size = file_size(plan, trial, fixed_bytes, alignment)
            if trial_size <= budget_bytes:
                out, size = trial, trial_size
    return out
