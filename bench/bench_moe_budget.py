"""MoE under a memory budget: edgerun (experts streamed, `--mem B`) vs llama.cpp (mmap) in the same cgroup.

One command: python bench/bench_moe_budget.py            (4B shape; see bench/README.md for the time)
             python bench/bench_moe_budget.py --preset tiny --budgets 40MB,60MB,none   (minutes; a smoke run)

Models (built once into --work and reused; rebuilt when missing, when the random_moe arguments change, or
when older than the folder they come from; delete a file to force its rebuild):
  <work>/<preset>-<routing>/hf      models.random_moe --preset P [--skew S]: a random SmallThinker folder
                                    (bf16). "uniform" = plain random weights: the router's logits of random
                                    weights are nearly exchangeable, every expert is about equally likely,
                                    the WORST case for an expert cache. "skew" = random_moe --skew: router
                                    rows scaled so a few experts take most tokens (what trained
                                    SmallThinker's balance loss produces, report §5.2).
  <work>/.../model.edge             edgeconv export hf -o model.edge --quant int4 (experts as nested int4_32
                                    planes, 4.5 bits/weight)
  <work>/.../model.gguf             bench/gguf_smallthinker.py: Q4_0 (4.5 bits/weight) of the same bf16 weights.
                                    The quantizers differ (ggml Q4_0 absmax blocks vs edgeconv's int4_32
                                    scale search), so the two files are not bit-identical models.

Measurements, per routing case x budget B in --budgets ("none" = unlimited), each in a fresh process inside
a fresh cgroup v1 memory child (bench/cgroup.py) whose limit is B (memory + swap; page cache counts), with
the model file dropped from the page cache first (cold start):
  edgerun     edgerun bench model.edge --mem B --ctx C --threads T --prompt-tokens P --gen-tokens G
              --repeat R+1 --json     (no --mem when unlimited: every expert resident)
  llama.cpp   llama-cpp-python Llama(use_mmap=True, n_ctx=C, n_batch=n_ubatch=min(P,128), same threads):
              eval of the same P prompt ids, then G greedy tokens one eval() each, R+1 rounds.
              Two configurations, both reported: "default" (CPU_REPACK on: llama.cpp copies Q4_0 weights into
              repacked anonymous buffers at load, its fastest path, which needs the whole model in RAM) and
              "mmap" (use_extra_bufts = false: weights stay file-backed pages the kernel can evict and re-read,
              the only way llama.cpp can run a model larger than the budget). The ratio uses the faster one
              that did not fail. AMX denied as in bench_vs_llamacpp (llama.cpp #20824).
  Round 0 of each process is a warm-up (thread pools, first faults; edgerun's expert cache fills); tok/s
  are medians over rounds 1..R. The prompt ids are edgerun bench's: default_rng(seed).integers(0, vocab, P).
  Reported per run: prefill / decode tok/s, OOM (the kernel OOM killer fired), exit status, cgroup peak
  (memory.max_usage_in_bytes: anonymous + page cache) and the process's VmHWM, other load; for edgerun
  also its "memory" plan and "moe" statistics (hit rate, predictor recall, MB read per token, I/O stall).
Greedy check: edgerun generate --temp 0 under --mem B* (in a B* cgroup; B* = --target-budget, 1GB) must give
the same tokens as fully resident — streaming must not change results.
Ratios at B*: edgerun / llama.cpp decode (target >= 3) and edgerun / edgerun unlimited (target >= 0.5).

Outputs: <out>.json, <out>.md, <out>.png (decode and prefill tok/s vs budget, both engines, both routings).
Results are cached per measurement in <work>/results.json (keyed by the model file, the parameters and the
engine build: edgerun's _core file, llama-cpp-python's version), so an interrupted run resumes and a rebuilt
runtime is measured again; --fresh re-measures everything.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from cgroup import drop_file_cache, parse_bytes, run_limited  # noqa: E402
from sysmeasure import (HWM_SNIPPET, cpu_has_amx, last_json_object, loadavg, machine_info,  # noqa: E402
                        run_process, wait_for_quiet)

RESULT_TAG = "@@RESULT "
OUT_DIR = os.path.join(BENCH_DIR, "out")
CONTENDED_CORES = 0.2
LLAMA_VARIANTS = ("default", "mmap")


# ----------------------------------------------------------------------------- pure helpers (tested)
def bench_prompt(seed: int, vocab: int, n: int) -> list[int]:
    """The prompt ids `edgerun bench --seed seed` evaluates (runtime/edgerun/cli.py cmd_bench)."""
    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, size=n).astype(np.int32)]


def budget_bytes(b: str) -> int | None:
    return None if b.lower() in ("none", "unlimited", "inf") else parse_bytes(b)


def budget_label(b: str) -> str:
    return "unlimited" if budget_bytes(b) is None else b


def timed_median(runs: list[float] | None) -> float | None:
    """Median of rounds 1.. (round 0 is the warm-up); None when nothing was timed."""
    if not runs or len(runs) < 2:
        return None
    return statistics.median(runs[1:])


def measurement_key(routing: str, engine: str, budget: str) -> str:
    return f"{routing}|{engine}|{budget_label(budget)}"


def file_stamp(path: str) -> list:
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, int(st.st_mtime)]


def engine_stamp(engine: str) -> list:
    """What identifies the engine build: edgerun's _core extension file (size, mtime), llama-cpp-python's
    version. Part of a cached measurement's key, so a rebuilt runtime is measured again."""
    if engine == "edgerun":
        import glob

        so = sorted(glob.glob(os.path.join(REPO, "runtime", "edgerun", "_core*.so")))
        return file_stamp(so[0]) if so else ["no _core"]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return ["llama_cpp_python", version("llama_cpp_python")]
    except PackageNotFoundError:
        return ["llama_cpp_python", None]


def best_llama(rows: dict[str, dict]) -> dict | None:
    """The llama.cpp configuration with the highest decode tok/s among those that completed."""
    ok = [r for r in rows.values() if r and r.get("decode_tok_s")]
    return max(ok, key=lambda r: r["decode_tok_s"]) if ok else None


def ratios(table: dict, routing: str, budget: str = "1GB") -> dict:
    """decode ratios at `budget` for one routing case (keys say 1gb: the target budget of the issue);
    None where a side is missing or failed."""
    b = budget_label(budget)
    e1 = table.get((routing, "edgerun", b)) or {}
    eu = table.get((routing, "edgerun", "unlimited")) or {}
    l1 = best_llama({v: table.get((routing, f"llama.cpp/{v}", b)) for v in LLAMA_VARIANTS}) or {}
    d = lambda r: r.get("decode_tok_s")  # noqa: E731
    return {
        "edgerun_1gb_over_llamacpp_1gb": d(e1) / d(l1) if d(e1) and d(l1) else None,
        "edgerun_1gb_over_unlimited": d(e1) / d(eu) if d(e1) and d(eu) else None,
        "llamacpp_1gb_variant": l1.get("engine"),
    }


def status_of(r: dict) -> str:
    if r.get("oom_killed"):
        return "OOM"
    if r.get("timed_out"):
        return "timeout"
    if r.get("rc") not in (0, None):
        return f"rc {r['rc']}"
    return "ok"


def verdict(x: float | None, target: float) -> str:
    return "not measured" if x is None else ("met" if x >= target else "NOT met")


def fmt(v, spec: str, star: bool = False) -> str:
    return "—" if v is None else (spec % v) + ("*" if star else "")


def markdown_table(rows: list[dict]) -> str:
    hdr = ["routing", "engine", "budget", "status", "decode tok/s", "prefill tok/s", "cgroup peak MiB",
           "VmHWM MiB", "expert slots", "hit rate", "recall", "MB read/token", "I/O stall s", "other load"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
    for r in rows:
        busy = (r.get("foreign_cores") or 0.0) > CONTENDED_CORES
        m = r.get("moe_summary") or {}
        out.append("| " + " | ".join([
            r["routing"], r["engine"], r["budget"], status_of(r),
            fmt(r.get("decode_tok_s"), "%.2f", busy), fmt(r.get("prefill_tok_s"), "%.1f", busy),
            fmt(r.get("max_usage_mib"), "%.0f"), fmt(r.get("peak_rss_mib"), "%.0f"),
            fmt((r.get("memory") or {}).get("expert_slots"), "%d"), fmt(m.get("hit_rate"), "%.3f"), fmt(m.get("recall"), "%.3f"), fmt(m.get("mb_read_per_token"), "%.1f"),
            fmt(m.get("io_stall_s"), "%.2f"), fmt(r.get("foreign_cores"), "%.2f")]) + " |")
    return "\n".join(out)


# ----------------------------------------------------------------------------- llama.cpp worker (child)
def llama_worker(p: dict) -> dict:
    """Runs in the child: load the GGUF, R+1 rounds of prefill + greedy decode on the bench prompt."""
    import llama_cpp
    from workers import deny_amx

    if p.get("no_amx"):
        deny_amx()
    if p["variant"] == "mmap":  # no CPU_REPACK copy: weights stay evictable file pages
        import llama_cpp.llama_cpp as lc  # the module Llama.__init__ takes its default params from

        orig = lc.llama_model_default_params

        def params_no_repack():
            mp = orig()
            mp.use_extra_bufts = False
            return mp
        lc.llama_model_default_params = params_no_repack
    ub = min(p["prompt_tokens"], 128)
    llm = llama_cpp.Llama(model_path=p["model"], n_ctx=p["ctx"], n_batch=ub, n_ubatch=ub, n_threads=p["threads"],
                          n_threads_batch=p["threads"], logits_all=False, use_mmap=True, verbose=False)
    prompt = bench_prompt(p["seed"], llm.n_vocab(), p["prompt_tokens"])
    prefill, decode, tokens = [], [], []
    for _ in range(p["repeat"]):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        tok = int(np.argmax(_last_logits(llm)))
        t1 = time.perf_counter()
        gen = [tok]
        for _ in range(p["gen_tokens"]):
            llm.eval([tok])
            tok = int(np.argmax(_last_logits(llm)))
            gen.append(tok)
        t2 = time.perf_counter()
        prefill.append(len(prompt) / (t1 - t0))
        decode.append(p["gen_tokens"] / (t2 - t1))
        tokens = gen
    with open("/proc/self/status", encoding="ascii") as f:  # anonymous vs file-backed resident memory
        rss = {ln.split(":")[0]: int(ln.split()[1]) / 1024 for ln in f if ln.startswith(("RssAnon", "RssFile"))}
    return {"prefill_runs": prefill, "decode_runs": decode, "tokens": tokens, "rss_mib_at_end": rss,
            "system_info": llama_cpp.llama_print_system_info().decode(), "llama_cpp_version": llama_cpp.__version__}


def _last_logits(llm) -> np.ndarray:
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def llama_cmd(params: dict) -> list[str]:
    code = (f"{HWM_SNIPPET}; sys.path.insert(0, {BENCH_DIR!r}); import bench_moe_budget as b; "
            f"b.worker_main({json.dumps(params)!r})")
    return [sys.executable, "-c", code]


def worker_main(params_json: str) -> None:
    print(RESULT_TAG + json.dumps(llama_worker(json.loads(params_json))), flush=True)


# ----------------------------------------------------------------------------- edgerun side (CLIs of this tree)
def edge_cmd(tool: str) -> list[str]:
    paths = [os.path.join(REPO, "converter"), os.path.join(REPO, "runtime"), REPO]
    code = (f"{HWM_SNIPPET}; sys.path[:0] = {paths!r}; sys.argv[0] = {tool!r}; "
            f"from {tool}.cli import main; sys.exit(main())")
    return [sys.executable, "-c", code]


def moe_summary(j: dict, tokens_per_round: int, rounds: int) -> dict:
    """The numbers of edgerun bench's "moe" object that the table shows. Its counters cover the whole
    process (warm-up round included, prefill and decode), so MB read/token = bytes_read over every
    token evaluated; hit_rate / recall are edgerun's own."""
    m = j.get("moe") or {}
    hits, misses = m.get("hits"), m.get("misses")
    hit_rate = m.get("hit_rate", hits / (hits + misses) if hits is not None and misses and hits + misses else None)
    recall = m.get("recall", m.get("predictor_recall"))
    tokens = tokens_per_round * rounds
    br = m.get("bytes_read")
    return {"hit_rate": hit_rate, "recall": recall, "io_stall_s": m.get("io_stall_s"),
            "mb_read_per_token": br / tokens / 1e6 if br is not None and tokens else None}


# ----------------------------------------------------------------------------- orchestration
class Bench:
    def __init__(self, a, log):
        self.a, self.log = a, log
        self.cache_path = os.path.join(a.work, "results.json")
        self.cache = {}
        if os.path.exists(self.cache_path) and not a.fresh:
            with open(self.cache_path, encoding="utf-8") as f:
                self.cache = json.load(f)

    def save(self) -> None:
        tmp = self.cache_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.cache, f, indent=1)
        os.replace(tmp, self.cache_path)

    # -- models
    def paths(self, routing: str) -> dict:
        d = os.path.join(self.a.work, f"{self.a.preset}-{routing}")
        return {"dir": d, "hf": os.path.join(d, "hf"), "edge": os.path.join(d, "model.edge"),
                "gguf": os.path.join(d, "model.gguf")}

    def ensure_models(self, routing: str) -> dict:
        p = self.paths(routing)
        os.makedirs(p["dir"], exist_ok=True)
        done = os.path.join(p["hf"], ".complete")
        args = ["--preset", self.a.preset, "--seed", str(self.a.model_seed)]
        if routing == "skew":
            args += ["--skew", str(self.a.skew)]
        stale = lambda f: not os.path.exists(f) or os.path.getmtime(f) < os.path.getmtime(done)  # noqa: E731
        if not os.path.exists(done) or open(done, encoding="utf-8").read().split() != args:
            self._build([sys.executable, "-m", "models.random_moe", "--out", p["hf"]] + args,
                        f"random {self.a.preset} SmallThinker ({routing})")
            with open(done, "w", encoding="utf-8") as f:  # what was built; other arguments rebuild it
                f.write(" ".join(args) + "\n")
        if stale(p["edge"]):
            self._build(edge_cmd("edgeconv") + ["export", p["hf"], "-o", p["edge"], "--quant", self.a.edge_recipe,
                                                "-q"] + self.a.edge_export_args, f"edgeconv export ({routing})")
        if stale(p["gguf"]):
            t0 = time.perf_counter()
            import gguf_smallthinker
            res = gguf_smallthinker.write_gguf(p["hf"], p["gguf"])
            self.log(f"GGUF ({routing}): {res['file_bytes'] / 1e6:.0f} MB, {res['bits_per_weight']:.3f} bits/weight, "
                     f"{time.perf_counter() - t0:.0f} s")
        return p

    def _build(self, cmd: list[str], what: str) -> None:
        t0 = time.perf_counter()
        r = run_process(cmd, timeout=self.a.build_timeout)
        if r["rc"] != 0:
            raise RuntimeError(f"{what} failed (rc={r['rc']}): {' '.join(cmd[-8:])}\n{r['stderr'][-3000:]}")
        self.log(f"{what}: {time.perf_counter() - t0:.0f} s")

    # -- measurements
    def params(self) -> dict:
        a = self.a
        return {"threads": a.threads, "ctx": a.ctx, "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens,
                "repeat": a.runs + 1, "seed": a.seed}

    def measure(self, routing: str, engine: str, budget: str, paths: dict) -> dict:
        key = measurement_key(routing, engine, budget)
        model = paths["edge"] if engine == "edgerun" else paths["gguf"]
        ident = {"params": self.params(), "model": file_stamp(model), "engine": engine_stamp(engine)}
        hit = self.cache.get(key)
        if hit and hit.get("ident") == ident:
            return hit
        limit = budget_bytes(budget)
        pr = self.params()
        if engine == "edgerun":
            cmd = edge_cmd("edgerun") + ["bench", model, "--threads", str(pr["threads"]), "--ctx", str(pr["ctx"]),
                                         "--prompt-tokens", str(pr["prompt_tokens"]), "--gen-tokens",
                                         str(pr["gen_tokens"]), "--repeat", str(pr["repeat"]), "--seed",
                                         str(pr["seed"]), "--json"]
            if limit is not None:
                cmd += ["--mem", budget]
        else:
            variant = engine.split("/", 1)[1]
            cmd = llama_cmd(dict(pr, model=model, variant=variant, no_amx=self.a.no_amx))
        wait_for_quiet(self.a.quiet_wait)
        r = run_limited(cmd, limit, timeout=self.a.timeout, cold_files=[model])
        row = {"routing": routing, "engine": engine, "budget": budget_label(budget), "limit_bytes": limit,
               "ident": ident, "cmd_tail": cmd[3:] if engine == "edgerun" else None}
        for k in ("rc", "wall_s", "peak_rss_mib", "foreign_cores", "timed_out", "oom_killed", "oom_kill_count",
                  "failcnt", "memsw_failcnt", "max_usage_mib", "swap_total_kib", "cold"):
            row[k] = r.get(k)
        detail = None
        if r["rc"] == 0:
            try:
                if engine == "edgerun":
                    detail = last_json_object(r["stdout"])
                else:
                    lines = [ln for ln in r["stdout"].splitlines() if ln.startswith(RESULT_TAG)]
                    detail = json.loads(lines[-1][len(RESULT_TAG):]) if lines else None
            except (RuntimeError, json.JSONDecodeError) as e:
                row["error"] = f"unreadable output: {e}"
        if detail is None and "error" not in row:
            row["error"] = (r["stderr"] or r["stdout"])[-1500:]
        if detail:
            row["prefill_runs"], row["decode_runs"] = detail.get("prefill_runs"), detail.get("decode_runs")
            row["prefill_tok_s"] = timed_median(detail.get("prefill_runs"))
            row["decode_tok_s"] = timed_median(detail.get("decode_runs"))
            if engine == "edgerun":
                row["memory"], row["moe"] = detail.get("memory"), detail.get("moe")
                row["moe_summary"] = moe_summary(detail, pr["prompt_tokens"] + pr["gen_tokens"], pr["repeat"])
                row["edgerun_peak_rss_mb"] = detail.get("peak_rss_mb")
            else:
                row["llama_cpp_version"] = detail.get("llama_cpp_version")
        self.cache[key] = row
        self.save()
        self.log(f"{routing:8s} {engine:18s} {budget_label(budget):>9s}: {status_of(row):8s} decode "
                 f"{fmt(row.get('decode_tok_s'), '%.2f')} prefill {fmt(row.get('prefill_tok_s'), '%.1f')} tok/s, "
                 f"cgroup peak {fmt(row.get('max_usage_mib'), '%.0f')} MiB, other load {row['foreign_cores']:.2f}")
        return row

    def greedy_check(self, routing: str, paths: dict) -> dict:
        """edgerun generate, greedy: resident vs --mem B* (streaming) inside a B* cgroup."""
        key = f"{routing}|greedy"
        budget = self.a.target_budget
        ident = {"model": file_stamp(paths["edge"]), "n": self.a.greedy_tokens, "ctx": self.a.ctx, "budget": budget,
                 "engine": engine_stamp("edgerun")}
        hit = self.cache.get(key)
        if hit and hit.get("ident") == ident:
            return hit
        base = edge_cmd("edgerun") + ["generate", paths["edge"], "--prompt", self.a.greedy_prompt, "-n",
                                      str(self.a.greedy_tokens), "--temp", "0", "--repeat-penalty", "1",
                                      "--threads", str(self.a.threads), "--ctx", str(self.a.ctx), "--json"]
        out = {"ident": ident, "budget": budget}
        for name, cmd, limit in (("resident", base, None),
                                 ("streaming", base + ["--mem", budget], budget_bytes(budget))):
            r = run_limited(cmd, limit, timeout=self.a.timeout, cold_files=[paths["edge"]])
            out[name] = {"rc": r["rc"], "oom_killed": r["oom_killed"], "max_usage_mib": r["max_usage_mib"]}
            if r["rc"] == 0:
                out[name]["tokens"] = last_json_object(r["stdout"])["tokens"]
            else:
                out[name]["error"] = r["stderr"][-1500:]
        t0, t1 = out["resident"].get("tokens"), out["streaming"].get("tokens")
        out["equal"] = t0 is not None and t0 == t1
        out["n_tokens"] = len(t0 or [])
        self.cache[key] = out
        self.save()
        self.log(f"greedy check ({routing}): streaming under {budget} "
                 f"{'EQUALS' if out['equal'] else 'DIFFERS FROM'} resident ({out['n_tokens']} tokens)")
        return out


def plot(rows: list[dict], budgets: list[str], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [budget_label(b) for b in budgets]
    xs = list(range(len(labels)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    styles = {"edgerun": ("tab:blue", "o"), "llama.cpp/default": ("tab:red", "s"), "llama.cpp/mmap": ("tab:orange", "^")}
    for ax, metric, name in ((axes[0], "decode_tok_s", "decode"), (axes[1], "prefill_tok_s", "prefill")):
        vals = [r[metric] for r in rows if r.get(metric)]
        floor = min(vals) / 3 if vals else 0.1  # failed runs are drawn here, on a log axis
        for (routing, engine) in sorted({(r["routing"], r["engine"]) for r in rows}):
            color, marker = styles.get(engine, ("gray", "x"))
            ls = "-" if routing == "uniform" else "--"
            pts = {r["budget"]: r for r in rows if r["routing"] == routing and r["engine"] == engine}
            ys = [pts[lb].get(metric) if lb in pts else None for lb in labels]
            ax.plot([x for x, y in zip(xs, ys) if y], [y for y in ys if y], ls, color=color, marker=marker,
                    label=f"{engine} ({routing})")
            for x, lb in zip(xs, labels):  # failed runs (OOM, timeout, refused) as crosses at the floor
                if lb in pts and not pts[lb].get(metric):
                    ax.plot([x], [floor], "x", color=color, markersize=10, mew=2)
                    ax.annotate(status_of(pts[lb]), (x, floor), textcoords="offset points", xytext=(6, -3),
                                fontsize=7, color=color)
        ax.set_xticks(xs, labels)
        ax.set_xlabel("memory budget (cgroup limit incl. page cache)")
        ax.set_ylabel(f"{name} tok/s")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title + "   (solid: uniform routing, dashed: skewed; x at the bottom = failed run)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="edgerun vs llama.cpp on a SmallThinker-shaped MoE under memory budgets")
    ap.add_argument("--preset", default="4b", help="models.random_moe preset (4b; tiny for a smoke run)")
    ap.add_argument("--budgets", default="0.5GB,1GB,2GB,none", help="cgroup limits = edgerun --mem; none = unlimited")
    ap.add_argument("--target-budget", default="1GB", help="budget of the ratios and the greedy check (one of --budgets)")
    ap.add_argument("--routing", default="uniform,skew", help="uniform (random weights), skew (random_moe --skew)")
    ap.add_argument("--skew", type=float, default=1.0, help="random_moe --skew value for the skew case")
    ap.add_argument("--engines", default="edgerun,llama.cpp/default,llama.cpp/mmap")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=2, help="timed rounds per process (after one warm-up round)")
    ap.add_argument("--seed", type=int, default=0, help="prompt ids seed (edgerun bench --seed)")
    ap.add_argument("--model-seed", type=int, default=0)
    ap.add_argument("--edge-recipe", default="int4")
    ap.add_argument("--edge-export-args", default="", help="extra edgeconv export arguments (space separated)")
    ap.add_argument("--greedy-tokens", type=int, default=32)
    ap.add_argument("--greedy-prompt", default="The quick brown fox jumps over the lazy dog.")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per measured process")
    ap.add_argument("--build-timeout", type=float, default=3600)
    ap.add_argument("--quiet-wait", type=float, default=20.0)
    ap.add_argument("--llama-amx", action="store_true", help="let llama.cpp use AMX (segfaults here)")
    ap.add_argument("--work", default=os.path.join(OUT_DIR, "moe_budget"))
    ap.add_argument("--out", default=None, help="output prefix (default: <work>/bench_moe_budget-<preset>)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached measurements (models are still reused)")
    a = ap.parse_args(argv)
    a.budgets = [b for b in a.budgets.split(",") if b]
    a.routings = [r for r in a.routing.split(",") if r]
    a.engines = [e for e in a.engines.split(",") if e]
    a.edge_export_args = a.edge_export_args.split()
    a.no_amx = cpu_has_amx() and not a.llama_amx
    a.out = a.out or os.path.join(a.work, f"bench_moe_budget-{a.preset}")
    for b in a.budgets:
        budget_bytes(b)  # refuse a bad size before any work
    bad = [e for e in a.engines if e not in ("edgerun",) + tuple(f"llama.cpp/{v}" for v in LLAMA_VARIANTS)]
    if bad or any(r not in ("uniform", "skew") for r in a.routings):
        ap.error(f"unknown engine/routing: {bad or a.routings}")
    os.makedirs(a.work, exist_ok=True)
    sys.path[:0] = [REPO]

    t_start = time.perf_counter()
    log = lambda s: print(f"[{time.perf_counter() - t_start:7.1f}s] {s}", flush=True)  # noqa: E731
    mach = machine_info()
    mach["loadavg_start"] = loadavg()
    log(f"machine: {mach.get('Model name')}, {mach['cpu_count']} CPUs, load {mach['loadavg_start']:.2f}; "
        f"work dir {a.work}")
    bench = Bench(a, log)
    rows, greedy, files = [], {}, {}
    for routing in a.routings:
        paths = bench.ensure_models(routing)
        files[routing] = {k: {"path": os.path.relpath(paths[k], REPO), "bytes": os.path.getsize(paths[k])}
                          for k in ("edge", "gguf")}
        for budget in a.budgets:
            for engine in a.engines:
                rows.append(bench.measure(routing, engine, budget, paths))
        if "edgerun" in a.engines:
            greedy[routing] = bench.greedy_check(routing, paths)
    mach["loadavg_end"] = loadavg()

    table = {(r["routing"], r["engine"], r["budget"]): r for r in rows}
    rat = {routing: ratios(table, routing, a.target_budget) for routing in a.routings}
    md = markdown_table(rows)
    ratio_lines, tb = [], a.target_budget
    for routing, rr in rat.items():
        x, y = rr["edgerun_1gb_over_llamacpp_1gb"], rr["edgerun_1gb_over_unlimited"]
        ratio_lines.append(
            f"- {routing}: edgerun@{tb} / llama.cpp@{tb} ({rr['llamacpp_1gb_variant'] or '—'}) decode = "
            f"{fmt(x, '%.2f')}x (target >= 3: {verdict(x, 3)}); edgerun@{tb} / edgerun unlimited = {fmt(y, '%.2f')} "
            f"(target >= 0.5: {verdict(y, 0.5)}); greedy tokens streaming == resident: "
            f"{greedy.get(routing, {}).get('equal', 'not checked')}")
    caption = (f"{mach.get('Model name')} ({mach['cpu_count']} CPUs), {a.threads} threads, preset {a.preset}, ctx "
               f"{a.ctx}, prompt {a.prompt_tokens} ids, {a.gen_tokens} greedy tokens, median of {a.runs} rounds after a "
               f"warm-up round, fresh process and cgroup per cell, model file dropped from the page cache first. "
               f"uniform = random weights (near-uniform routing: the worst case for an expert cache); skew = "
               f"random_moe --skew {a.skew}. edgerun {a.edge_recipe} (int4_32 expert planes) vs llama.cpp Q4_0, "
               f"both 4.5 bits/weight from the same bf16 weights (different quantizers). cgroup peak = "
               f"memory.max_usage_in_bytes (anonymous + page cache); expert slots, hit rate, recall, MB read/token (over every "
               f"token the process evaluated, warm-up included) and I/O stall are edgerun's own counters. * = other processes used more than "
               f"{CONTENDED_CORES} cores during the run. Load average {mach['loadavg_start']:.2f} -> "
               f"{mach['loadavg_end']:.2f}." + (" llama.cpp AMX denied (llama.cpp #20824)." if a.no_amx else ""))
    print("\n" + md + "\n\n" + "\n".join(ratio_lines) + "\n\n" + caption)
    result = {"machine": mach, "args": {k: v for k, v in vars(a).items()}, "files": files, "rows": rows,
              "ratios": rat, "greedy": greedy, "wall_s": time.perf_counter() - t_start}
    with open(a.out + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    with open(a.out + ".md", "w", encoding="utf-8") as f:
        f.write(md + "\n\n" + "\n".join(ratio_lines) + "\n\n" + caption + "\n")
    plot(rows, a.budgets, a.out + ".png", f"SmallThinker-{a.preset} shape, random weights, {a.threads} threads")
    log(f"wrote {a.out}.json, .md, .png")
    must_run = {budget_label(a.target_budget), "unlimited"}  # edgerun may refuse a budget below its fixed terms
    failed = [r for r in rows if r["engine"] == "edgerun" and r["budget"] in must_run and status_of(r) != "ok"]
    return 2 if failed or any(g.get("equal") is False for g in greedy.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
