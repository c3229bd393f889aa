"""Greedy generation is the same on every board: a tiny random llama (q8 and int4 files) decoded by the native
x86 edgert and by the cross-built edgert under qemu-user with each board's CPU (Pi 4 cortex-a72 / neon, Pi 5
cortex-a76 / dotprod, cpu max / i8mm, RISC-V with RVV 1.0 at VLEN 128 and 256, rv64gc without V / ref) gives
identical token ids. Also checks every board profile against the real dispatch: the level edgert picks under the
profile's qemu -cpu is the profile's kernel_level, and every dtype the profile calls fast has a SIMD gemm there.
And the qemu instruction counter (bench/qemu_icount.py) repeats exactly.

Binaries: scripts/cross.sh into build/cross-aarch64 / build/cross-riscv64 (the kernel tests' directories; built
once, incremental afterwards). Skipped only when a cross compiler, ziglang or qemu is not installed.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import edgerun
from edgeconv.cli import main as edgeconv_main
from edgerun.device import get_profile, load_profiles, qemu_argv
from models.tiny import make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILES = os.path.join(ROOT, "devices", "profiles")
PROMPT = "Hello world, the quick brown fox"
N_TOKENS = 8
RECIPES = ("q8", "int4")
# (profile, qemu -cpu override): every emulated ISA level once.
BOARDS = [("rpi4", None), ("rpi5", None), ("rpi5", "max"), ("k230", None), ("spacemit-k1", None),
          ("visionfive2", None)]


def _load_icount():
    spec = importlib.util.spec_from_file_location("qemu_icount", os.path.join(ROOT, "bench", "qemu_icount.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["qemu_icount"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


icount = _load_icount()


@pytest.fixture(autouse=True)
def _profiles_from_tree(monkeypatch):
    monkeypatch.setenv("EDGE_DEVICES_DIR", PROFILES)


_BUILDS: dict = {}


def cross_edgert(arch: str) -> str:
    """The cross-built edgert of `arch` (built once per session); skips when the tools are missing."""
    why = icount.missing_tools(arch)
    if why:
        pytest.skip(f"{arch} cross build/emulation: {why}")
    if arch not in _BUILDS:
        try:
            _BUILDS[arch] = os.path.join(icount.cross_build(arch), "edgert")
        except RuntimeError as e:
            _BUILDS[arch] = e
    if isinstance(_BUILDS[arch], Exception):
        pytest.fail(str(_BUILDS[arch]))
    return _BUILDS[arch]


def native_edgert() -> str:
    """The x86 edgert: on PATH or in this interpreter's scripts dir (pip install .), else the dev build."""
    for cand in (shutil.which("edgert"), os.path.join(sysconfig.get_path("scripts"), "edgert"),
                 os.path.join(ROOT, "build", "dev", "edgert")):
        if cand and os.path.exists(cand):
            return cand
    pytest.skip("edgert is not installed or built (pip install . or cmake --build build/dev)")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    make_tiny("llama", seed=11, dir=root / "hf")
    out = {}
    for r in RECIPES:
        out[r] = str(root / f"tiny.{r}.edge")
        assert edgeconv_main(["export", str(root / "hf"), "-o", out[r], "--quant", r, "--quiet"]) == 0
    return out


def generate(argv_prefix, model, env=None):
    # an f32 KV cache: with the f16 default the boards' attention kernels (NEON / RVV vs x86) flip this random
    # model's greedy path at token 6 (summation order on a near-tie; the f16 kernels are bounded in edge_test_kernels)
    r = subprocess.run(argv_prefix + ["generate", model, "-p", PROMPT, "-n", str(N_TOKENS), "--ids", "-t", "2",
                                      "--kv", "f32"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, **(env or {})))
    assert r.returncode == 0, r.stderr[-2000:]
    return [int(x) for x in r.stdout.split()]


@pytest.fixture(scope="module")
def reference_tokens(models):
    """Token ids of the native run (default kernel level), checked against the Python API and the x86 ref."""
    exe = native_edgert()
    out = {}
    for r, path in models.items():
        toks = generate([exe], path)
        assert len(toks) == N_TOKENS, toks  # no early EOS: every position is compared
        m = edgerun.Model(path, threads=2, kv="f32")
        ids = []
        list(m.generate(PROMPT, N_TOKENS, temperature=0, repeat_penalty=1.0, tokens_out=ids))
        assert ids == toks, (r, ids, toks)
        assert generate([exe], path, {"EDGE_KERNELS": "ref"}) == toks, r
        out[r] = toks
    return out


@pytest.mark.slow
@pytest.mark.parametrize("board,cpu", BOARDS, ids=[f"{b}{'-' + c if c else ''}" for b, c in BOARDS])
def test_tokens_match_x86_under_qemu(board, cpu, models, reference_tokens):
    profile = get_profile(board, PROFILES)
    exe = cross_edgert(profile.arch)
    argv = qemu_argv(profile, exe, cpu=cpu)
    for r, path in models.items():
        assert generate(argv, path) == reference_tokens[r], (board, cpu, r)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p for p, v in load_profiles(PROFILES).items() if v.qemu))
def test_profile_matches_dispatch_under_qemu(name):
    profile = get_profile(name, PROFILES)
    exe = cross_edgert(profile.arch)
    r = subprocess.run(qemu_argv(profile, exe) + ["kernels"], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "EDGE_KERNELS"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"default: {profile.kernel_level}" in lines, (name, r.stdout)
    gemm = {ln.split()[0]: ln.split()[1].removeprefix("gemm=") for ln in lines if " gemm=" in ln}
    simd = {d for d, impl in gemm.items() if impl not in ("ref", "none")}
    assert set(profile.fast_dtypes) == simd, (name, "fast_dtypes must list exactly the dtypes with a SIMD gemm", gemm)


@pytest.mark.slow
def test_qemu_instruction_counts_repeat_exactly(models):
    exe = cross_edgert("aarch64")
    plugin = icount.build_plugin()
    v = next(v for v in icount.VARIANTS if v.key == "aarch64/dotprod")
    work = os.path.dirname(models["q8"])
    a = icount.per_token(v, exe, plugin, models["q8"], work, PROMPT, 2, 4)
    b = icount.per_token(v, exe, plugin, models["q8"], work, PROMPT, 2, 4)
    assert a == b and a["insn_per_token"] > 0
    assert 0 < a["by_category"]["gemm"] < a["insn_per_token"]
    ref = icount.per_token(icount.VARIANTS[0], exe, plugin, models["q8"], work, PROMPT, 2, 4)
    assert ref["by_category"]["gemm"] > a["by_category"]["gemm"]  # the scalar reference does more work


@pytest.mark.slow
def test_no_instruction_count_regression_against_the_baseline(capsys):
    """bench/qemu_icount.py --compare on the SIMD levels of both architectures (q8): more than 1% above
    bench/qemu_icount_baseline.json fails; after an intended change, refresh it with --save."""
    for arch in ("aarch64", "riscv64"):
        cross_edgert(arch)  # skip if a toolchain is missing
    rc = icount.main(["--variants", "aarch64/dotprod,riscv64/rvv-vlen256", "--recipes", "q8", "--compare"])
    out = capsys.readouterr().out
    if "model files differ" in out:
        pytest.skip("the generated icount model differs from the baseline's (another torch/numpy?): " + out)
    assert rc == 0, out
    assert "aarch64/dotprod q8" in out and "riscv64/rvv-vlen256 q8" in out
