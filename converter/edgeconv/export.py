"""Checkpoint -> .edge: open the source, plan the tensors, choose dtypes, stream-quantize, write atomically.

export(src, out, recipe, ...) -> ExportResult. One tensor is in memory at a time (as float32; large
tensors are quantized in row chunks); the writer (writer.EdgeWriter) puts everything in a temporary
file that replaces `out` only when complete.

Transforms applied per tensor, as declared by the architecture's tensor table (archs/):
  transpose           the source stores [in, out]
  unpermute_heads     GGUF (llama family): undo llama.cpp's RoPE row permutation, see unpermute_rope_rows

Exact import: a tensor whose assigned dtype is the dtype its source already stores it in (stored_dtypes;
GGUF Q4_0 / Q4_1 / Q8_0 / F16 ... as int4_32 / int4a_32 / q8_0 / f16) is written from its stored bytes
(Source.load_stored), not dequantized and re-quantized. The RoPE un-permutation moves whole rows of
blocks, so it stays exact; a transpose cannot be done on blocks, so a tensor that needs one is
re-quantized (with a note). The "keep" recipes assign the stored dtype wherever there is one
(recipes.py rule 1b); other recipes copy only where their choice happens to be the stored dtype.

Mixture-of-experts models (docs/MOE.md; moe/export.py): the non-expert tensors follow the recipe as for
dense models (routers and predictors stay f32); each expert is written as blob tensors after them
(expert_variants, default by recipe: int4 recipes "int4,int2" = one planes4 blob, q8 "q8_0"), the
pre-attention predictor is derived (predictor: fold, or lsq with calibration), and with calibration
and expert_bits each expert's default variant (moe.plan) is chosen from its measured sensitivity.
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from . import __version__
from .archs import plan_experts, plan_tensors
from .format import ARR_F32, ARR_I64, ARR_STR, F64, HEADER_SIZE, I64, STR, TensorInfo, encode_metadata, encode_table, \
    infer_meta_type
from .quant import DTYPES, quantize
from .moe.source import source_row_blocks
from .recipes import assign_dtypes, get_recipe, parse_overrides
from .sources import open_source
from .writer import EdgeWriter

CHUNK_ELEMENTS = 1 << 22  # quantize at most this many weights at once (bounds peak memory)

TOKENIZER_TYPES = {
    "tokenizer.model": STR, "tokenizer.pre": STR, "tokenizer.tokens": ARR_STR, "tokenizer.scores": ARR_F32,
    "tokenizer.token_type": ARR_I64, "tokenizer.merges": ARR_STR, "tokenizer.bos_id": I64,
    "tokenizer.eos_id": I64, "tokenizer.unk_id": I64, "tokenizer.pad_id": I64, "tokenizer.add_bos": I64,
    "tokenizer.chat_template": STR, "tokenizer.add_space_prefix": I64,
}


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf permute: HF rotate-half rows -> GGUF interleaved rows (per head)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute_rope_rows: GGUF interleaved rows -> HF rotate-half rows."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@dataclass
class ExportResult:
    path: str
    recipe: str
    n_tensors: int
    n_weights: int
    file_size: int
    bits_per_weight: float
    seconds: float
    dtypes: dict[str, str]
    notes: list[str] = field(default_factory=list)
    moe: dict | None = None  # MoE models: variants, blob sizes, predictor recall, plan summary

    def dtype_counts(self) -> dict[str, int]:
        return dict(Counter(self.dtypes.values()).most_common())

    def summary(self) -> dict:
        """The JSON-able summary (`edgeconv export --json`)."""
        out = {"path": self.path, "recipe": self.recipe, "tensors": self.n_tensors, "weights": self.n_weights,
               "file_size": self.file_size, "bits_per_weight": round(self.bits_per_weight, 4),
               "seconds": round(self.seconds, 2), "dtypes": self.dtype_counts()}
        if self.moe is not None:
            out["moe"] = self.moe
        return out

    def describe(self) -> str:
        """The summary for humans: one line, plus one for the experts of a MoE model."""
        dts = ", ".join(f"{k}×{n}" for k, n in self.dtype_counts().items())
        text = (f"wrote {self.path}: {self.n_tensors} tensors ({dts}), {human_bytes(self.file_size)}, "
                f"{self.bits_per_weight:.3f} bits/weight over {self.n_weights:,} weights, {self.seconds:.1f} s")
        if self.moe is not None:
            mo = self.moe
            text += (f"\n  experts: {mo['experts']} ({mo['moe_layers']} MoE layers × {mo['n_experts']}), variants "
                     + ", ".join(f"{v['name']} ({v['layout']}, {v['bits_per_weight']:.2f} b/w)" for v in mo["variants"])
                     + f"; predictor {mo['predictor']}"
                     + (f", held-out recall {mo['recall']['stored']:.3f}" if mo["recall"] else ""))
        return text


def human_bytes(n: float) -> str:
    """1536 -> "1.5 KiB" (B, KiB, MiB, GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def _metadata(src, hp: Mapping, recipe: str, name: str | None) -> list[tuple[str, int, Any]]:
    meta: list[tuple[str, int, Any]] = [
        ("general.architecture", STR, src.arch.name),
        ("general.name", STR, name or src.general.get("general.name") or src.arch.name),
        ("general.source", STR, src.general.get("general.source", src.kind)),
        ("general.converter", STR, f"edgeconv {__version__}"),
        ("quant.recipe", STR, recipe),
        ("quant.rounding", STR, "rne"),
    ]
    for k, v in hp.items():
        if isinstance(v, (list, tuple, str, np.ndarray)):  # MoE / layout keys (docs/MOE.md §2)
            meta.append((k, infer_meta_type(k, v), v))
        else:
            meta.append((k, F64 if isinstance(v, float) else I64, v))
    tok = dict(src.tokenizer)
    if tok:
        n = len(tok.get("tokenizer.tokens", []))
        if n != hp["llm.vocab_size"]:
            raise ValueError(f"tokenizer has {n} tokens but the model's vocabulary is {hp['llm.vocab_size']}")
    for k, v in tok.items():
        if k not in TOKENIZER_TYPES:
            raise ValueError(f"internal: unknown tokenizer key {k}")
        meta.append((k, TOKENIZER_TYPES[k], v))
    return meta


def stored_dtypes(src, plan) -> tuple[dict[str, str], list[str]]:
    """({tensor name: stored .edge dtype} of the tensors whose blocks can be copied, notes about those that
    cannot: a transposed tensor's blocks would have to be re-cut)."""
    out: dict[str, str] = {}
    blocked = []
    for p in plan:
        dt = None if p.derived or getattr(p, "offset", 0.0) else src.stored_dtype(p.src)
        if dt is None:
            continue
        if p.transpose:
            blocked.append(p.name)
        else:
            out[p.name] = dt
    notes = [f"{len(blocked)} tensors ({', '.join(blocked[:4])}{' ...' if len(blocked) > 4 else ''}) need a "
             f"transpose, which stored blocks do not allow: they were dequantized and re-quantized"] if blocked else []
    return out, notes


def _stored_rows(src, p, dtype: str) -> np.ndarray:
    """uint8 [rows, row bytes] of tensor p copied from the source's stored blocks (un-permuted), checked."""
    from .quant import dequantize, row_bytes

    b = src.load_stored(p.src)
    if p.unpermute_heads:
        b = unpermute_rope_rows(b, p.unpermute_heads)  # whole rows of blocks: still exact
    rows = p.n_elements // p.shape[-1]
    if b.shape != (rows, row_bytes(dtype, p.shape[-1])):
        raise ValueError(f"tensor {p.name} (source {p.src!r}): stored {dtype} data is {b.shape[0]} x {b.shape[1]} "
                         f"bytes, expected {rows} x {row_bytes(dtype, p.shape[-1])} for shape {p.shape}")
    step = max(1, CHUNK_ELEMENTS // p.shape[-1])
    for r0 in range(0, rows, step):
        blk = b[r0:r0 + step]
        if not np.isfinite(dequantize(blk, dtype, (blk.shape[0], p.shape[-1]))).all():
            raise ValueError(f"tensor {p.name} (source {p.src!r}) contains NaN or infinity")
    return b


def _load(src, p) -> np.ndarray:
    from .moe.source import release_pages

    w = src.load(p.src)
    release_pages(src, p.src)  # loads are copies; the mapped pages need not stay resident
    if p.transpose:
        w = w.T
    if p.unpermute_heads:
        w = unpermute_rope_rows(w, p.unpermute_heads)
    w = np.ascontiguousarray(w, dtype=np.float32)
    if p.offset:
        w = w + np.float32(p.offset)
    if w.shape != p.shape:
        raise ValueError(f"tensor {p.name} (source {p.src!r}): expected shape {p.shape}, got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"tensor {p.name} (source {p.src!r}) contains NaN or infinity")
    return w


def _choose_dtypes(src, plan, dtypes, candidates, copied, overrides, importance):
    """recipes.py rule 3b: each weight whose dtype is a candidate gets the candidate of least measured error."""
    from .quant.choose import choose_dtype

    out, won = dict(dtypes), {}
    for p in plan:
        if (dtypes[p.name] not in candidates or p.name in copied or p.derived
                or any(rx.search(p.name) for rx, _ in overrides)):
            continue
        w = _load(src, p).reshape(-1, p.shape[-1])
        out[p.name], _ = choose_dtype(w, candidates, None if importance is None else importance.get(p.name))
        won[out[p.name]] = won.get(out[p.name], 0) + 1
    return out, "chosen by measured error: " + ", ".join(f"{won.get(d, 0)} {d}" for d in candidates)


@contextmanager
def _naming_source(src_path: str):
    """A plain ValueError raised while converting (a tensor with NaN, a shape the architecture does not
    allow, ...) gets the source's path in front when it does not name it already, so the CLI's one line
    says which file is wrong (tests/fuzz: every importer failure names its input)."""
    try:
        yield
    except ValueError as e:
        text = " ".join(str(e).split())
        if type(e) is ValueError and os.fspath(src_path) not in text:
            raise ValueError(f"{os.fspath(src_path)}: {text}") from None
        raise


def _native_stats(src, src_path, out_path, tokenizer_pre, plan, tied, tokens, ctx, max_tokens, hessians):
    """(importance, H) from the C++ forward pass (calib_native.py) over a temporary f16 copy of the model,
    written beside out_path (from the open source src: a GGUF's metadata takes seconds to parse) and removed
    afterwards."""
    import tempfile

    from .calib_native import collect_native

    fd, tmp = tempfile.mkstemp(suffix=".calib-f16.edge", dir=os.path.dirname(os.path.abspath(out_path)))
    os.close(fd)
    try:
        export(src_path, tmp, recipe="f16", tokenizer_pre=tokenizer_pre, source=src)
        return collect_native(tmp, plan, tokens, ctx=ctx, max_tokens=max_tokens, hessians=hessians, tied=tied)
    finally:
        os.unlink(tmp)


def _gptq_group(src, group: list, dtype: str, h, damp: float, derived, refine: bool = False) -> dict[str, np.ndarray]:
    """GPTQ bytes of the tensors of `group` (plan entries that read the same input, the same H object, in the
    same dtype: attn_q/k/v, ffn_gate/up): one gptq_quantize over their rows stacked, which is row for row the
    same problem (rows are independent given H) with a third of the per-column Python steps."""
    from .quant.gptq import gptq_quantize

    mats = [(derived[q.name] if q.derived else _load(src, q)).reshape(-1, q.shape[-1]) for q in group]
    out = gptq_quantize(np.concatenate(mats) if len(mats) > 1 else mats[0], dtype, h, damp=damp, refine=refine)
    res, r0 = {}, 0
    for q, m in zip(group, mats):
        res[q.name] = out[r0:r0 + m.shape[0]]
        r0 += m.shape[0]
    return res


def export(src_path: str, out_path: str, recipe: str = "int4", tensor_types: list[str] | tuple = (),
           name: str | None = None, alignment: int = 64, tokenizer_pre: str | None = None,
           importance: Mapping[str, np.ndarray] | None = None, calib: str | None = None,
           calib_tokens: int = 16384, calib_ctx: int = 512, gptq: bool = False, gptq_damp: float | None = None,
           calib_auto: bool = False, gptq_mix: bool = True,
           progress: bool = False, expert_variants: str | None = None, predictor: str | None = None,
           expert_bits: float | None = None,
           log: Callable[[str], None] | None = None, source=None, jobs: int | None = None) -> ExportResult:
    """Convert `src_path` (GGUF file, HF folder, .pt/.pth) to the .edge file `out_path`.

    tensor_types: ["REGEX=dtype", ...] overrides (llama-quantize --tensor-type style).
    importance: {our tensor name: float32[cols]} per-column weights (mean squared activations) passed
    to the quantizer; tensors not in it are quantized unweighted.
    calib: a UTF-8 text file, or "stdlib" for the built-in text (calib_text.py); importance is collected
    from the model's own activations on it (see calib.py; up to calib_tokens tokens in chunks of
    calib_ctx). Explicit `importance` entries win.
    gptq: int4-family tensors are quantized with GPTQ (quant/gptq.py) against the input second moments
    H collected on the calibration text (needs `calib`); other dtypes are quantized as without it.
    gptq_damp: GPTQ's dampening λ / mean(diag H) (default quant.gptq.DAMP).
    gptq_mix: with gptq, use the dtypes of the recipe's `gptq_mix` recipe and its refine_scales (recipes.py
    rule 0: int4 with GPTQ is int4g, from this API as from the CLI); False keeps the recipe's own dtypes (a
    GPTQ-vs-RTN comparison at equal dtypes).
    calib_auto: calib / gptq are a default, not a request (the CLI's int4 recipes): where this model cannot
    be calibrated natively (MoE: the reference path needs torch and time; a source without a tokenizer)
    the export goes on without calibration and says so in a note.
    MoE models only: expert_variants "int4,int2" / "q8_0,mxfp4" / ... (moe/variants.py; default from the
    recipe); predictor "fold" | "lsq" (default lsq with calib, else fold); expert_bits: average stored
    bits per expert weight for the per-expert plan (needs calib and two variants).
    jobs: GPTQ worker processes (gptq_jobs.py; default: the usable cores, at most 4); the bytes do not depend on it.
    source: an already open Source of src_path (sources.open_source) to read instead of opening it again; it
    is left open.
    """
    if gptq and calib is None:
        raise ValueError("--gptq needs calibration data: add --calib stdlib (built-in text) or --calib TEXTFILE")
    if gptq:
        from .quant.gptq import DAMP

        damp = DAMP if gptq_damp is None else float(gptq_damp)
        if not (math.isfinite(damp) and damp >= 0):
            raise ValueError(f"--gptq-damp must be a finite number >= 0, got {gptq_damp}")
    t0 = time.time()
    rec = get_recipe(recipe)
    overrides = parse_overrides(list(tensor_types))
    notes: list[str] = []
    opened = nullcontext(source) if source is not None else open_source(src_path, tokenizer_pre)
    with _naming_source(src_path), opened as src:
        hp = dict(src.hparams)
        plan, tied = plan_tensors(src.arch, hp, src.shapes, src.naming, src.tie_config)
        hp["llm.tied_head"] = int(tied)
        auto_note = None
        if calib_auto and calib is not None and (src.arch.moe is not None or not src.tokenizer):
            auto_note = ("not calibrated: " + ("default calibration covers dense models (C++ statistics); pass "
                                               "--calib builtin to calibrate this MoE model with the PyTorch reference"
                                               if src.arch.moe is not None else "the source has no tokenizer")
                         + "; int4 scales are round-to-nearest")
            calib, gptq = None, False
        moe = None
        if src.arch.moe is not None:
            from .moe.export import MoeExport

            moe = MoeExport(src, hp, plan, plan_experts(src.arch, hp, src.shapes, src.naming), rec.default,
                            expert_variants, predictor, expert_bits, calib is not None, log=log)
        elif expert_variants or predictor or expert_bits is not None:
            raise ValueError(f"--expert-variants / --predictor / --expert-bits apply to mixture-of-experts models; "
                             f"{src.arch.name} is dense")
        meta = _metadata(src, hp, rec.name, name)
        if not src.tokenizer:
            notes.append("the source has no tokenizer; the file carries none")
        notes += src.notes
        if auto_note:
            notes.append(auto_note)
        stored, stored_notes = stored_dtypes(src, plan)
        moe_meta = [] if moe is None else [(k, infer_meta_type(k, v), v) for k, v in moe.metadata()]
        fixed = (HEADER_SIZE + len(encode_metadata(meta + moe_meta + [("quant.bits_per_weight", F64, 0.0)]))
                 + len(encode_table([TensorInfo(p.name, "f32", p.shape) for p in plan])))
        mix = get_recipe(rec.gptq_mix) if gptq and gptq_mix and rec.gptq_mix and not rec.keep_source else rec
        refine = mix.refine_scales
        dtypes = assign_dtypes(plan, mix, overrides, hp["llm.n_layers"], fixed, alignment, stored)
        if mix is not rec:
            notes.append(f"GPTQ dtype mix: recipe {mix.name} ({mix.description})")
        copied = {p.name for p in plan if stored.get(p.name) == dtypes[p.name]}
        if src.quantized:
            qt = ", ".join(src.quant_types)
            n_req = sum(1 for p in plan if p.name not in copied and len(p.shape) > 1 and p.min_dtype != "f32")
            if not copied:
                notes.append(f"source weights are already quantized ({qt}); they were dequantized and re-quantized"
                             + (f" (--quant keep keeps the {len(stored)} exactly stored tensors)" if stored else ""))
            else:
                notes.append(f"source weights are already quantized ({qt}); {len(copied)} tensors kept their stored "
                             f"blocks exactly, {n_req} weight tensors were dequantized and re-quantized"
                             + ("" if rec.keep_source else " (--quant keep keeps every exactly stored tensor)"))
            notes += stored_notes
        if rec.keep_source and not any(DTYPES[dtypes[n]].block > 1 for n in copied):
            notes.append(f"recipe {rec.name}: the source stores no weight in a block type an .edge dtype holds "
                         f"exactly; every weight got the fallback's dtypes")
        hessians = None
        if calib is not None:
            from .calib import load_text, tokenize

            t_cal, c_cal = time.time(), time.process_time()
            text, label = load_text(calib)
            tokens = tokenize(text, src.tokenizer)
            if moe is not None:
                from .moe.source import SourceWeights

                mc = moe.calibrate(SourceWeights(src, plan, moe.experts, _load), tokens, calib_ctx, calib_tokens, gptq)
                imp, hessians = mc.importance, mc.hessians
                how = "the PyTorch reference"
            else:
                imp, hessians = _native_stats(src, src_path, out_path, tokenizer_pre, plan, tied, tokens, calib_ctx,
                                              calib_tokens, gptq)
                how = "edgerun's C++ forward pass"
            importance = {**imp, **(importance or {})}
            notes.append(f"calibrated on {min(len(tokens), calib_tokens)} tokens of {label} with {how} "
                         f"({time.time() - t_cal:.1f} s, {time.process_time() - c_cal:.1f} s CPU)")
        if gptq:
            from .quant.gptq import gptq_quantize, supported

            def gptq_ok(q) -> bool:
                return supported(dtypes[q.name]) and q.name in hessians and q.name not in copied

            gptq_done: dict[str, np.ndarray] = {}  # bytes of a group's tensors not written yet
            n_gptq = sum(1 for p in plan if gptq_ok(p))
            n_nl = sum(1 for p in plan if gptq_ok(p) and dtypes[p.name] == "nl4_32")
            notes.append(f"GPTQ-quantized {n_gptq - n_nl} int4 tensors" + (f" and {n_nl} nl4_32 tensors" if n_nl else "")
                         if n_gptq else "--gptq: no int4 / nl4 tensor in this recipe, nothing was GPTQ-quantized")
        if rec.choose:
            dtypes, choice_note = _choose_dtypes(src, plan, dtypes, rec.choose, copied, overrides, importance)
            notes.append(choice_note)
        derived: dict[str, np.ndarray] = {}
        if moe is not None:
            derived = moe.fit_predictor(lambda n: _load(src, next(p for p in plan if p.name == n)))
            moe_meta = [(k, infer_meta_type(k, v), v) for k, v in moe.metadata()]

        pool = None
        if gptq and n_gptq:  # every GPTQ group (tensors sharing H and dtype), its first tensor's name as key
            from .gptq_jobs import GptqJobs, default_jobs

            groups: dict[tuple, list] = {}  # (id(H), dtype) -> its tensors in plan order
            for q in plan:
                if gptq_ok(q):
                    groups.setdefault((id(hessians[q.name]), dtypes[q.name]), []).append(q)
            by_leader = {g[0].name: g for g in groups.values()}
            n_jobs = min(default_jobs() if jobs is None else max(1, int(jobs)), len(by_leader))
            t_g, c_g, ch_g = time.time(), time.process_time(), os.times()
            pool = GptqJobs(lambda n: _gptq_group(src, by_leader[n], dtypes[n], hessians[n], damp, derived, refine),
                            list(by_leader), n_jobs)

        with EdgeWriter(out_path, alignment=alignment) as w, pool or nullcontext():
            for k, mt, v in meta + moe_meta:
                w.add_metadata(k, v, mt)
            for p in plan:
                w.declare(p.name, dtypes[p.name], p.shape)
            if moe is not None:
                moe.declare(w)
            w.begin()
            from tqdm import tqdm

            bar = tqdm(plan, unit="tensor", desc=os.path.basename(out_path), leave=False, disable=not progress)
            for p in bar:
                bar.set_postfix_str(f"{p.name} -> {dtypes[p.name]}", refresh=False)
                cols = p.shape[-1]
                imp = None if importance is None else importance.get(p.name)
                step = max(1, CHUNK_ELEMENTS // cols)
                if p.name in copied:  # exact import: the source's blocks, in row chunks
                    rows2d = _stored_rows(src, p, dtypes[p.name])
                    for r0 in range(0, rows2d.shape[0], step):
                        w.write_chunk(p.name, rows2d[r0:r0 + step])
                    w.end_tensor(p.name)
                    del rows2d
                    continue
                use_gptq = gptq and gptq_ok(p)
                if use_gptq:
                    if p.name not in gptq_done:  # p leads its group (plan order)
                        gptq_done.update(pool.result(p.name))
                        gptq_s = time.time() - t_g
                    w.write_chunk(p.name, gptq_done.pop(p.name))
                    w.end_tensor(p.name)
                    continue
                # whole tensor when it needs transforms; otherwise row blocks straight from the source
                whole = p.derived or p.transpose or p.unpermute_heads or p.offset
                arr = (derived[p.name] if p.derived else _load(src, p)) if whole else None
                rows2d = None if arr is None else arr.reshape(-1, cols)
                blocks = None if arr is not None else source_row_blocks(src, p.src, p.shape, step)
                if blocks is None:
                    rows2d = (_load(src, p) if arr is None else arr).reshape(-1, cols)
                    blocks = (rows2d[r0:r0 + step] for r0 in range(0, rows2d.shape[0], step))
                for block in blocks:
                    w.write_chunk(p.name, quantize(block, dtypes[p.name], importance=imp))
                w.end_tensor(p.name)
                del arr, rows2d
            bar.close()
            if gptq and n_gptq:
                pool.close()  # reaps the workers: their CPU time is in os.times() from here on
                ch = os.times()
                gptq_cpu = (time.process_time() - c_g + ch.children_user - ch_g.children_user
                            + ch.children_system - ch_g.children_system)
                notes.append(f"GPTQ took {gptq_s:.1f} s ({gptq_cpu:.1f} s CPU, {len(by_leader)} groups on "
                             f"{n_jobs} process{'es' if n_jobs > 1 else ''})")
            if moe is not None:
                def quantize_rows(wm, dt, imp_e, h_e):
                    if gptq and h_e is not None and supported(dt):
                        return gptq_quantize(wm, dt, h_e, damp=damp)
                    return quantize(wm, dt, importance=imp_e)

                moe.write_experts(w, quantize_rows, progress)
                moe.finish(w)
                if calib is not None:
                    notes.append(f"{moe.n_weighted} of {len(moe.experts)} experts were routed calibration tokens and "
                                 f"quantized against them ({'GPTQ' if gptq else 'importance-weighted'}); the others "
                                 f"plainly")
            file_size, bpw = w.file_size, w.bits_per_weight
    n_weights = sum(p.n_elements for p in plan) + (0 if moe is None else sum(e.n_elements for e in moe.experts))
    n_tensors = len(plan) + (0 if moe is None else len(moe.experts) * len(moe.blobs))
    if moe is not None:
        dtypes = {**dtypes, **{n: "blob" for n, _ in moe.blob_infos()}}
    res = ExportResult(os.fspath(out_path), rec.name, n_tensors, n_weights, file_size, bpw, time.time() - t0,
                       dtypes, notes, None if moe is None else moe.summary())
    if log:
        for n in notes:
            log(f"note: {n}")
    assert math.isclose(bpw, 8 * file_size / n_weights)
    return res
