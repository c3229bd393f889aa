"""edgerun on an NVIDIA GPU vs HF transformers bf16 eager: batch-1 decode and prefill tok/s (issue 9 §5).

    python bench/bench_cuda.py --out DIR [--shapes 135m,1b,4b] [--recipes int4,q8] [--edgert PATH]
                               [--work /tmp/edge_bench] [--no-hf] [--moe-budget 0.25] [--runs 2]

Shapes (random weights, bench/cuda/random_edge.py; written to --work and deleted after use):
  135m  SmolLM2-135M: d 576, 30 layers, 9 / 3 heads of 64, d_ff 1536, vocab 49152, tied
  1b    a 1.2B Llama (Llama-3.2-1B's GQA): d 2048, 16 layers, 32 / 8 heads of 64, d_ff 8192, vocab 49152, tied
  4b    SmallThinker-4B-A0.6B: d 1536, 32 layers, 12 / 2 heads of 128, 32 experts top-4 of width 768,
        vocab 151936, tied, sigmoid gating, ReGLU experts
at the recipes int4 and q8 (--recipes: any edgeconv recipe, e.g. nl4; the dtypes its export gives a tiny model's first layer, for every layer).
Each (shape, recipe) is measured
  * through edgerun's Python API: Model(path, device="cuda", ctx=512); prefill = eval(256 prompt ids);
    decode = generate(the same prompt, 128 tokens, temperature 0): the prompt is cached but its last token,
    so 128 evaluations of one token, each sampled;
  * through `edgert bench PATH --device cuda --prompt-tokens 256 --gen-tokens 128` (no Python; host argmax).
HF transformers bf16 eager (LlamaForCausalLM; for 4b Qwen3MoeForCausalLM at the same shape, as transformers
has no SmallThinker): prefill = one forward of 256 ids, decode = 128 greedy steps with its KV cache.
Roofline: weight bytes one decode token reads (every matrix, the tied head, k experts per MoE layer) over the
copy bandwidth (--bw, 4.2e12 B/s measured on this H200): tok/s at that bound, and the fraction reached.
--moe-budget F: the 4b shape again with the GPU's expert cache at F of the expert bytes (gpu_mem), with its
hit rate, beside the fully resident run; then both again sampling at temperature 1 (seed 0). The random
files route about uniformly (cuda/random_edge.py), the worst case for the cache; the two sampled rows must
give the same tokens (streamed = resident), as must the two greedy ones.
Numbers are medians over --runs timed rounds after one warm-up round. Output: DIR/bench_cuda.json and
DIR/bench_cuda.md (the table), also printed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
for p in (os.path.join(REPO, "runtime"), os.path.join(REPO, "converter"), REPO, BENCH, os.path.join(BENCH, "cuda")):
    if p not in sys.path:
        sys.path.insert(0, p)

from env_scope import scoped_env  # noqa: E402

SHAPES = {
    "135m": dict(name="smollm2-135m-shape", arch="llama", d_model=576, n_layers=30, n_heads=9, n_kv_heads=3,
                 head_dim=64, d_ff=1536, vocab=49152, tied=True, rope_theta=1e5),
    "1b": dict(name="llama-1.2b-shape", arch="llama", d_model=2048, n_layers=16, n_heads=32, n_kv_heads=8,
               head_dim=64, d_ff=8192, vocab=49152, tied=True, rope_theta=5e5),
    "4b": dict(name="smallthinker-4b-shape", arch="smallthinker", d_model=1536, n_layers=32, n_heads=12,
               n_kv_heads=2, head_dim=128, d_ff=0, vocab=151936, tied=True, rope_theta=1.5e6, n_experts=32,
               n_used=4, d_expert=768),
}
PROMPT, GEN = 256, 128


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prompt_ids(vocab: int, n: int = PROMPT, seed: int = 0) -> list[int]:
    import numpy as np

    return [int(t) for t in np.random.default_rng(seed).integers(3, min(vocab, 30000), n)]


def templates(work: str, recipes=("int4", "q8")) -> dict:
    """Tiny .edge files (models.tiny + edgeconv export) whose keys, dtypes and layouts random_edge copies."""
    from edgeconv.export import export
    from models.tiny import make_tiny

    out = {}
    for arch in ("llama", "smallthinker"):
        folder = os.path.join(work, "tiny-" + arch)
        if not os.path.isdir(folder):
            make_tiny(arch, seed=1, dir=folder)
        for recipe in recipes:
            path = os.path.join(work, f"tiny-{arch}.{recipe}.edge")
            if not os.path.exists(path):
                export(folder, path, recipe=recipe)
            out[(arch, recipe)] = path
    return out


def bench_python(path: str, vocab: int, runs: int, device: str = "cuda", temperature: float = 0.0, **kw) -> dict:
    import edgerun

    m = edgerun.Model(path, device=device, ctx=PROMPT + GEN + 16, **kw)
    ids = prompt_ids(vocab)
    pre, dec, toks = [], [], []
    for r in range(runs + 1):
        m.reset()
        if hasattr(m, "moe_reset_stats"):
            m.moe_reset_stats()
        t0 = time.perf_counter()
        m.eval(ids)
        t1 = time.perf_counter()
        out: list[int] = []
        for _ in m.generate(ids, max_tokens=GEN, temperature=temperature, seed=0, stop_ids=[], tokens_out=out):
            pass
        t2 = time.perf_counter()
        if len(out) != GEN:
            raise RuntimeError(f"generate gave {len(out)} tokens, not {GEN}")
        if r > 0:
            pre.append(PROMPT / (t1 - t0))
            dec.append(GEN / (t2 - t1))
        toks = out
    row = {"prefill_tok_s": statistics.median(pre), "decode_tok_s": statistics.median(dec),
           "prefill_runs": pre, "decode_runs": dec, "first_tokens": toks[:8],
           "gpu_bytes": m.memory_plan.get("device"), "plan": {k: v for k, v in m.memory_plan.items()
                                                              if isinstance(v, (int, float))}}
    if m.is_moe:
        row["moe_stats"] = {k: v for k, v in m.moe_stats.items() if isinstance(v, (int, float)) or v is None}
    del m
    return row


def bench_edgert(exe: str, path: str, runs: int, device: str = "cuda") -> dict:
    rows = []
    for _ in range(runs):
        r = subprocess.run([exe, "bench", path, "--device", device, "--prompt-tokens", str(PROMPT),
                            "--gen-tokens", str(GEN)], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            return {"error": (r.stderr or r.stdout).strip()[-500:]}
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {"prefill_tok_s": statistics.median(x["prefill_tok_s"] for x in rows),
            "decode_tok_s": statistics.median(x["decode_tok_s"] for x in rows), "runs": rows}


def bench_hf(shape: dict, runs: int) -> dict:
    import torch
    import transformers

    s = shape
    common = dict(hidden_size=s["d_model"], num_hidden_layers=s["n_layers"], num_attention_heads=s["n_heads"],
                  num_key_value_heads=s["n_kv_heads"], head_dim=s["head_dim"], vocab_size=s["vocab"],
                  tie_word_embeddings=True, max_position_embeddings=4096)
    if s["arch"] == "llama":
        cfg = transformers.LlamaConfig(intermediate_size=s["d_ff"], **common)
        cls = transformers.LlamaForCausalLM
    else:  # transformers has no SmallThinker: Qwen3-MoE at the same shape (softmax top-4 of 32, SwiGLU experts)
        cfg = transformers.Qwen3MoeConfig(moe_intermediate_size=s["d_expert"], num_experts=s["n_experts"],
                                          num_experts_per_tok=s["n_used"], intermediate_size=s["d_expert"],
                                          decoder_sparse_step=1, mlp_only_layers=[], **common)
        cls = transformers.Qwen3MoeForCausalLM
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = cls(cfg).to(torch.bfloat16).eval()
    ids = torch.tensor([prompt_ids(s["vocab"])], device="cuda")
    pre, dec = [], []
    with torch.no_grad():
        for r in range(runs + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(ids, use_cache=True)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(GEN):
                out = model(tok, past_key_values=past, use_cache=True)
                past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            if r > 0:
                pre.append(PROMPT / (t1 - t0))
                dec.append(GEN / (t2 - t1))
    del model
    torch.cuda.empty_cache()
    return {"model": cls.__name__, "prefill_tok_s": statistics.median(pre), "decode_tok_s": statistics.median(dec),
            "transformers": transformers.__version__, "torch": torch.__version__}


def fmt(v, nd=0):
    return "—" if v is None else f"{v:,.{nd}f}"


def table(rows: list[dict], hf: dict, bw: float) -> str:
    out = ["| shape | recipe | weight MB/token | edgerun py decode | edgerun py prefill | edgert decode | edgert prefill "
           "| HF bf16 eager decode / prefill | roofline tok/s | decode / roofline | vs HF decode | expert hit rate |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        py, rt, h = r.get("python", {}), r.get("edgert", {}), hf.get(r["shape"], {})
        roof = bw / r["weight_bytes"]["total"]
        best = max(py.get("decode_tok_s", 0) or 0, rt.get("decode_tok_s", 0) or 0)
        label = r["recipe"] + (f" (gpu_mem {r['budget']:.0%} of experts)" if r.get("budget") else "") + (
            ", sampled T=1" if r.get("temperature") else "")
        hit = (py.get("moe_stats") or {}).get("hit_rate")
        out.append(f"| {r['shape']} | {label} | {r['weight_bytes']['total'] / 1e6:.0f} | {fmt(py.get('decode_tok_s'))} "
                   f"| {fmt(py.get('prefill_tok_s'))} | {fmt(rt.get('decode_tok_s'))} | {fmt(rt.get('prefill_tok_s'))} "
                   f"| {fmt(h.get('decode_tok_s'), 1)} / {fmt(h.get('prefill_tok_s'))} | {roof:,.0f} "
                   f"| {best / roof:.1%} | {best / h['decode_tok_s'] if h.get('decode_tok_s') else 0:.1f}x "
                   f"| {'—' if hit is None else f'{hit:.3f}'} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="135m,1b,4b")
    ap.add_argument("--recipes", default="int4,q8")
    ap.add_argument("--work", default="/tmp/edge_bench")
    ap.add_argument("--edgert", default=os.path.join(REPO, "build", "gpu", "edgert"))
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument("--moe-budget", type=float, default=0.25, help="expert cache share for the budget row (0: skip)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--variants", action="store_true", help="int4 rows again with graphs off / PDL on / the host sampler")
    ap.add_argument("--bw", type=float, default=4.2e12, help="copy bandwidth, bytes/s (read + write)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    from random_edge import weight_bytes_per_token, write_random_edge

    from edgerun import _core

    info = _core.cuda_info()
    if not info["available"]:
        print(f"bench_cuda: no GPU: {info['error']}", file=sys.stderr)
        return 1
    tpl = templates(a.work, a.recipes.split(","))
    res = {"device": info["device"], "bw": a.bw, "prompt": PROMPT, "gen": GEN, "rows": [], "hf": {}}
    save = lambda: json.dump(res, open(os.path.join(a.out, "bench_cuda.json"), "w"), indent=1)  # noqa: E731
    for sk in a.shapes.split(","):
        s = SHAPES[sk]
        if not a.no_hf:
            log(f"{sk}: HF transformers bf16 eager")
            try:
                res["hf"][sk] = bench_hf(s, a.runs)
            except Exception as e:  # a baseline that fails is reported, not fatal
                res["hf"][sk] = {"error": f"{type(e).__name__}: {e}"[:500]}
            log(f"  {res['hf'][sk]}")
            save()
        for rk in a.recipes.split(","):
            path = os.path.join(a.work, f"{sk}.{rk}.edge")
            t0 = time.perf_counter()
            meta = write_random_edge(tpl[(s["arch"], rk)], path, s)
            wb = weight_bytes_per_token(path)
            log(f"{sk} {rk}: wrote {meta['file_bytes'] / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s; "
                f"{wb['total'] / 1e6:.0f} MB of weights per token")
            row = {"shape": sk, "recipe": rk, "file": meta, "weight_bytes": wb}
            for what, fn in (("python", lambda: bench_python(path, s["vocab"], a.runs)),
                             ("edgert", lambda: bench_edgert(a.edgert, path, a.runs))):
                try:
                    row[what] = fn()
                except Exception as e:
                    row[what] = {"error": f"{type(e).__name__}: {e}"[:500]}
                log(f"  {what}: decode {row[what].get('decode_tok_s')} prefill {row[what].get('prefill_tok_s')} "
                    f"{row[what].get('error', '')}")
            if rk == "int4" and a.variants:
                row["variants"] = bench_variants(path, s["vocab"], a.runs)
            res["rows"].append(row)
            save()
            if "n_experts" in s and a.moe_budget > 0 and rk == "int4":
                for temp in (0.0, 1.0):
                    rows = []
                    if temp:
                        rows.append(("resident", lambda: bench_python(path, s["vocab"], a.runs, temperature=temp)))
                    rows.append(("budget", lambda: bench_budget(path, s, a.moe_budget, a.runs, temperature=temp)))
                    for kind, fn in rows:
                        log(f"{sk} {rk}: {kind}, temperature {temp}" + (f", expert cache at {a.moe_budget:.0%} of the "
                                                                         "expert bytes" if kind == "budget" else ""))
                        row2 = {"shape": sk, "recipe": rk, "weight_bytes": wb, "temperature": temp,
                                "budget": a.moe_budget if kind == "budget" else None}
                        try:
                            row2["python"] = fn()
                        except Exception as e:
                            row2["python"] = {"error": f"{type(e).__name__}: {e}"[:500]}
                        log(f"  {row2['python']}")
                        res["rows"].append(row2)
                        save()
            os.remove(path)
    md = table([r for r in res["rows"] if "weight_bytes" in r], {k: v for k, v in res["hf"].items() if "error" not in v},
               a.bw)
    res["table"] = md
    save()
    with open(os.path.join(a.out, "bench_cuda.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    return 0


def bench_budget(path: str, s: dict, share: float, runs: int, temperature: float = 0.0) -> dict:
    """The MoE file with the expert cache holding `share` of the expert bytes: the GPU's cache (a mirror of
    the store's slots, bounded by gpu_mem) when the plan has one, else the host cache (mem)."""
    import edgerun

    probe = edgerun.Model(path, device="cuda", ctx=PROMPT + GEN + 16)
    plan = dict(probe.memory_plan)
    names = [e["name"] for e in probe._m.memory_buffers] if hasattr(probe._m, "memory_buffers") else []
    del probe
    experts = plan["slot_bytes"] * s["n_experts"] * s["n_layers"]
    mirror = any("device mirror" in n for n in names)
    if mirror:
        gpu_mem = plan["device"] - plan["expert_cache"] + int(share * experts)
        row = bench_python(path, s["vocab"], runs, temperature=temperature, gpu_mem=gpu_mem)
        row["budget_kind"] = f"gpu_mem {gpu_mem} (the GPU's expert cache: {row['plan']['expert_slots']} slots)"
    else:
        mem = plan["total"] - plan["expert_cache"] + int(share * experts)
        row = bench_python(path, s["vocab"], runs, temperature=temperature, mem=mem)
        row["budget_kind"] = f"host mem {mem} (the expert cache is in host memory)"
    return row


def bench_variants(path: str, vocab: int, runs: int) -> dict:
    """The same file with the CUDA backend's switches: graphs off (eager launches), PDL on."""
    out = {}
    for name, env in (("graph_off", {"EDGE_CUDA_GRAPH": "0"}), ("pdl_on", {"EDGE_CUDA_PDL": "1"}),
                      ("host_sampler", {"EDGE_CUDA_SAMPLER": "0"})):
        try:
            with scoped_env(**env):
                r = bench_python(path, vocab, runs)
            out[name] = {"decode_tok_s": r["decode_tok_s"], "prefill_tok_s": r["prefill_tok_s"],
                         "first_tokens": r["first_tokens"]}
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        log(f"  variant {name}: {out[name]}")
    return out


if __name__ == "__main__":
    sys.exit(main())
