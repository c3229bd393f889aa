"""edgeconv command line.

  edgeconv export SRC -o OUT.edge [--quant RECIPE] [--tensor-type REGEX=dtype ...]
                   [--calib TEXTFILE|builtin|stdlib | --no-calib] [--gptq | --no-gptq] [--gptq-damp F] [--jobs N] [--name N] [--align 64|4096] [--tokenizer-pre NAME]
                   [--device BOARD [--mem SIZE] [--ctx N]]   (recipe chosen for a board: edgeconv/device.py)
                   MoE models: [--expert-variants int4,int2|q8_0,mxfp4|...] [--predictor fold|lsq]
                   [--expert-bits AVG]   (docs/MOE.md; edgeconv/moe/)
  edgeconv inspect FILE [--json]     header, metadata (arrays summarised), tensor table, bits/weight;
                                     MoE: experts, variants, blob sizes, plan summary, predictor recall
  edgeconv verify FILE               CRC of every tensor; exit 1 if any mismatch
  edgeconv merge MODEL.edge ADAPTER.edge[:SCALE] ... -o MERGED.edge [--quant RECIPE]
                                     fold adapters (edgerun train) into a new file (edgeconv/merge.py)
  edgeconv recipes                   list the recipes (keep:RECIPE = keep exactly stored tensors, RECIPE for the rest)

Exit codes (edgerun.cli_common, shared with edgerun): 0 ok, 1 verification failed (or an internal error),
2 bad input, 130 interrupted (nothing written); one line on stderr, no traceback. Numeric options are
range-checked by their argparse types.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

import numpy as np
from edgerun import cli_common as cc


def _summarise(v: Any, limit: int = 8) -> Any:
    """JSON-able summary of a metadata value: arrays as {count, head}, long strings cut."""
    if isinstance(v, np.ndarray):
        return {"count": int(v.size), "head": v[:limit].tolist()}
    if isinstance(v, list):
        return {"count": len(v), "head": v[:limit]}
    if isinstance(v, str) and len(v) > 200:
        return v[:200] + f"... ({len(v)} chars)"
    return v


def calib_choice(recipe: str, calib: str | None, no_calib: bool, gptq: bool, no_gptq: bool
                 ) -> tuple[str | None, bool, bool]:
    """(calib, gptq, auto) for export(): the int4 recipes (default dtype int4*) calibrate by default on the
    built-in text with GPTQ (auto: skipped with a note where the model cannot be, e.g. MoE or no tokenizer);
    --no-calib is plain round-to-nearest; --no-gptq keeps only the importance weighting."""
    from .recipes import get_recipe

    if no_calib and (calib or gptq):
        raise ValueError("--no-calib contradicts --calib / --gptq")
    if gptq and no_gptq:
        raise ValueError("--gptq contradicts --no-gptq")
    int4 = get_recipe(recipe).default.startswith("int4")
    if no_calib:
        return None, False, False
    if calib is None:
        if gptq:  # an explicit --gptq names its data
            raise ValueError("--gptq needs calibration data: add --calib stdlib (built-in text) or --calib TEXTFILE "
                             "(or --calib builtin; without --gptq the int4 recipes already calibrate on the builtin "
                             "text with GPTQ)")
        if not int4:
            return None, False, False
        from .calib_native import BUILTIN

        return BUILTIN, not no_gptq, True
    return calib, (gptq or int4) and not no_gptq, False


def cmd_export(a: argparse.Namespace) -> int:
    from .export import export

    if a.device or a.mem or a.ctx:  # board profile -> recipe (device.py)
        from .device import cli_choose
        a.quant = cli_choose(a.src, a.device, a.mem, a.ctx, a.quant, a.tensor_type or [], a.tokenizer_pre, a.align,
                             log=lambda m: print(f"edgeconv: {m}", file=sys.stderr))
    recipe = a.quant or "int4"
    calib, gptq, auto = calib_choice(recipe, a.calib, a.no_calib, a.gptq, a.no_gptq)
    res = export(a.src, a.output, recipe=recipe, tensor_types=a.tensor_type or [], name=a.name,
                 alignment=a.align, tokenizer_pre=a.tokenizer_pre, calib=calib, calib_tokens=a.calib_tokens,
                 gptq=gptq, gptq_damp=a.gptq_damp, jobs=a.jobs, calib_auto=auto, progress=not a.quiet,
                 expert_variants=a.expert_variants,
                 predictor=a.predictor, expert_bits=a.expert_bits,
                 log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(res.summary(), indent=2) if a.json else res.describe())
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    from .export import human_bytes
    from .format import EdgeFile

    with EdgeFile(a.file) as f:
        info = {
            "header": f.header,
            "metadata": {k: {"type": f.meta_types[k], "value": _summarise(v)} for k, v in f.metadata.items()},
            "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "offset": t.offset,
                         "nbytes": t.nbytes, "crc32": f"{t.crc:08x}"} for t in f.tensors],
            "n_weights": f.n_weights,
            "bits_per_weight": f.bits_per_weight,
            "dtypes": dict(Counter(t.dtype for t in f.tensors).most_common()),
        }
        from .moe.info import moe_info

        moe = moe_info(f)
        if moe is not None:
            info["moe"] = moe
    if a.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    h = info["header"]
    print(f"{a.file}: .edge v{h['version']}, {human_bytes(h['file_size'])} ({h['file_size']} B), "
          f"{h['n_tensors']} tensors, metadata {h['meta_size']} B @ {h['meta_offset']}, "
          f"table {h['table_size']} B @ {h['table_offset']}")
    print(f"bits/weight {info['bits_per_weight']:.4f} over {info['n_weights']:,} weights; dtypes "
          + ", ".join(f"{k}×{n}" for k, n in info["dtypes"].items()))
    if "moe" in info:
        from .moe.info import info_lines

        print("\n".join(info_lines(info["moe"])))
    print("\nmetadata:")
    for k, e in info["metadata"].items():
        v = e["value"]
        if isinstance(v, dict):
            v = f"[{v['count']}] {v['head']}{' ...' if v['count'] > len(v['head']) else ''}"
        elif isinstance(v, str):
            v = repr(v)
        print(f"  {k:32s} {e['type']:8s} {v}")
    print("\ntensors:")
    w = max((len(t["name"]) for t in info["tensors"]), default=4)
    for t in info["tensors"]:
        shape = "×".join(map(str, t["shape"]))
        print(f"  {t['name']:{w}s}  {t['dtype']:9s} {shape:>14s}  @{t['offset']:<11d} {t['nbytes']:>11d} B  "
              f"crc {t['crc32']}")
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from .format import EdgeFile

    with EdgeFile(a.file) as f:
        bad = f.verify()
        n = len(f.tensors)
    if bad:
        print(f"{a.file}: {len(bad)} of {n} tensors FAILED the CRC check: {', '.join(bad[:10])}"
              + (" ..." if len(bad) > 10 else ""))
        return 1
    print(f"{a.file}: OK ({n} tensors, header/metadata/table/tensor CRCs match)")
    return 0


def cmd_merge(a: argparse.Namespace) -> int:
    from .merge import merge

    merge(a.model, a.adapters, a.output, recipe=a.quant, tensor_types=a.tensor_type or [],
          log=lambda m: print(m, file=sys.stderr))
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from .recipes import RECIPES

    for r in RECIPES.values():
        print(f"  {r.name:8s} {r.description}")
    return 0


_alignment = cc.int_range(64, 1 << 20)  # the writer checks that it is a multiple of 64


def build_parser() -> argparse.ArgumentParser:
    p = cc.ArgumentParser(prog="edgeconv", description="Convert GGUF / Hugging Face / PyTorch "
                                "checkpoints into .edge files, and inspect them.", epilog=cc.EXIT_CODES,
                                formatter_class=cc.HelpFormatter)
    cc.add_version(p, "edgeconv")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=cc.EXIT_CODES,
                              formatter_class=cc.HelpFormatter)

    e = add("export", "convert a checkpoint to .edge")
    e.add_argument("src", help="GGUF file, HF model folder (config.json + safetensors; float, GPTQ or AWQ), "
                   ".onnx, or .pt/.pth")
    e.add_argument("-o", "--output", required=True, help="output .edge path (written atomically)")
    e.add_argument("--quant", default=None, help="recipe: f32 f16 bf16 q8 mxint8 mxfp8 mxfp6 mxfp4 int4 int4a nl4 int4nl keep "
                   "keep:RECIPE (default int4, or the --device choice). keep: every tensor the source already stores "
                   "quantized in blocks an .edge dtype holds exactly (GGUF Q4_0 -> int4_32, Q4_1 -> int4a_32, "
                   "Q8_0 -> q8_0, IQ4_NL -> nl4_32, Q5_0 -> q5_0, Q4_K -> q4_k, Q6_K -> q6_k; ONNX MatMulNBits, HF GPTQ / AWQ int4 -> int4_B / int4a_B where exact) "
                   "keeps its blocks byte for byte; the rest (Q5_1, Q2_K/Q3_K/Q5_K, IQ*, F16/F32 weights) get q8_0, "
                   "or RECIPE's dtypes with keep:RECIPE; norms stay f32. Any recipe copies a tensor's blocks where the dtype it picks "
                   "is the stored one (q8 on a Q8_0 tensor); where it differs (int4 or q8 on Q4_1) the stored "
                   "values are re-quantized (double rounding). nl4: every weight nl4_32 (non-uniform 4-bit, GGML IQ4_NL's "
                   "table); int4nl: per tensor nl4_32 or int4_32 (same size) by measured, importance-weighted error")
    e.add_argument("--device", help="board profile (devices/profiles/*.toml: rpi4 rpi5 spacemit-k1 k230 visionfive2 "
                   "jetson-orin-nano x86-64): choose the recipe that fits it and say why (default: none)")
    e.add_argument("--mem", type=cc.size,
                   help="with --device: memory budget as for `edgerun --mem` (default: the board's RAM)")
    e.add_argument("--ctx", type=cc.positive_int,
                   help="with --device: context length to budget the KV cache for (default: the board profile's)")
    e.add_argument("--tensor-type", action="append", metavar="REGEX=DTYPE",
                   help="override the dtype of tensors whose .edge name matches REGEX (repeatable; default: none)")
    e.add_argument("--calib", metavar="TEXTFILE|builtin|stdlib", help="weigh quantization errors by the model's "
                   "mean squared activations on this text (imatrix-style), collected by edgerun's own C++ forward "
                   "pass: builtin = the text shipped with edgeconv (calib_builtin.txt: prose, dialogue, code; then "
                   "calib_docs.txt: a frozen copy of Python 3.11's stdlib docstrings), stdlib = the running Python's stdlib "
                   "docstrings, else a UTF-8 file (MoE models: the PyTorch reference, needs torch). Default: builtin "
                   "for the int4 recipes (int4, int4a, keep:int4...; skipped with a note for MoE models), none otherwise")
    e.add_argument("--no-calib", action="store_true", help="no calibration: plain round-to-nearest scales (fast)")
    e.add_argument("--gptq", action="store_true", help="GPTQ for the int4 tensors: feed each column's rounding "
                   "error forward through the inputs' covariance on the calibration text (needs --calib; default: on "
                   "whenever an int4 recipe is calibrated)")
    e.add_argument("--no-gptq", action="store_true", help="calibrate the scales only (importance), no GPTQ")
    e.add_argument("--gptq-damp", type=cc.nonneg_float, metavar="F", help="GPTQ dampening: add F × mean(diag H) to H's "
                   "diagonal (default 0.1; more calibration tokens allow less)")
    e.add_argument("--jobs", "-j", type=cc.positive_int, metavar="N", help="GPTQ worker processes (default: the usable "
                   "cores, at most 4; the output does not depend on it)")
    e.add_argument("--calib-tokens", type=cc.positive_int, default=16384, help="at most this many calibration tokens "
                   "(default 16384: a 135M model's export then takes ~65 s on 2 cores)")
    e.add_argument("--expert-variants", metavar="V1,V2,...", help="MoE: precisions each expert can be read in, "
                   "best first: int4 (nested int4_32 bit-planes) and int2 (their 2-bit prefix, same blob), or dtypes "
                   "stored as separate blobs (q8_0, mxfp4, ...). Default: int4,int2 for int4 recipes, else the "
                   "recipe's dtype")
    e.add_argument("--predictor", choices=("fold", "lsq"), help="MoE: pre-attention expert predictor: fold (router "
                   "× ffn_norm) or lsq (least squares on calibration text; default: lsq with --calib, else fold)")
    e.add_argument("--expert-bits", type=cc.positive_float, metavar="AVG", help="MoE: choose each expert's default variant from "
                   "its measured sensitivity on --calib text so that the average stored bits per expert weight is "
                   "<= AVG (int4 = 4.5, int2 = 2.5, q8_0 = 8.5; default: every expert in its best variant)")
    e.add_argument("--name", help="general.name (default: from the source)")
    e.add_argument("--align", type=_alignment, default=64, help="tensor alignment in bytes: a multiple of 64 "
                   "(4096 for page-aligned tensors)")
    e.add_argument("--tokenizer-pre", help="override tokenizer.pre for HF tokenizers (gpt2, smollm, qwen2, ...; "
                   "default: read from the tokenizer files)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    e.set_defaults(fn=cmd_export)
    i = add("inspect", "print header, metadata and tensor table")
    i.add_argument("file", help=".edge file")
    i.add_argument("--json", action="store_true", help="print everything as one JSON object")
    i.set_defaults(fn=cmd_inspect)
    v = add("verify", "check the CRC of every tensor")
    v.add_argument("file", help=".edge file")
    v.set_defaults(fn=cmd_verify)
    m = add("merge", "fold trained adapters (edgerun train) into a new .edge file")
    m.add_argument("model", help="the base .edge file the adapters were trained on")
    m.add_argument("adapters", nargs="+", type=cc.adapter_spec, metavar="ADAPTER.edge[:SCALE]",
                   help="adapters to fold in, each times SCALE (default 1)")
    m.add_argument("-o", "--output", required=True, help="merged .edge path (written atomically)")
    m.add_argument("--quant", default=None, help="re-quantize with this recipe (as export; default: each tensor keeps "
                   "the base's dtype, untouched tensors are copied byte for byte)")
    m.add_argument("--tensor-type", action="append", metavar="REGEX=DTYPE",
                   help="override the dtype of tensors whose name matches REGEX (repeatable; default: none)")
    m.set_defaults(fn=cmd_merge)
    r = add("recipes", "list quantization recipes")
    r.set_defaults(fn=cmd_recipes)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cc.run_main("edgeconv", args.fn, args, interrupted="interrupted; nothing written")


def entry() -> None:
    """The console script: main() on sys.argv, then the process's exit (cli_common.exit_process)."""
    cc.exit_process(main())


if __name__ == "__main__":
    entry()
