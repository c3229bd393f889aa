"""Runs the fuzz targets: each replays its seed corpus (tests/fuzz/corpus/<target>/, regress-* inputs
included) and then runs fresh inputs, bounded by --runs and --seconds per target.

    python tests/fuzz/run.py [--targets a,b] [--runs N] [--seconds S] [--jobs J] [--build DIR] [--plain] [--json]

C++ targets (csrc/fuzz/fuzz_*.cpp): edge_file, tokenizer, blob_decode — the executables of a build with
-DEDGE_FUZZ=ON (clang, libFuzzer, coverage-guided; looked for in build/fuzz) or -DEDGE_SANITIZE=ON (the
replay + mutation driver csrc/fuzz/standalone_main.cpp; build/sanitize), both under ASan + UBSan.
Python targets (tests/fuzz/py_targets.py): gguf, pt, safetensors, hf_config, onnx — with atheris when it is
installed, else (or with --plain) the same mutations without coverage guidance.
--jobs J runs J processes per target (different seeds, --runs split between them). New inputs libFuzzer
keeps go to a scratch folder, never into the repository. A crash, sanitizer report, timeout or unclean
Python error writes the input under --artifacts (default: a scratch folder, printed) and the exit code
is 1; commit such an input as tests/fuzz/corpus/<target>/regress-<what> once it is fixed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
CPP_TARGETS = ("edge_file", "tokenizer", "blob_decode")
PY_TARGETS = ("gguf", "pt", "safetensors", "hf_config", "onnx")
TARGETS = CPP_TARGETS + PY_TARGETS


def find_build(build: str | None) -> str | None:
    """The build folder holding the C++ fuzz executables: --build, else build/fuzz, else build/sanitize."""
    for d in ([build] if build else [os.path.join(ROOT, "build", "fuzz"), os.path.join(ROOT, "build", "sanitize")]):
        if d and all(os.path.isfile(os.path.join(d, f"fuzz_{t}")) for t in CPP_TARGETS):
            return d
    return None


def command(target: str, build: str | None, runs: int, seconds: float, seed: int, timeout: int, prefix: str,
            scratch: str, plain: bool) -> list[str]:
    flags = [f"-runs={runs}", f"-max_total_time={max(1, int(seconds))}", f"-seed={seed}", f"-timeout={timeout}",
             f"-artifact_prefix={prefix}", "-rss_limit_mb=4096", "-print_final_stats=0"]
    corpus = os.path.join(CORPUS, target)
    if target in CPP_TARGETS:
        return [os.path.join(build, f"fuzz_{target}"), *flags, scratch, corpus]
    return [sys.executable, os.path.join(ROOT, "tests", "fuzz", "py_targets.py"), target, *(["--plain"] if plain else []),
            *flags, scratch, corpus]


def run_target(target: str, args, artifacts: str) -> dict:
    jobs = max(1, args.jobs)
    procs = []
    t0 = time.monotonic()
    for j in range(jobs):
        scratch = tempfile.mkdtemp(prefix=f"fuzz_{target}_")
        prefix = os.path.join(artifacts, f"{target}-{j}-")
        cmd = command(target, args.build_dir, -(-args.runs // jobs), args.seconds, args.seed + j, args.timeout, prefix,
                      scratch, args.plain)
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1"),
                   UBSAN_OPTIONS=os.environ.get("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"))
        log = open(os.path.join(artifacts, f"{target}-{j}.log"), "w+")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), log, cmd))
    total, failed, tails = 0, [], []
    for p, log, cmd in procs:
        try:
            rc = p.wait(timeout=args.seconds * 3 + 600)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = -9
        log.seek(0)
        out = log.read()
        log.close()
        m = re.findall(r"Done (\d+) runs in (\d+) second", out)
        total += int(m[-1][0]) if m else 0
        if rc != 0 or not m:
            failed.append(" ".join(cmd))
            tails.append(out[-6000:])
    secs = time.monotonic() - t0
    engine = ("libfuzzer" if os.path.basename(args.build_dir or "") != "sanitize" and _is_libfuzzer(args.build_dir, target)
              else "standalone") if target in CPP_TARGETS else ("plain" if args.plain or not _has_atheris() else "atheris")
    return {"target": target, "engine": engine, "runs": total, "seconds": round(secs, 1),
            "exec_per_s": round(total / secs, 1) if secs else 0.0, "ok": not failed, "failed": failed, "tails": tails}


def _is_libfuzzer(build: str | None, target: str) -> bool:
    try:
        with open(os.path.join(build, f"fuzz_{target}"), "rb") as f:
            return b"LLVMFuzzerRunDriver" in f.read()
    except (OSError, TypeError):
        return False


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated (default: all)")
    ap.add_argument("--runs", type=int, default=1000, help="fresh inputs per target, beyond the corpus")
    ap.add_argument("--seconds", type=float, default=60, help="time limit per target (each job)")
    ap.add_argument("--jobs", type=int, default=1, help="processes per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=20, help="seconds one input may take (a hang past it is a finding)")
    ap.add_argument("--build", dest="build_dir", help="build folder of the C++ targets (default: build/fuzz, build/sanitize)")
    ap.add_argument("--plain", action="store_true", help="Python targets: mutations without atheris")
    ap.add_argument("--artifacts", help="folder for crash inputs and logs (default: a new scratch folder)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    if any(t in CPP_TARGETS for t in targets):
        args.build_dir = find_build(args.build_dir)
        if args.build_dir is None:
            ap.error("no C++ fuzz executables: build with -DEDGE_FUZZ=ON (clang) into build/fuzz or "
                     "-DEDGE_SANITIZE=ON into build/sanitize, or pass --build")
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="edge_fuzz_artifacts_")
    os.makedirs(artifacts, exist_ok=True)
    results = [run_target(t, args, artifacts) for t in targets]
    if args.json:
        print(json.dumps({"artifacts": artifacts, "results": results}, indent=1))
    else:
        for r in results:
            print(f"{r['target']:12s} {r['engine']:10s} {r['runs']:8d} runs {r['seconds']:7.1f} s "
                  f"{r['exec_per_s']:8.1f}/s  {'ok' if r['ok'] else 'FAILED'}")
            for t in r["tails"]:
                print(t)
        print(f"artifacts and logs: {artifacts}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
