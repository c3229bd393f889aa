"""Guest instructions per decoded token of the cross-built `edgert`, per kernel variant, under qemu-user.

    python bench/qemu_icount.py                       # every variant, recipes q8 and int4, table on stdout
    python bench/qemu_icount.py --markdown            # the table of docs/devices.md
    python bench/qemu_icount.py --save                # write the baseline bench/qemu_icount_baseline.json
    python bench/qemu_icount.py --compare             # exit 1 if a variant got > --tolerance more instructions
    python bench/qemu_icount.py --arch aarch64 --variants aarch64/dotprod --recipes q8 --model my.edge

Why instruction counts: timings under qemu say nothing about a board, but the number of guest instructions a
kernel executes is deterministic and tracks the work the board's core will do (an in-order X60 or A72 runs
roughly in proportion). A regression in a NEON/RVV kernel shows as more instructions per token.

How: Debian's qemu 7.2 supports TCG plugins but ships none, so bench/qemu_insn_plugin.c (built here with the
host cc into build/qemu-plugin/) counts executed instructions per guest function symbol with inline adds.
Each variant runs `edgert generate MODEL -p PROMPT -n N --ids -t 1` (greedy) twice (N1 < N2) with
EDGE_KERNELS=<level> under the qemu -cpu of the variant; (count(N2) - count(N1)) / (N2 - N1) is the cost of one
decode step with its sampling (load, tokenizer and prefill cancel out), split by function into gemm / attention /
quantize_q8x / silu_mul / rest. One thread, no timing output (`edgert bench` prints measured speeds, whose
formatting costs a varying number of instructions) and host ASLR off (`setarch -R`: otherwise the guest's mmap
addresses vary and the allocators' retry paths with them), so the counts repeat exactly (--check-determinism).

Binaries: scripts/cross.sh builds build/cross-aarch64 and build/cross-riscv64 (the kernel tests' dirs).
Model (default): a random llama (d_model 256, d_ff 768, 4 layers, vocab 512; models/tiny.py make_tiny, seed 0)
exported with each recipe into build/qemu-icount/; its file hashes go into the JSON so a baseline comparison
only compares like with like.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tree's packages when a developer build put _core there (as tests/conftest.py), else the installed ones.
_subs = ("runtime", "converter", "") if glob.glob(os.path.join(ROOT, "runtime", "edgerun", "_core*.so")) else ("",)
for sub in _subs:
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)

from edgerun.device import get_profile, qemu_argv  # noqa: E402

BASELINE = os.path.join(ROOT, "bench", "qemu_icount_baseline.json")
PLUGIN_SRC = os.path.join(ROOT, "bench", "qemu_insn_plugin.c")
PROMPT = "The quick brown fox jumps over the lazy dog"
ICOUNT_MODEL = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=64, vocab_size=512, tie_word_embeddings=False)


@dataclass(frozen=True)
class Variant:
    key: str       # "aarch64/dotprod"
    arch: str
    profile: str   # the board profile whose qemu binary (and, unless cpu is set, -cpu) is used
    level: str     # EDGE_KERNELS
    cpu: str | None = None


VARIANTS = (
    Variant("aarch64/ref", "aarch64", "rpi5", "ref"),
    Variant("aarch64/neon", "aarch64", "rpi4", "neon"),
    Variant("aarch64/dotprod", "aarch64", "rpi5", "dotprod"),
    Variant("aarch64/i8mm", "aarch64", "rpi5", "i8mm", cpu="max"),
    Variant("riscv64/ref", "riscv64", "visionfive2", "ref"),
    Variant("riscv64/rvv-vlen128", "riscv64", "k230", "rvv"),
    Variant("riscv64/rvv-vlen256", "riscv64", "spacemit-k1", "rvv"),
)
CROSS_TARGET = {"aarch64": "rpi5", "riscv64": "spacemit-k1"}  # any target of the arch: one binary per arch
CATEGORIES = (("gemm", re.compile(r"gemm")), ("attention", re.compile(r"attention")),
              ("quantize_q8x", re.compile(r"quantize_q8x")), ("silu_mul", re.compile(r"silu")))


# ---- tools ------------------------------------------------------------------------------------------------

def cross_build(arch: str, build_dir: str | None = None) -> str:
    """build/cross-<arch> via scripts/cross.sh (incremental); returns the directory holding edgert."""
    build_dir = build_dir or os.path.join(ROOT, "build", f"cross-{arch}")
    r = subprocess.run([os.path.join(ROOT, "scripts", "cross.sh"), CROSS_TARGET[arch], build_dir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"scripts/cross.sh {CROSS_TARGET[arch]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return build_dir


def missing_tools(arch: str) -> str | None:
    """Why `arch` cannot be cross-built and emulated here, or None."""
    need = {"aarch64": ["aarch64-linux-gnu-g++", "qemu-aarch64"], "riscv64": ["qemu-riscv64"]}[arch]
    gone = [t for t in need + ["cmake", "ninja"] if shutil.which(t) is None]
    if arch == "riscv64":
        import importlib.util
        if importlib.util.find_spec("ziglang") is None:
            gone.append("ziglang (pip)")
    return f"not installed: {', '.join(gone)}" if gone else None


def build_plugin(out_dir: str | None = None) -> str:
    """The instruction-count plugin, compiled with the host C compiler when its source is newer."""
    out_dir = out_dir or os.path.join(ROOT, "build", "qemu-plugin")
    so = os.path.join(out_dir, "libedgeinsn.so")
    if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(PLUGIN_SRC):
        os.makedirs(out_dir, exist_ok=True)
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise RuntimeError("no host C compiler (cc/gcc) to build the qemu plugin")
        tmp = so + ".tmp"
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", tmp, PLUGIN_SRC, "-lpthread"], check=True)
        os.replace(tmp, so)
    return so


def icount_models(recipes: list[str], out_dir: str | None = None) -> dict[str, str]:
    """{recipe: .edge path} of the default random llama, exported once per recipe."""
    out_dir = out_dir or os.path.join(ROOT, "build", "qemu-icount")
    paths = {r: os.path.join(out_dir, f"llama256.{r}.edge") for r in recipes}
    todo = [r for r, p in paths.items() if not os.path.exists(p)]
    if todo:
        from edgeconv.export import export
        from models.tiny import make_tiny

        hf = os.path.join(out_dir, "llama256-hf")
        if not os.path.exists(os.path.join(hf, "config.json")):
            make_tiny("llama", seed=0, dir=hf, **ICOUNT_MODEL)
        for r in todo:
            export(hf, paths[r], recipe=r)
    return paths


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# ---- counting ---------------------------------------------------------------------------------------------

def _demangle(names: list[str]) -> dict[str, str]:
    if not shutil.which("c++filt"):
        return {n: n for n in names}
    r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    out = r.stdout.split("\n")
    return dict(zip(names, out)) if r.returncode == 0 and len(out) >= len(names) else {n: n for n in names}


def run_counted(variant: Variant, exe: str, plugin: str, args: list[str], out_file: str) -> dict[str, int]:
    """{symbol: instructions} of one run of `exe args` (symbol "total" = all)."""
    profile = get_profile(variant.profile)
    argv = qemu_argv(profile, exe, plugin=f"{plugin},out={out_file}", cpu=variant.cpu) + args
    if shutil.which("setarch"):  # host ASLR moves qemu's guest mmaps, and allocators' syscall paths with them
        argv = ["setarch", "-R"] + argv
    env = dict(os.environ, EDGE_KERNELS=variant.level)
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr[-1500:]}")
    if "-n" in args and len(r.stdout.split()) != int(args[args.index("-n") + 1]):
        raise RuntimeError(f"{' '.join(argv)}: generation stopped early (EOS) after {len(r.stdout.split())} tokens; "
                           "use another --prompt")
    counts = {}
    with open(out_file) as f:
        for line in f:
            name, _, n = line.rstrip("\n").rpartition(" ")
            counts[name] = int(n)
    return counts


def level_under_qemu(variant: Variant, exe: str) -> str:
    """The kernel level `edgert kernels` reports under the variant's qemu cpu and EDGE_KERNELS."""
    argv = qemu_argv(get_profile(variant.profile), exe, cpu=variant.cpu) + ["kernels"]
    r = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, EDGE_KERNELS=variant.level),
                       timeout=120)
    m = re.search(r"^default: (\S+)", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr[-800:]}")
    return m.group(1)


def per_token(variant: Variant, exe: str, plugin: str, model: str, work: str, prompt: str, n1: int,
              n2: int) -> dict:
    """Instructions of one decode step, total and by category, from runs with n1 and n2 generated tokens."""
    runs = []
    for n in (n1, n2):
        out = os.path.join(work, f"{variant.key.replace('/', '_')}.{os.path.basename(model)}.{n}.txt")
        # --kv f32: the baseline's workload (the f16 default's widening adds 2.7 % per decode step of the tiny q8
        # model on dotprod and RVV VLEN 256, measured s16)
        runs.append(run_counted(variant, exe, plugin, ["generate", model, "-p", prompt, "-n", str(n), "--ids",
                                                        "-t", "1", "--kv", "f32"], out))
    diff = {s: runs[1].get(s, 0) - runs[0].get(s, 0) for s in set(runs[0]) | set(runs[1])}
    total = diff.pop("total")
    names = _demangle(sorted(diff))
    cats = {c: 0 for c, _ in CATEGORIES}
    cats["rest"] = 0
    for sym, n in diff.items():
        cat = next((c for c, rx in CATEGORIES if rx.search(names[sym])), "rest")
        cats[cat] += n
    k = n2 - n1
    top = sorted(diff.items(), key=lambda kv: -kv[1])[:5]
    return {"insn_per_token": total // k, "by_category": {c: v // k for c, v in cats.items()},
            "top": [[names[s][:100], v // k] for s, v in top], "load_prefill_plus_n1": runs[0]["total"]}


# ---- reporting --------------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    recipes = res["recipes"]
    lines = [f"Guest instructions per decoded token (qemu {res['qemu']}, edgert -t 1, model {res['model']}, "
             f"prompt {res['prompt']!r}, tokens {res['n1']}→{res['n2']}); share of gemm in parentheses.", "",
             "| variant | qemu -cpu | " + " | ".join(recipes) + " |", "|---|---|" + "---|" * len(recipes)]
    for key, v in res["variants"].items():
        cells = []
        for r in recipes:
            c = v["recipes"].get(r)
            cells.append(f"{c['insn_per_token']:,} ({100 * c['by_category']['gemm'] / c['insn_per_token']:.0f}%)"
                         if c else "—")
        lines.append(f"| {key} | `{v['cpu']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(res: dict, base: dict, tolerance: float) -> tuple[list[str], bool]:
    lines, bad = [], False
    ours, theirs = res.get("model_sha256", {}), base.get("model_sha256", {})
    differ = sorted(r for r in ours if r in theirs and ours[r] != theirs[r])
    if differ:
        lines.append(f"note: the model files differ from the baseline's for {', '.join(differ)} (counts are not "
                     f"comparable): {ours} vs {theirs}")
    for key, v in res["variants"].items():
        for r, c in v["recipes"].items():
            b = base.get("variants", {}).get(key, {}).get("recipes", {}).get(r)
            if not b:
                lines.append(f"{key} {r}: {c['insn_per_token']:,} (no baseline)")
                continue
            ratio = c["insn_per_token"] / b["insn_per_token"]
            flag = "REGRESSION" if ratio > 1 + tolerance else "improved" if ratio < 1 - tolerance else "same"
            bad |= flag == "REGRESSION"
            lines.append(f"{key} {r}: {c['insn_per_token']:,} vs {b['insn_per_token']:,} ({ratio:.3f}x) {flag}")
    return lines, bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="aarch64,riscv64")
    ap.add_argument("--variants", default=None, help="comma-separated keys, e.g. aarch64/dotprod,riscv64/rvv-vlen256")
    ap.add_argument("--recipes", default="q8,int4")
    ap.add_argument("--model", default=None, help="one .edge file instead of the built-in random llama")
    ap.add_argument("--prompt", default=PROMPT, help="prompt text")
    ap.add_argument("--tokens", default="4,12", help="N1,N2 generated tokens of the two runs")
    ap.add_argument("--build-dir", action="append", default=[], metavar="ARCH=DIR", help="cross build to use")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--save", nargs="?", const=BASELINE, default=None, help="write the results as the baseline")
    ap.add_argument("--compare", nargs="?", const=BASELINE, default=None, help="compare with a baseline JSON")
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative increase that counts as a regression")
    ap.add_argument("--check-determinism", action="store_true", help="run every count twice; fail if they differ")
    a = ap.parse_args(argv)
    n1, n2 = (int(x) for x in a.tokens.split(","))
    if not 0 < n1 < n2:
        ap.error("--tokens needs 0 < N1 < N2")
    arches = a.arch.split(",")
    variants = [v for v in VARIANTS if v.arch in arches]
    if a.variants:
        keys = a.variants.split(",")
        unknown = sorted(set(keys) - {v.key for v in VARIANTS})
        if unknown:
            ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(v.key for v in VARIANTS)}")
        variants = [v for v in variants if v.key in keys]
    recipes = [r for r in a.recipes.split(",") if r]
    models = {os.path.basename(a.model): a.model} if a.model else icount_models(recipes)
    build_dirs = dict(s.split("=", 1) for s in a.build_dir)
    plugin = build_plugin()
    work = os.path.join(ROOT, "build", "qemu-icount", "runs")
    os.makedirs(work, exist_ok=True)
    qv = subprocess.run(["qemu-aarch64" if shutil.which("qemu-aarch64") else "qemu-riscv64", "--version"],
                        capture_output=True, text=True).stdout.split("\n")[0]
    res = {"qemu": re.sub(r"^qemu-\S+ version ", "", qv), "model": "llama256 (random, bench/qemu_icount.py)"
           if not a.model else os.path.basename(a.model), "prompt": a.prompt, "n1": n1, "n2": n2,
           "recipes": list(models), "model_sha256": {k: sha256(p) for k, p in models.items()}, "variants": {}}
    exes = {}
    for v in variants:
        why = missing_tools(v.arch)
        if why:
            print(f"skip {v.key}: {why}", file=sys.stderr)
            continue
        if v.arch not in exes:  # a private copy: a concurrent rebuild of the cross dir must not change it mid-run
            built = os.path.join(cross_build(v.arch, build_dirs.get(v.arch)), "edgert")
            exes[v.arch] = os.path.join(work, f"edgert-{v.arch}")
            shutil.copy2(built, exes[v.arch])
            res.setdefault("edgert_sha256", {})[v.arch] = sha256(exes[v.arch])
        exe = exes[v.arch]
        got = level_under_qemu(v, exe)
        if got != v.level:
            raise RuntimeError(f"{v.key}: edgert picked kernel level {got!r} under -cpu "
                               f"{v.cpu or get_profile(v.profile).qemu.cpu}, expected {v.level!r}")
        entry = {"cpu": v.cpu or get_profile(v.profile).qemu.cpu, "level": got, "recipes": {}}
        for r, path in models.items():
            c = per_token(v, exe, plugin, path, work, a.prompt, n1, n2)
            if a.check_determinism:
                again = per_token(v, exe, plugin, path, work, a.prompt, n1, n2)
                if again != c:
                    raise RuntimeError(f"{v.key} {r}: counts differ between two runs: {c['insn_per_token']} vs "
                                       f"{again['insn_per_token']}")
            entry["recipes"][r] = c
            print(f"{v.key:22s} {r:6s} {c['insn_per_token']:>12,} insn/token  gemm {c['by_category']['gemm']:,}",
                  file=sys.stderr)
        res["variants"][v.key] = entry
    if a.json:
        print(json.dumps(res, indent=1))
    elif a.markdown:
        print(markdown(res))
    if a.save:
        with open(a.save, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        print(f"wrote {a.save}", file=sys.stderr)
    if a.compare:
        with open(a.compare) as f:
            lines, bad = compare(res, json.load(f), a.tolerance)
        print("\n".join(lines))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
