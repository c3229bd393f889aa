"""Board profiles (devices/profiles/*.toml), the recipe choice of `edgeconv export --device`, the runtime's
memory plan as the converter predicts it, and the kernel / device reports of `edgerun --verbose` and `info --device`.
Cross-built binaries under qemu are checked against the profiles in test_cross_generate.py."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest

import edgerun
from edgerun import _core
from edgerun.device import (decode_bytes, get_profile, kernel_report, load_profiles, parse_profile,
                            profiles_dir)
from edgeconv.cli import main as edgeconv_main
from edgeconv.device import choose_recipe, plan_source, runtime_memory
from edgeconv.format import EdgeFile
from models.tiny import make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILES = os.path.join(ROOT, "devices", "profiles")
TARGETS = {"rpi4", "rpi5", "spacemit-k1", "k230", "visionfive2", "jetson-orin-nano", "x86-64"}
LEVELS = {"aarch64": {"ref", "neon", "dotprod", "i8mm"}, "riscv64": {"ref", "rvv"},
          "x86_64": {"ref", "avx2", "avx512", "avx512vnni"}}
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), EDGE_DEVICES_DIR=PROFILES)


@pytest.fixture(autouse=True)
def _profiles_from_tree(monkeypatch):
    # An installed edgerun may not ship the profiles; the tests read the tree's.
    monkeypatch.setenv("EDGE_DEVICES_DIR", PROFILES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(HF folder, q8 .edge, int4 .edge) of one tiny llama."""
    root = tmp_path_factory.mktemp("dev")
    make_tiny("llama", seed=5, dir=root / "hf")
    out = {}
    for recipe in ("q8", "int4"):
        out[recipe] = str(root / f"tiny.{recipe}.edge")
        assert edgeconv_main(["export", str(root / "hf"), "-o", out[recipe], "--quant", recipe, "--quiet"]) == 0
    return str(root / "hf"), out["q8"], out["int4"]


# ---- profiles -----------------------------------------------------------------------------------------

def test_profiles_cover_the_targets_and_agree_with_cross_sh():
    profiles = load_profiles(PROFILES)
    assert set(profiles) == TARGETS
    cross = open(os.path.join(ROOT, "scripts", "cross.sh")).read()
    case = {arch: set(m.group(1).split("|")) for m in re.finditer(r"^\s*([\w|.-]+)\) arch=(\w+);", cross, re.M)
            for arch in [m.group(2)]}
    for p in profiles.values():
        assert p.kernel_level in LEVELS[p.arch], p.name
        assert p.realistic_gbs <= p.peak_gbs and p.storage and all(s.source for s in p.storage)
        assert p.peak_source and p.realistic_source and all(a.source for a in p.anchors)
        if p.arch == "x86_64":
            assert p.qemu is None and not p.cross_target
            continue
        assert p.cross_target == p.name and p.cross_target in case[p.arch], (p.name, case)
        assert p.toolchain == {"aarch64": "devices/toolchains/aarch64-linux-gnu.cmake",
                               "riscv64": "devices/toolchains/riscv64-zig.cmake"}[p.arch]
        assert p.qemu.binary == f"qemu-{p.arch}"
    assert profiles["rpi4"].qemu.cpu == "cortex-a72" and profiles["rpi5"].qemu.cpu == "cortex-a76"
    assert profiles["spacemit-k1"].qemu.cpu == "rv64,v=true,vlen=256,elen=64,vext_spec=v1.0"
    assert profiles["k230"].qemu.cpu == "rv64,v=true,vlen=128,elen=64,vext_spec=v1.0"
    assert profiles["visionfive2"].qemu.cpu == "rv64" and profiles["visionfive2"].kernel_level == "ref"
    assert "dotprod" in profiles["rpi4"].lacks and "dotprod" in profiles["rpi5"].isa
    # the vector length in the qemu string is the profile's
    for p in profiles.values():
        if p.vlen:
            assert f"vlen={p.vlen}" in p.qemu.cpu and p.kernel_level == "rvv"


def test_profile_recipes_and_dtypes_are_known():
    from edgeconv.quant.dtypes import DTYPES
    from edgeconv.recipes import RECIPES
    for p in load_profiles(PROFILES).values():
        assert set(p.recipes) <= set(RECIPES), p.name
        assert set(p.fast_dtypes) <= set(DTYPES), p.name


def test_host_profile_matches_this_machine():
    p = get_profile("x86-64", PROFILES)
    if os.uname().machine == "x86_64":
        assert p.kernel_level in _core.kernel_levels()
        table = _core.kernel_table(p.kernel_level)
        simd = {d for d, impl in table["gemm"].items() if impl not in ("ref", "none")}
        assert set(p.fast_dtypes) == simd  # the profile's claim, checked against the real table


def test_bad_profiles_are_clear_errors(tmp_path):
    doc = dict(__import__("tomllib").load(open(os.path.join(PROFILES, "rpi5.toml"), "rb")))
    parse_profile(doc, "ok.toml")
    for change, words in ((lambda d: d.pop("kernel_level"), "kernel_level"),
                          (lambda d: d.update(colour="red"), "colour"),
                          (lambda d: d.update(arch="mips"), "mips"),
                          (lambda d: d.update(memory=dict(d["memory"], realistic_gbs=99.0)), "realistic_gbs"),
                          (lambda d: d.pop("qemu"), "qemu")):
        bad = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
        change(bad)
        with pytest.raises(ValueError, match=f"bad.toml: .*{words}"):
            parse_profile(bad, "bad.toml")
    (tmp_path / "rpi9.toml").write_text(open(os.path.join(PROFILES, "rpi5.toml")).read())
    with pytest.raises(ValueError, match="differs from the file name"):
        load_profiles(str(tmp_path))
    with pytest.raises(ValueError, match="unknown device 'rpi9'.*rpi5"):
        get_profile("rpi9", PROFILES)


def test_profiles_dir_env_and_tree(monkeypatch):
    assert os.path.samefile(profiles_dir(), PROFILES)
    monkeypatch.delenv("EDGE_DEVICES_DIR")
    import edgerun.device as dev
    installed = not os.path.abspath(dev.__file__).startswith(ROOT + os.sep)
    if installed and not os.path.isdir(os.path.join(os.path.dirname(dev.__file__), "devices")):
        pytest.skip("this installed edgerun ships no profiles (needs the install rule for devices/profiles, "
                    "devices/README.md)")
    assert set(load_profiles(profiles_dir())) == TARGETS  # the tree's (source checkout) or the installed copy


# ---- memory plan and decode bytes -------------------------------------------------------------------------

@pytest.mark.parametrize("threads,ctx", [(1, 16), (3, 100), (4, 200)])
def test_converter_predicts_the_runtime_memory_plan(tiny, threads, ctx):
    hf, q8, _ = tiny
    sp = plan_source(hf)
    with EdgeFile(q8) as f:
        weights = sum(t.nbytes for t in f.tensors)
    plan = edgerun.Model(q8, threads=threads, ctx=ctx).memory_plan
    assert runtime_memory(sp.hp, weights, ctx, threads) == {k: plan[k] for k in ("resident", "kv_cache", "scratch")}
    assert plan["total"] == plan["resident"] + plan["kv_cache"] + plan["scratch"]  # dense: nothing else


def test_predicted_file_sizes_are_exact(tiny):
    hf, q8, int4 = tiny
    choice = choose_recipe(hf, dataclasses.replace(get_profile("rpi5", PROFILES), recipes=("q8", "int4")), mem="1GB")
    sizes = {c.recipe: c.file_bytes for c in choice.candidates}
    assert sizes == {"q8": os.path.getsize(q8), "int4": os.path.getsize(int4)}


def test_decode_bytes_counts_one_embedding_row_unless_tied():
    cfg = {"n_layers": 2, "n_kv_heads": 2, "head_dim": 8, "tied_head": False}
    t = [{"name": "tok_embd", "nbytes": 1000 * 64, "shape": [1000, 32]},
         {"name": "blk.0.attn_q", "nbytes": 500, "shape": [16, 32]},
         {"name": "output", "nbytes": 1000 * 64, "shape": [1000, 32]}]
    kv = 2 * 2 * 10 * 16 * 4
    assert decode_bytes(t, cfg, 10) == 64 + 500 + 64000 + kv
    assert decode_bytes(t[:2], dict(cfg, tied_head=True), 10) == 64000 + 500 + kv
    assert decode_bytes(t, cfg, 0) == 64 + 500 + 64000


# ---- recipe choice ------------------------------------------------------------------------------------------

def _need(choice, recipe):
    return next(c.need for c in choice.candidates if c.recipe == recipe)


def test_choice_prefers_the_profile_order_when_it_fits(tiny):
    hf = tiny[0]
    sp = plan_source(hf)
    rpi5, rpi4 = get_profile("rpi5", PROFILES), get_profile("rpi4", PROFILES)
    c = choose_recipe(sp, rpi5, mem="1GB")
    assert c.recipe == "q8" and "first of rpi5's recipes" in c.reason and not c.warnings
    assert choose_recipe(sp, rpi4, mem="1GB").recipe == "int4"  # no SDOT: 4-bit first
    # a budget between the two: q8 is skipped as too big
    q8, i4 = _need(c, "q8"), _need(c, "int4")
    assert i4 < q8
    c2 = choose_recipe(sp, rpi5, mem=str((q8 + i4) // 2))
    assert c2.recipe == "int4" and "skipped q8 (too big)" in c2.reason
    assert "chose int4" in c2.lines()[-1]
    # the default budget is the smallest RAM option less the OS reserve
    c3 = choose_recipe(sp, rpi5)
    assert c3.budget == int(2e9 - 400e6) and "2 GB RAM" in c3.budget_what


def test_choice_errors_say_what_would_fit(tiny):
    sp = plan_source(tiny[0])
    rpi5 = get_profile("rpi5", PROFILES)
    ctx = 256
    base = choose_recipe(sp, rpi5, mem="1GB", ctx=ctx)
    budget = _need(base, "int4") - 1
    with pytest.raises(ValueError, match=r"no recipe fits rpi5.*int4.*it fits with --ctx (\d+)") as e:
        choose_recipe(sp, rpi5, mem=str(budget), ctx=ctx)
    n = int(re.search(r"--ctx (\d+)", str(e.value)).group(1))
    assert 0 < n < ctx
    assert choose_recipe(sp, rpi5, mem=str(budget), ctx=n).recipe == "int4"
    with pytest.raises(ValueError):
        choose_recipe(sp, rpi5, mem=str(budget), ctx=n + 1)
    with pytest.raises(ValueError, match=r"--quant q8 needs .*Recipes that fit: int4"):
        choose_recipe(sp, rpi5, mem=str(_need(base, "q8") - 1), ctx=ctx, quant="q8")


def test_choice_avoids_dtypes_without_a_fast_kernel(tiny):
    sp = plan_source(tiny[0])
    # A board whose SIMD level has only 4-bit kernels: q8 (q8_0) and int4 (q8_0 upgrades for sensitive
    # tensors) are skipped for int4a, which is all int4a_*.
    board = dataclasses.replace(get_profile("rpi5", PROFILES), fast_dtypes=("int4a_32", "int4a_64", "int4a_128"),
                                recipes=("q8", "int4a"))
    c = choose_recipe(sp, board, mem="1GB")
    assert c.recipe == "int4a" and "no SIMD kernel for q8_0" in c.reason
    assert set(next(x for x in c.candidates if x.recipe == "int4a").dtypes) <= set(board.fast_dtypes)
    # When only slow recipes fit, the first that fits is taken with a warning.
    only_q8 = dataclasses.replace(board, recipes=("q8",))
    c = choose_recipe(sp, only_q8, mem="1GB")
    assert c.recipe == "q8" and any("q8_0" in w for w in c.warnings)
    # An explicit --quant is kept; a dtype without a SIMD kernel is a warning.
    c = choose_recipe(sp, board, mem="1GB", quant="mxfp4")
    assert c.recipe == "mxfp4" and any("mxfp4" in w and "scalar reference" in w for w in c.warnings)
    vf2 = choose_recipe(sp, get_profile("visionfive2", PROFILES), mem="1GB")
    assert vf2.recipe == "q8" and any("scalar reference" in w for w in vf2.warnings)


# ---- command lines --------------------------------------------------------------------------------------------

def run(*args, env=None, check=True):
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300,
                       env=dict(CHILD_ENV, **(env or {})))
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_edgeconv_export_device(tiny, tmp_path):
    hf = tiny[0]
    out = tmp_path / "a.edge"
    r = run("edgeconv.cli", "export", hf, "-o", str(out), "--device", "rpi5", "--mem", "1GB", "--ctx", "128", "-q")
    assert "device rpi5" in r.stderr and "chose q8" in r.stderr
    with EdgeFile(str(out)) as f:
        assert f.metadata["quant.recipe"] == "q8"
    r = run("edgeconv.cli", "export", hf, "-o", str(out), "--device", "visionfive2", "--quant", "mxfp4", "-q")
    assert "chose mxfp4: --quant mxfp4 given" in r.stderr and "warning: visionfive2 runs the scalar" in r.stderr
    r = run("edgeconv.cli", "export", hf, "-o", str(tmp_path / "b.edge"), "--device", "rpi5", "--mem", "10KB",
            check=False)
    assert r.returncode == 2 and "no recipe fits rpi5" in r.stderr and not (tmp_path / "b.edge").exists()
    r = run("edgeconv.cli", "export", hf, "-o", str(tmp_path / "b.edge"), "--mem", "1GB", check=False)
    assert r.returncode == 2 and "add --device" in r.stderr
    r = run("edgeconv.cli", "export", hf, "-o", str(tmp_path / "b.edge"), "--device", "pi9", check=False)
    assert r.returncode == 2 and "unknown device 'pi9'" in r.stderr


def test_kernel_report_lists_every_slot():
    levels = _core.kernel_levels()
    table = _core.kernel_table(levels[-1])
    lines = kernel_report(table, levels, {"q8_0", "f32"})
    assert lines[0].startswith(f"kernels {levels[-1]} (detected {levels[-1]};")
    assert f"quantize_q8x={table['quantize_q8x']}" in lines[1] and f"attention={table['attention']}" in lines[1]
    assert any(l.split()[0] == "q8_0" and f"gemm={table['gemm']['q8_0']}" in l for l in lines)
    listed = " ".join(lines)
    for dt, impl in table["gemm"].items():
        if impl != "none":
            assert dt in listed
    ref = kernel_report(_core.kernel_table("ref"), levels, {"q8_0"}, "EDGE_KERNELS=ref")
    if len(levels) > 1:
        assert "capped by EDGE_KERNELS=ref" in ref[0]


def test_edgerun_verbose_prints_the_table(tiny):
    q8 = tiny[1]
    r = run("edgerun.cli", "generate", q8, "-p", "hello", "-n", "2", "--temp", "0", "--verbose",
            env={"EDGE_KERNELS": "ref"})
    best = _core.kernel_levels()[-1]
    assert f"edgerun: kernels ref (detected {best}" in r.stderr
    assert re.search(r"edgerun:\s+q8_0\s+gemm=ref", r.stderr) and "quantize_q8x=ref" in r.stderr
    r = run("edgerun.cli", "bench", q8, "--prompt-tokens", "4", "--gen-tokens", "2", "--repeat", "1", "--json", "-v")
    assert f"edgerun: kernels {best} (detected {best};" in r.stderr


def test_edgerun_info_device(tiny):
    q8 = tiny[1]
    r = run("edgerun.cli", "info", q8, "--device", "rpi5", "--ctx", "64")
    assert "rpi5: Raspberry Pi 5" in r.stdout and ": fits" in r.stdout
    m = edgerun.Model(q8, ctx=64)
    b = decode_bytes(_core.file_info(q8)["tensors"], m.config, 32)
    assert f"{b / 1e6:.1f} MB/token -> {11.5e9 / b:.1f} tok/s" in r.stdout
    r = run("edgerun.cli", "info", q8, "--device", "nope", check=False)
    assert r.returncode == 2 and "unknown device" in r.stderr


def test_icount_compare_flags_regressions():
    import importlib.util
    spec = importlib.util.spec_from_file_location("qemu_icount_t", os.path.join(ROOT, "bench", "qemu_icount.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["qemu_icount_t"] = mod
    spec.loader.exec_module(mod)
    base = {"model_sha256": {"q8": "a"}, "variants": {"x/y": {"recipes": {"q8": {"insn_per_token": 1000}}}}}

    def res(n, sha="a"):
        return {"model_sha256": {"q8": sha}, "variants": {"x/y": {"recipes": {"q8": {"insn_per_token": n}}}}}
    assert mod.compare(res(1005), base, 0.01) == (["x/y q8: 1,005 vs 1,000 (1.005x) same"], False)
    lines, bad = mod.compare(res(1020), base, 0.01)
    assert bad and "REGRESSION" in lines[0]
    lines, bad = mod.compare(res(900), base, 0.01)
    assert not bad and "improved" in lines[0]
    lines, _ = mod.compare(res(1000, sha="b"), base, 0.01)
    assert "model files differ" in lines[0]
