"""A/B: the runtime of this tree against the runtime of another commit, same files, same machine, same run.

    python bench/bench_seam_ab.py --base f2be982                 (dense SmolLM2 float model, q8 and int4)
    python bench/bench_seam_ab.py --base f2be982 --moe-edge M.edge --moe-mem 1GB   (+ the MoE cgroup cell)

Why: a refactor of the executor (issue 8, the execution seam) must not change CPU speed. This builds the
base commit's runtime in a git worktree (<work>/base-<rev>, a developer build: its _core next to its
sources), converts the models once with THIS tree's converter (both runtimes read the same .edge files),
then runs `edgerun bench` of A (base) and B (this tree) alternately — A B A B … for --rounds rounds, each a
fresh process — and reports medians and B/A ratios. Alternation spreads drifts in machine load over both.
Dense: the float SmolLM2-135M from bench/make_float_model.py (built if missing), recipes --recipes,
--prompt-tokens prefill then --gen-tokens greedy decode, --threads threads.
MoE (--moe-edge): each run in a fresh cgroup v1 memory child limited to --moe-mem (bench/cgroup.py), the
file dropped from the page cache first, `edgerun bench --mem` (experts streamed).
Each row also gives the other load on the machine during the runs (cores busy outside the process).
Output: a markdown table last, JSON to <work>/seam_ab.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from cgroup import parse_bytes, run_limited  # noqa: E402
from sysmeasure import HWM_SNIPPET, run_process  # noqa: E402

OUT_DIR = os.path.join(BENCH_DIR, "out")


def tool_cmd(tree: str, tool: str) -> list[str]:
    """python running `tool` (edgerun / edgeconv) from the sources of `tree` and its developer build."""
    paths = [os.path.join(tree, "runtime"), os.path.join(tree, "converter"), tree]
    code = (f"{HWM_SNIPPET}; import sys; sys.path[:0] = {paths!r}; sys.argv[0] = {tool!r}; "
            f"from {tool}.cli import main; sys.exit(main())")
    return [sys.executable, "-c", code]


def check(cmd: list[str], what: str, timeout: float = 3600) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{what} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


def build_tree(tree: str) -> None:
    """A developer build of `tree` (cmake + ninja; the build drops _core into tree/runtime/edgerun)."""
    import pybind11
    b = os.path.join(tree, "build", "ab")
    check(["cmake", "-S", tree, "-B", b, "-G", "Ninja", "-DEDGE_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Release",
           f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"], f"configure {tree}")
    check(["cmake", "--build", b, "-j", str(os.cpu_count() or 2)], f"build {tree}")


def base_tree(rev: str, work: str) -> str:
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev], capture_output=True, text=True, check=True).stdout.strip()
    tree = os.path.join(work, f"base-{sha}")
    if not os.path.isdir(tree):
        check(["git", "-C", REPO, "worktree", "add", "--detach", tree, sha], f"git worktree add {sha}")
    return tree


def bench_once(tree: str, model: str, a, mem: str | None = None, moe: bool = False) -> dict:
    cmd = tool_cmd(tree, "edgerun") + ["bench", model, "--threads", str(a.threads), "--prompt-tokens", str(a.prompt_tokens),
                                       "--gen-tokens", str(a.gen_tokens), "--repeat", str(a.repeat), "--json"]
    if moe:
        cmd += ["--ctx", str(a.ctx)]
    if mem:
        cmd += ["--mem", mem]
        r = run_limited(cmd, parse_bytes(mem), timeout=a.timeout, cold_files=[model])
    else:
        r = run_process(cmd, a.timeout)
    if r["rc"] != 0:
        raise SystemExit(f"edgerun bench ({tree}, {model}) failed ({r['rc']}):\n{r['stderr'][-3000:]}")
    j = json.loads(r["stdout"].strip().splitlines()[-1])
    # the first of --repeat rounds warms the process up (pool, page faults, expert cache): take the rest
    pre, dec = j["prefill_runs"][1:] or j["prefill_runs"], j["decode_runs"][1:] or j["decode_runs"]
    return {"prefill": statistics.median(pre), "decode": statistics.median(dec), "foreign_cores": r["foreign_cores"],
            "peak_mib": r.get("max_usage_mib") or r.get("peak_rss_mib")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare against (A)")
    ap.add_argument("--recipes", default="q8,int4")
    ap.add_argument("--rounds", type=int, default=5, help="A B pairs per case")
    ap.add_argument("--repeat", type=int, default=3, help="edgerun bench --repeat per process (first is a warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=512, help="--ctx of the MoE runs")
    ap.add_argument("--moe-edge", default=None, help="an MoE .edge file for the cgroup cell")
    ap.add_argument("--moe-mem", default="1GB", help="budgets of the MoE cell, comma separated; none = unlimited")
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--work", default=os.path.join(OUT_DIR, "seam_ab"))
    a = ap.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)

    trees = {"A": base_tree(a.base, a.work), "B": REPO}
    for t in trees.values():
        build_tree(t)
    cases = []  # (name, model, mem); MoE cases are the ones on --moe-edge
    if not a.no_dense:
        import make_float_model
        if not os.path.exists(make_float_model.DEFAULT_OUT):
            make_float_model.main([])
        for rec in a.recipes.split(","):
            edge = os.path.join(a.work, f"smollm2-float.{rec}.edge")
            if not os.path.exists(edge):
                check(tool_cmd(REPO, "edgeconv") + ["export", make_float_model.DEFAULT_OUT, "-o", edge, "--quant", rec, "-q"],
                      f"edgeconv export {rec}")
            cases.append((f"SmolLM2-135M float → {rec}", edge, None))
    if a.moe_edge:
        for mem in a.moe_mem.split(","):  # "none": unlimited (every expert resident), no cgroup
            label = "resident, no --mem" if mem == "none" else f"--mem {mem} (cgroup)"
            cases.append((f"MoE {os.path.basename(a.moe_edge)} {label}", a.moe_edge, None if mem == "none" else mem))

    results = []
    for name, model, mem in cases:
        runs = {"A": [], "B": []}
        for i in range(a.rounds):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                runs[side].append(bench_once(trees[side], model, a, mem, moe=model == a.moe_edge))
                print(f"{name} round {i} {side}: {runs[side][-1]}", file=sys.stderr, flush=True)
        row = {"case": name, "runs": runs}
        for k in ("prefill", "decode"):
            ma, mb = (statistics.median(r[k] for r in runs[s]) for s in ("A", "B"))
            row[k] = {"A": ma, "B": mb, "ratio": mb / ma}
        row["foreign_cores"] = max(r["foreign_cores"] for s in runs for r in runs[s])
        results.append(row)
    out = {"base": a.base, "trees": trees, "threads": a.threads, "prompt_tokens": a.prompt_tokens,
           "gen_tokens": a.gen_tokens, "rounds": a.rounds, "results": results}
    with open(os.path.join(a.work, "seam_ab.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"| case | prefill A | prefill B | B/A | decode A | decode B | B/A | other load (cores, max) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        p, d = r["prefill"], r["decode"]
        print(f"| {r['case']} | {p['A']:.1f} | {p['B']:.1f} | {p['ratio']:.3f} | {d['A']:.2f} | {d['B']:.2f} | {d['ratio']:.3f} "
              f"| {r['foreign_cores']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
