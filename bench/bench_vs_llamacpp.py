"""edgerun vs llama.cpp on one machine, one run, same thread count, same float model, same text.

What it measures, per (engine, quantization):
  size MB         file bytes / 1e6
  bits/weight     file bytes × 8 / n_params (n_params of the float model, all tensors)
  prefill tok/s   256-token prompt, one eval, logits of the last token only
  decode tok/s    128 greedy tokens after that prompt, one token per step
  roofline tok/s  measured read bandwidth ÷ bytes read per decoded token (all weight tensors — the tied
                  head reads the whole embedding — plus an f16 KV cache at the mean decode position)
  ppl             llama.cpp's protocol: consecutive chunks of --ctx tokens, BOS at chunk start if the
                  model adds BOS, only the second half of each chunk scored; first --chunks chunks
  peak RSS MiB    VmHWM of the fresh process that ran the speed measurement (both engines are a
                  Python process around a native library); see sysmeasure.run_process
  other load      CPU cores used by other processes during the speed runs (median); above ~0.2 the
                  timings are contended, and llama.cpp's spinning thread barrier suffers most then
Speed runs in --runs rounds; each round runs every model once, engines interleaved, each in a fresh
process that does one warm-up run (page faults of the mmap, thread start) then one timed run; the
table shows medians over rounds. Before each, it waits up to --quiet-wait s for the machine to quiet.

llama.cpp side (llama-cpp-python, bench/workers.py): the float GGUF is quantized with llama.cpp's own
quantizer (llama_model_quantize, default params: llama.cpp's default mix, e.g. the tied embedding of a
Q4_0 model is Q8_0 because 576 is not a multiple of 256) to Q4_0, IQ4_NL (no imatrix) and Q8_0, and
to "Q4_0_PURE" (params.pure: every weight Q4_0, ~4.5 bits/weight like edgerun's int4 budget); the
F16 file itself is measured too. Each row's JSON has its dtype mix (fraction of parameters per type).
Speed: Llama(n_ctx=384, n_batch=384, logits_all=False), wall clock around eval() and the argmax of
the last logits (llama_perf_context's own rates are kept in the JSON). llama.cpp's AMX backend
crashes on this kind of machine, so it is denied (workers.deny_amx; --llama-amx to allow it).

edgerun side, through its CLIs from this tree (contract):
  edgeconv export FLOAT.gguf -o X.edge --quant RECIPE
  edgerun bench X.edge --threads N --prompt-tokens 256 --gen-tokens 128 --repeat 2 --json
      -> {"prefill_runs": [...], "decode_runs": [...], ...}   (run 0 is the warm-up)
  edgerun perplexity X.edge TEXTFILE --ctx 512 --chunks K --threads N --json  -> {"ppl", "tokens", ...}
Each engine tokenizes the same text file with its own tokenizer; the perplexity chunks are compared
by hash (workers.edge_tokens) and any difference is a warning. If the edgerun tools are missing or
fail, that half fails loudly: the llama.cpp half is still printed, the error is printed and recorded
in the JSON, and the exit status is 2 (unless --llamacpp-only).

Inputs: the float model from bench/make_float_model.py (built if missing), the text of bench/corpus.py.
Outputs: bench/out/bench_vs_llamacpp.{json,md} (gitignored) and a table on stdout.
Run:    python bench/bench_vs_llamacpp.py [--threads 2] [--chunks 20] [--runs 3] [--llamacpp-only]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sysmeasure import (HWM_SNIPPET, HWM_TAG, cpu_has_amx, last_json_object, loadavg, machine_info,  # noqa: E402
                        measure_bandwidth, run_process, wait_for_quiet)
from workers import RESULT_TAG  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
OUT_DIR = os.path.join(BENCH_DIR, "out")
FLOAT_MODEL = os.path.join(OUT_DIR, "smollm2-135m-float.f16.gguf")
TEXT_FILE = os.path.join(OUT_DIR, "corpus.txt")
WORKERS_PY = os.path.join(BENCH_DIR, "workers.py")
# name -> (llama_ftype (llama.h), pure): pure = every weight in that type, no default mix
LLAMA_FTYPES = {"F16": (1, False), "Q4_0": (2, False), "Q4_0_PURE": (2, True), "Q8_0": (7, False),
                "IQ4_NL": (25, False)}

LLAMA_NO_AMX = cpu_has_amx()  # see deny_amx(); --llama-amx turns it back on


def run_worker(kind: str, params: dict, timeout: float = 900) -> dict:
    """Run one of bench/workers.py's workers in a fresh interpreter; returns its result dict plus the
    process's peak_rss_mib and foreign_cores (sysmeasure.run_process)."""
    params = dict(params, no_amx=LLAMA_NO_AMX)
    code = (f"{HWM_SNIPPET}; sys.argv = [{WORKERS_PY!r}, {kind!r}, {json.dumps(params)!r}]; "
            f"import runpy; runpy.run_path(sys.argv[0], run_name='__main__')")
    r = run_process([sys.executable, "-c", code], timeout)
    lines = [ln for ln in r["stdout"].splitlines() if ln.startswith(RESULT_TAG)]
    if r["rc"] != 0 or not lines:
        raise RuntimeError(f"worker {kind} failed (rc={r['rc']}):\n{r['stderr'][-3000:]}")
    res = json.loads(lines[-1][len(RESULT_TAG):])
    res["peak_rss_mib"] = r["peak_rss_mib"]
    res["foreign_cores"] = r["foreign_cores"]
    return res


def run_llamacpp_perplexity(model: str, threads: int, chunks: int, ctx: int = 512) -> dict:
    """Perplexity of a GGUF with llama.cpp on the benchmark text (used by make_float_model --verify)."""
    ensure_text()
    return run_worker("llama_ppl", {"model": model, "threads": threads, "ctx": ctx, "chunks": chunks,
                                    "text": TEXT_FILE})


# ----------------------------------------------------------------------------- edgerun side (CLIs)
def edge_cmd(tool: str) -> list[str]:
    """Run the tree's edgeconv / edgerun CLI (not an installed copy) in a fresh interpreter."""
    paths = [os.path.join(REPO, "converter"), os.path.join(REPO, "runtime")]
    code = (f"{HWM_SNIPPET}; sys.path[:0] = {paths!r}; sys.argv[0] = {tool!r}; "
            f"from {tool}.cli import main; sys.exit(main())")
    return [sys.executable, "-c", code]


def edge_call(tool: str, args: list[str], timeout: float = 900) -> dict:
    r = run_process(edge_cmd(tool) + args, timeout)
    if r["rc"] != 0:
        err = "\n".join(ln for ln in (r["stderr"] or r["stdout"]).splitlines() if not ln.startswith(HWM_TAG))
        raise RuntimeError(f"`{tool} {' '.join(args)}` failed (rc={r['rc']}):\n{err[-3000:]}")
    return r


EDGE_DTYPES = ["f32", "f16", "bf16", "q8_0", "int4_32", "int4_64", "int4_128", "int4a_32", "int4a_64",
               "int4a_128", "mxint8", "mxfp8", "mxfp6", "mxfp4", "i32"]  # ids 0.. (docs/FORMAT.md)


def edge_tensor_table(path: str) -> list[tuple[str, str, int, int]]:
    """(name, dtype, n_elements, nbytes) of every tensor of an .edge file (docs/FORMAT.md)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(128)
        if head[:8] != b"EDGEFILE":
            raise RuntimeError(f"{path}: not an .edge file")
        table_offset, table_size = struct.unpack_from("<QQ", head, 40)
        (n_tensors,) = struct.unpack_from("<I", head, 56)
        f.seek(table_offset)
        tab = f.read(table_size)
    pos, out = 0, []
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", tab, pos)
        name = tab[pos + 2:pos + 2 + name_len].decode("utf-8")
        pos += 2 + name_len
        dtype, ndim = struct.unpack_from("<II", tab, pos)
        shape = struct.unpack_from(f"<{ndim}Q", tab, pos + 8)
        pos += 8 + 8 * ndim
        _off, nbytes = struct.unpack_from("<QQ", tab, pos)
        pos += 16 + 4
        dt = EDGE_DTYPES[dtype] if dtype < len(EDGE_DTYPES) else str(dtype)
        out.append((name, dt, int(np.prod(shape)), int(nbytes)))
    return out


def gguf_tensor_table(path: str) -> list[tuple[str, str, int, int]]:
    import gguf

    return [(t.name, t.tensor_type.name.lower(), int(t.n_elements), int(t.n_bytes))
            for t in gguf.GGUFReader(path).tensors]


def mix(table: list[tuple[str, str, int, int]]) -> dict:
    """{dtype: fraction of the parameters}, plus the dtype of the token embedding (tied head)."""
    total = sum(t[2] for t in table)
    frac: dict[str, float] = {}
    for _, dt, n, _ in table:
        frac[dt] = frac.get(dt, 0.0) + n / total
    embd = next((dt for name, dt, _, _ in table if name.startswith(("tok_embd", "token_embd"))), None)
    return {"param_fraction": {k: round(v, 4) for k, v in sorted(frac.items(), key=lambda kv: -kv[1])},
            "token_embd": embd}


# ----------------------------------------------------------------------------- orchestration
def ensure_text() -> str:
    sys.path.insert(0, BENCH_DIR)
    import corpus  # noqa: E402  (sibling file)

    os.makedirs(OUT_DIR, exist_ok=True)
    text = corpus.load_text()
    if not os.path.exists(TEXT_FILE) or open(TEXT_FILE, encoding="utf-8").read() != text:
        with open(TEXT_FILE, "w", encoding="utf-8") as f:
            f.write(text)
    return TEXT_FILE


def gguf_facts(path: str) -> dict:
    import gguf

    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    get = lambda k: int(r.fields[f"{arch}.{k}"].contents())  # noqa: E731
    n_head, n_kv = get("attention.head_count"), get("attention.head_count_kv")
    return {"n_params": int(sum(int(t.n_elements) for t in r.tensors)),
            "tensor_bytes": int(sum(int(t.n_bytes) for t in r.tensors)),
            "n_layers": get("block_count"), "kv_dim": get("embedding_length") // n_head * n_kv}


def prepare_llamacpp(a, log) -> list[dict]:
    """Quantize the float model with llama.cpp's quantizer; one entry per --llama-quants."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"llama-cpp-python is not installed ({e}); pip install llama-cpp-python") from e
    models = []
    for q in a.llama_quants:
        dst = a.float_model if q == "F16" else os.path.join(OUT_DIR, f"llamacpp-{q.lower()}.gguf")
        if dst != a.float_model and not (a.reuse and os.path.exists(dst)):
            ftype, pure = LLAMA_FTYPES[q]
            res = run_worker("llama_quantize", {"src": a.float_model, "dst": dst, "ftype": ftype, "pure": pure,
                                                "threads": a.threads})
            log(f"llama.cpp quantize {q}: {res['quantize_s']:.1f} s")
        models.append({"engine": "llama.cpp", "quant": q, "path": dst, "table": gguf_tensor_table(dst)})
    return models


def prepare_edgerun(a, log, llama_tokens: dict | None) -> tuple[list[dict], list[str]]:
    """Export the float model with edgeconv, one entry per --edge-recipes; check that edgerun's tokenizer
    gives the same perplexity chunks as llama.cpp's (llama_tokens: a llama.cpp ppl result)."""
    models, warnings = [], []
    for recipe in a.edge_recipes:
        dst = os.path.join(OUT_DIR, f"edgerun-{recipe}.edge")
        base, *extras = recipe.split("+")  # "int4+gptq": recipe int4, calibrated on edgeconv's built-in text
        flags = {"calib": ["--calib", "stdlib"], "gptq": ["--calib", "stdlib", "--gptq"]}
        extra_args = [f for e in extras for f in flags[e]]
        if not (a.reuse and os.path.exists(dst)):
            t0 = time.perf_counter()
            edge_call("edgeconv", ["export", a.float_model, "-o", dst, "--quant", base, "-q"] + extra_args)
            log(f"edgeconv export {recipe}: {time.perf_counter() - t0:.1f} s")
        models.append({"engine": "edgerun", "quant": recipe, "path": dst, "table": edge_tensor_table(dst)})
    if models and llama_tokens:
        tk = run_worker("edge_tokens", {"model": models[0]["path"], "text": TEXT_FILE, "ctx": a.ctx,
                                        "chunks": a.chunks})
        same = tk["chunk_tokens_sha256"] == llama_tokens["chunk_tokens_sha256"]
        log(f"tokenizers: llama.cpp {llama_tokens['text_tokens']} tokens, edgerun {tk['text_tokens']}; "
            f"perplexity chunks {'identical' if same else 'DIFFER'}")
        if not same or tk["text_tokens"] != llama_tokens["text_tokens"]:
            warnings.append(f"the tokenizers disagree on {TEXT_FILE}: llama.cpp {llama_tokens['text_tokens']} "
                            f"tokens, edgerun {tk['text_tokens']}; chunks identical: {same}; ppl not comparable")
    return models, warnings


def speed_once(m: dict, a) -> dict:
    """One fresh process: a warm-up run (page faults of the mmap, thread start), then one timed run."""
    if m["engine"] == "llama.cpp":
        r = run_worker("llama_speed", {"model": m["path"], "threads": a.threads, "prompt_tokens": a.prompt_tokens,
                                       "gen_tokens": a.gen_tokens, "runs": 1, "text": TEXT_FILE})
        return {"prefill_tok_s": r["prefill_tok_s"], "decode_tok_s": r["decode_tok_s"],
                "peak_rss_mib": r["peak_rss_mib"], "foreign_cores": r["foreign_cores"], "detail": r}
    c = edge_call("edgerun", ["bench", m["path"], "--threads", str(a.threads), "--prompt-tokens", str(a.prompt_tokens),
                              "--gen-tokens", str(a.gen_tokens), "--repeat", "2", "--json"])
    j = last_json_object(c["stdout"])
    return {"prefill_tok_s": j["prefill_runs"][1], "decode_tok_s": j["decode_runs"][1],
            "peak_rss_mib": c["peak_rss_mib"], "foreign_cores": c["foreign_cores"], "detail": j}


def perplexity(m: dict, a) -> dict:
    if m["engine"] == "llama.cpp":
        return run_worker("llama_ppl", {"model": m["path"], "threads": a.threads, "ctx": a.ctx, "chunks": a.chunks,
                                        "text": TEXT_FILE})
    c = edge_call("edgerun", ["perplexity", m["path"], TEXT_FILE, "--ctx", str(a.ctx), "--chunks", str(a.chunks),
                              "--threads", str(a.threads), "--json"])
    pp = last_json_object(c["stdout"])
    return dict(pp, scored=pp.get("tokens"))


def measure(models: list[dict], a, log) -> str | None:
    """Speed in --runs rounds, each round running every model once in turn (so both engines see the
    same machine conditions), then perplexity. Fills each model dict; returns the edgerun error, if any
    (its models are then dropped)."""
    edge_error = None

    def guarded(m, fn):
        nonlocal edge_error
        if m["engine"] == "llama.cpp":
            return fn()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 — any failure of the engine under test is reported, not fatal
            edge_error = edge_error or f"{type(e).__name__}: {e}"
            m["failed"] = True
            return None

    for rnd in range(a.runs):
        for m in models:
            if m.get("failed"):
                continue
            wait_for_quiet(a.quiet_wait)
            res = guarded(m, lambda: speed_once(m, a))
            if res:
                m.setdefault("speed_runs", []).append(res)
                log(f"round {rnd + 1}/{a.runs} {m['engine']} {m['quant']}: pp {res['prefill_tok_s']:.1f} tok/s, "
                    f"tg {res['decode_tok_s']:.1f} tok/s, other load {res['foreign_cores']:.2f}")
    for m in models:
        if not m.get("failed") and not m.get("ppl_detail"):
            m["ppl_detail"] = guarded(m, lambda: perplexity(m, a))
            if m["ppl_detail"]:
                log(f"{m['engine']} {m['quant']}: ppl {m['ppl_detail']['ppl']:.4f}")
    return edge_error


def make_row(m: dict, n_params: int, kv_bytes: float) -> dict:
    runs = m["speed_runs"]
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    size = os.path.getsize(m["path"])
    return {"engine": m["engine"], "quant": m["quant"], "file": os.path.relpath(m["path"], REPO),
            "size_mb": size / 1e6, "bits_per_weight": size * 8 / n_params,
            "bytes_per_token": sum(t[3] for t in m["table"]) + kv_bytes, "mix": mix(m["table"]),
            "prefill_tok_s": med("prefill_tok_s"), "decode_tok_s": med("decode_tok_s"),
            "peak_rss_mib": max(r["peak_rss_mib"] or 0.0 for r in runs), "foreign_cores": med("foreign_cores"),
            "ppl": m["ppl_detail"]["ppl"], "speed_runs": runs, "ppl_detail": m["ppl_detail"]}


CONTENDED_CORES = 0.2  # other processes' median CPU during a row's speed runs above this: marked "*"


def table(rows: list[dict], bw_gb_s: float) -> tuple[list[str], list[list[str]]]:
    """Rows formatted for print; speeds of contended rows, and ratios involving them, end in "*"."""
    base = next((r for r in rows if r["engine"] == "llama.cpp" and r["quant"] == "Q4_0"), None)
    ref = next((r for r in rows if r["engine"] == "llama.cpp" and r["quant"] == "F16"), None)
    hdr = ["engine", "quant", "size MB", "bits/w", "prefill tok/s", "decode tok/s", "roofline tok/s",
           "pp × Q4_0", "tg × Q4_0", "ppl", "Δppl vs F16", "peak RSS MiB", "other load"]
    out = []
    busy = lambda r: r.get("foreign_cores", 0.0) > CONTENDED_CORES  # noqa: E731
    for r in rows:
        roof = bw_gb_s * 1e9 / r["bytes_per_token"]
        f = lambda k, fmt: (fmt % r[k]) if r.get(k) is not None else "—"  # noqa: E731
        star = "*" if busy(r) else ""
        rstar = "*" if busy(r) or (base and busy(base)) else ""
        out.append([r["engine"], r["quant"], f("size_mb", "%.1f"), f("bits_per_weight", "%.2f"),
                    f("prefill_tok_s", "%.1f") + star, f("decode_tok_s", "%.1f") + star, "%.0f" % roof,
                    "%.2f" % (r["prefill_tok_s"] / base["prefill_tok_s"]) + rstar if base else "—",
                    "%.2f" % (r["decode_tok_s"] / base["decode_tok_s"]) + rstar if base else "—",
                    f("ppl", "%.4f"),
                    "%+.2f%%" % (100 * (r["ppl"] / ref["ppl"] - 1)) if ref else "—",
                    f("peak_rss_mib", "%.0f"), f("foreign_cores", "%.2f")])
    return hdr, out


def render(hdr, body) -> tuple[str, str]:
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(hdr)] if body else [len(h) for h in hdr]
    text = "\n".join(["  ".join(c.rjust(w[i]) for i, c in enumerate(line)) for line in [hdr] + body])
    md = "\n".join(["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"] +
                   ["| " + " | ".join(b) + " |" for b in body])
    return text, md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="edgerun vs llama.cpp benchmark (see the module doc)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=20, help="perplexity chunks (of --ctx tokens)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3, help="rounds of timed runs (median)")
    ap.add_argument("--quiet-wait", type=float, default=10.0,
                    help="before each speed run, wait up to this many seconds for other processes to go "
                         "below 0.25 cores (the 'other load' column shows what remained)")
    ap.add_argument("--float-model", default=FLOAT_MODEL)
    ap.add_argument("--llama-quants", default="F16,Q4_0,Q4_0_PURE,IQ4_NL,Q8_0",
                    help="F16 is the float model as it is (the Δppl reference); Q4_0_PURE is Q4_0 without "
                         "llama.cpp's default mix (the tied embedding Q4_0 too)")
    ap.add_argument("--edge-recipes", default="f16,int4+gptq,int4,q8",
                    help="edgeconv recipes, paired in this order with --llama-quants in each speed round; "
                         "+calib / +gptq add --calib stdlib / --calib stdlib --gptq (calibration text: "
                         "stdlib docstrings, disjoint from the perplexity text)")
    ap.add_argument("--llamacpp-only", action="store_true", help="skip the edgerun half (exit 0)")
    ap.add_argument("--llama-amx", action="store_true",
                    help="let llama.cpp use its AMX backend (off by default: it segfaults here, see deny_amx)")
    ap.add_argument("--reuse", action="store_true", help="reuse quantized files already in bench/out")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "bench_vs_llamacpp"))
    a = ap.parse_args(argv)
    a.llama_quants = [q for q in a.llama_quants.split(",") if q]
    a.edge_recipes = [q for q in a.edge_recipes.split(",") if q]
    global LLAMA_NO_AMX
    LLAMA_NO_AMX = LLAMA_NO_AMX and not a.llama_amx
    unknown = [q for q in a.llama_quants if q not in LLAMA_FTYPES]
    if unknown:
        ap.error(f"unknown llama.cpp quant(s) {unknown}; known: {sorted(LLAMA_FTYPES)}")

    t_start = time.perf_counter()
    log = lambda s: print(f"[{time.perf_counter() - t_start:6.1f}s] {s}", flush=True)  # noqa: E731
    os.makedirs(OUT_DIR, exist_ok=True)
    if not os.path.exists(a.float_model):
        log("float model missing: running make_float_model.py")
        rc = subprocess.call([sys.executable, os.path.join(BENCH_DIR, "make_float_model.py"), "-o", a.float_model])
        if rc != 0:
            raise SystemExit("make_float_model.py failed")
    ensure_text()
    sys.path.insert(0, BENCH_DIR)
    import corpus  # noqa: E402

    mach = machine_info()
    mach["loadavg_start"] = loadavg()
    mach["llama_amx_disabled"] = LLAMA_NO_AMX
    log(f"machine: {mach.get('Model name')}, {mach['cpu_count']} CPUs, flags {' '.join(mach['flags'])}, "
        f"load {mach['loadavg_start']:.2f}")
    if mach["loadavg_start"] > 0.5 * (os.cpu_count() or 1):
        log("WARNING: the machine is busy (load average above half the cores): timings will be noisy")
    facts = gguf_facts(a.float_model)
    kv_bytes = facts["n_layers"] * 2 * facts["kv_dim"] * 2 * (a.prompt_tokens + a.gen_tokens / 2)
    wait_for_quiet(a.quiet_wait)
    bw_dram = measure_bandwidth(1 << 30, a.threads)
    bw_model = measure_bandwidth(96 << 20, a.threads)
    log(f"bandwidth, {a.threads} threads: 1 GiB buffer read {bw_dram['read_gb_s']:.1f} GB/s "
        f"(copy {bw_dram['copy_gb_s']:.1f}); 96 MiB buffer read {bw_model['read_gb_s']:.1f} GB/s")

    models = prepare_llamacpp(a, log)
    edge_error, warnings, edge_models = None, [], []
    if not a.llamacpp_only:
        try:  # the tokenizer check needs one llama.cpp tokenization: take it from the first perplexity run
            llama_tokens = perplexity(models[0], a)
            models[0]["ppl_detail"] = llama_tokens
            edge_models, warnings = prepare_edgerun(a, log, llama_tokens)
        except Exception as e:  # noqa: BLE001 — report any failure of the other engine, then exit 2
            edge_error = f"{type(e).__name__}: {e}"
    for w in warnings:
        log("WARNING: " + w)
    # interleave the engines within a round: llama.cpp F16, edgerun f16, llama.cpp Q4_0, edgerun int4, ...
    order = [m for pair in zip(models, edge_models) for m in pair] + models[len(edge_models):] + \
        edge_models[len(models):]
    edge_error = measure(order, a, log) or edge_error
    rows = [make_row(m, facts["n_params"], kv_bytes) for m in order if not m.get("failed")]
    scored = {r["ppl_detail"].get("scored") for r in rows}
    if len(scored) > 1:
        warnings.append(f"the rows scored different numbers of tokens {sorted(map(str, scored))}; ppl not comparable")
        log("WARNING: " + warnings[-1])
    mach["loadavg_end"] = loadavg()

    hdr, body = table(rows, bw_dram["read_gb_s"])
    text, md = render(hdr, body)
    caption = (f"{mach.get('Model name')} ({mach['cpu_count']} CPUs), {a.threads} threads; SmolLM2-135M-Instruct "
               f"float (bench/make_float_model.py); prompt {a.prompt_tokens}, decode {a.gen_tokens} greedy "
               f"tokens, median of {a.runs} rounds (engines interleaved; each a fresh process after a warm-up "
               f"run); ppl: {corpus.describe()['name']} (Python {platform.python_version()}), {a.chunks} chunks × "
               f"{a.ctx}, 2nd half scored; roofline = {bw_dram['read_gb_s']:.1f} GB/s read ÷ (weights + f16 KV "
               f"at mean position); llama.cpp {rows[0]['speed_runs'][0]['detail']['llama_cpp_version']} default "
               f"quant mix (no imatrix); edgerun '+gptq'/'+calib' rows are calibrated with --calib stdlib (Python's "
               f"stdlib docstrings, disjoint from the ppl text); plain int4 is the CLI's default, calibrated on "
               f"its shipped texts with GPTQ, the other plain recipes are not calibrated; other load = CPU cores used by "
               f"other processes during the speed runs (median); * = above {CONTENDED_CORES} cores: contended, "
               f"re-run on an idle machine"
               + (", AMX backend off (llama.cpp #20824)." if LLAMA_NO_AMX else "."))
    print()
    print(text)
    print()
    print(caption)
    result = {"machine": mach, "args": vars(a), "corpus": corpus.describe(), "float_model": facts,
              "kv_bytes_per_token": kv_bytes, "bandwidth": {"dram_1gib": bw_dram, "buffer_96mib": bw_model},
              "rows": rows, "warnings": warnings, "edgerun_error": edge_error,
              "wall_s": time.perf_counter() - t_start}
    with open(a.out + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    with open(a.out + ".md", "w", encoding="utf-8") as f:
        f.write(md + "\n\n" + caption + "\n")
    log(f"wrote {a.out}.json and {a.out}.md")
    if edge_error:
        print(f"\nERROR: the edgerun half failed, only llama.cpp was measured:\n{edge_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
