"""edgerun's calibrated int4 vs llama.cpp's Q4_K_M / IQ4_NL made with an importance matrix from the SAME text.

What it does (issue 11 §2):
  1. llama-imatrix on the float GGUF (bench/make_float_model.py) with converter/edgeconv/calib_builtin.txt, the
     text `edgeconv export --quant int4` calibrates on by default (chunks of --ctx tokens, as many as the text has);
  2. llama-quantize the float GGUF to Q4_K_M and IQ4_NL, each with that imatrix and without it (llama.cpp's
     default mix: e.g. the 576-wide tensors of SmolLM2 fall back from K-quants, see the tensor mix in the JSON);
  3. perplexity of every file on bench/corpus.py's text with llama.cpp's protocol (the worker llama_ppl of
     bench/workers.py through llama-cpp-python 0.3.36: chunks of --ctx, BOS at chunk start, second half scored,
     the first --chunks chunks) and of the .edge files given with --edge through `edgerun perplexity
     X.edge TEXT --chunks K` — the same tokens: the chunk hash of edgerun's tokenizer (worker edge_tokens) must
     equal llama.cpp's, else the script stops;
  4. bits/weight = file bytes × 8 / parameters of the float model (both engines; metadata included).
Output: a table on stdout and bench/results/bench_imatrix.json.

Needs: llama.cpp's llama-imatrix and llama-quantize of the llama-cpp-python 0.3.36 source (vendor/llama.cpp),
built out of tree (--llama-bin), and llama-cpp-python importable (PYTHONPATH=/tmp/exact_llama/site here):
    cmake -S vendor/llama.cpp -B /tmp/llb -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
    ninja -C /tmp/llb llama-imatrix llama-quantize
Run:
    PYTHONPATH=/tmp/exact_llama/site python bench/bench_imatrix.py --llama-bin /tmp/llb/bin \
        --edge int4=bench/out/s18/int4.edge [--threads 2] [--chunks 8]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_llamacpp import (FLOAT_MODEL, OUT_DIR, REPO, TEXT_FILE, edge_call, ensure_text, gguf_facts,  # noqa: E402
                               gguf_tensor_table, mix, run_worker)

CALIB_TEXT = os.path.join(REPO, "converter", "edgeconv", "calib_builtin.txt")
RESULTS = os.path.join(REPO, "bench", "results", "bench_imatrix.json")
QUANTS = ("Q4_K_M", "IQ4_NL")


def timed(cmd: list[str], log) -> dict:
    """Run a llama.cpp tool; wall and CPU seconds (children's user + sys) of the run."""
    c0, t0 = os.times(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    c1 = os.times()
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc={r.returncode}):\n{(r.stderr or r.stdout)[-3000:]}")
    res = {"wall_s": round(time.perf_counter() - t0, 2),
           "cpu_s": round(c1.children_user + c1.children_system - c0.children_user - c0.children_system, 2)}
    log(f"{os.path.basename(cmd[0])}: {res['wall_s']} s wall, {res['cpu_s']} s CPU")
    return res


def make_imatrix(a, log) -> tuple[str, dict]:
    dst = os.path.join(a.out, "imatrix-calib_builtin.gguf")
    res = timed([os.path.join(a.llama_bin, "llama-imatrix"), "-m", a.float_model, "-f", CALIB_TEXT, "-o", dst,
                 "-c", str(a.ctx), "-t", str(a.threads), "--no-ppl"], log)
    return dst, res


def quantize(a, q: str, imatrix: str | None, log) -> tuple[str, dict]:
    dst = os.path.join(a.out, f"llamacpp-{q}{'-imat' if imatrix else ''}.gguf")
    cmd = [os.path.join(a.llama_bin, "llama-quantize")] + (["--imatrix", imatrix] if imatrix else []) + \
        [a.float_model, dst, q, str(a.threads)]
    return dst, timed(cmd, log)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-bin", required=True, help="folder with llama-imatrix and llama-quantize")
    ap.add_argument("--float-model", default=FLOAT_MODEL)
    ap.add_argument("--edge", action="append", default=[], metavar="NAME=PATH", help="an .edge file to measure too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "imatrix"))
    ap.add_argument("--json", default=RESULTS)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    ensure_text()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    n_params = gguf_facts(a.float_model)["n_params"]
    imat, imat_t = make_imatrix(a, log)
    rows = [{"engine": "llama.cpp", "name": "F16", "path": a.float_model, "imatrix": False}]
    for q in QUANTS:
        for im in (None, imat):
            path, t = quantize(a, q, im, log)
            rows.append({"engine": "llama.cpp", "name": q + (" + imatrix" if im else ""), "path": path,
                         "imatrix": im is not None, "quantize": t})
    for spec in a.edge:
        name, _, path = spec.partition("=")
        rows.append({"engine": "edgerun", "name": name, "path": path})
    ref = None
    for r in rows:
        r["bits_per_weight"] = round(8 * os.path.getsize(r["path"]) / n_params, 4)
        if r["engine"] == "llama.cpp":
            r["mix"] = mix(gguf_tensor_table(r["path"]))
            p = run_worker("llama_ppl", {"model": r["path"], "threads": a.threads, "ctx": a.ctx,
                                         "chunks": a.chunks, "text": TEXT_FILE})
            ref = ref or p
            if p["chunk_tokens_sha256"] != ref["chunk_tokens_sha256"]:
                raise RuntimeError(f"{r['name']}: perplexity chunks differ from the first llama.cpp file's")
            r["ppl"], r["scored"] = p["ppl"], p["scored"]
        else:
            tk = run_worker("edge_tokens", {"model": r["path"], "text": TEXT_FILE, "ctx": a.ctx, "chunks": a.chunks})
            if ref is None or tk["chunk_tokens_sha256"] != ref["chunk_tokens_sha256"]:
                raise RuntimeError(f"{r['name']}: edgerun's perplexity chunks are not llama.cpp's: not comparable")
            out = edge_call("edgerun", ["perplexity", r["path"], TEXT_FILE, "--ctx", str(a.ctx), "--chunks",
                                        str(a.chunks), "--threads", str(a.threads), "--json"])
            res = json.loads([ln for ln in out["stdout"].splitlines() if ln.startswith("{")][-1])
            r["ppl"], r["scored"] = res["ppl"], res.get("tokens")
        log(f"{r['name']}: {r['bits_per_weight']:.3f} b/w, ppl {r['ppl']:.4f}")
    f16 = rows[0]["ppl"]
    print(f"| file | bits/w | ppl | Δ vs F16 |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} ({r['engine']}) | {r['bits_per_weight']:.3f} | {r['ppl']:.3f} | "
              f"{100 * (r['ppl'] / f16 - 1):+.1f} % |")
    doc = {"protocol": {"text": TEXT_FILE, "ctx": a.ctx, "chunks": a.chunks, "scored": "second half of each chunk",
                        "chunk_tokens_sha256": ref["chunk_tokens_sha256"], "threads": a.threads},
           "imatrix": {"text": os.path.relpath(CALIB_TEXT, REPO), "ctx": a.ctx, **imat_t},
           "rows": [{k: (os.path.relpath(v, REPO) if k == "path" else v) for k, v in r.items()} for r in rows],
           "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_avg": os.getloadavg()}
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as fh:
        json.dump(doc, fh, indent=1)
    log(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
