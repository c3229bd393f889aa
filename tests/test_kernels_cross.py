"""edge_test_kernels (csrc/tests/test_kernels.cpp) on every kernel level: aarch64 under qemu, and natively.

aarch64: scripts/cross.sh builds build/cross-aarch64 once per session (incremental: seconds when nothing
changed, about 1.5 min from scratch on 2 cores), then the program runs under qemu-aarch64 as
  cortex-a72 (Raspberry Pi 4: armv8.0, no SDOT; SDOT would be SIGILL here) -> best level "neon"
  cortex-a76 (Raspberry Pi 5: +dotprod +fp16)                                -> best level "dotprod"
  max        (+i8mm, SVE, ...)                                              -> best level "i8mm"
and must exit 0 with every level it lists checked ("level X: N checks ok"). Skipped, with the reason,
when the cross compiler, qemu-aarch64, cmake or ninja is missing.
native: runs build/dev/edge_test_kernels when a developer build made it, else builds the C++ tests alone
into build/native-tests (every x86 level this CPU has, against the reference).
"""
import os
import re
import shutil
import subprocess

import pytest

from native_build import native_program

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROSS_DIR = os.path.join(ROOT, "build", "cross-aarch64")
SYSROOT = "/usr/aarch64-linux-gnu"
QEMU_CPUS = [("cortex-a72", ["ref", "neon"]), ("cortex-a76", ["ref", "neon", "dotprod"]),
             ("max", ["ref", "neon", "dotprod", "i8mm"])]

OWN_SLOTS = {"dotprod": 14, "i8mm": 14}


def check_output(out, levels):
    """The run listed exactly `levels` and reported each one checked without failures."""
    m = re.search(r"^levels: (.*) \(best: (\w+)\)$", out, re.M)
    assert m, out
    assert m.group(1).split() == levels, out
    assert m.group(2) == levels[-1], out
    for lv in levels:
        ok = re.search(rf"^level {lv}: (\d+) checks ok", out, re.M)
        assert ok, f"level {lv} not reported ok:\n{out}"
    # every level above ref fills slots of its own and checked them; dotprod / i8mm: the 14 integer-dot gemms
    for lv in levels[1:]:
        m = re.search(rf"^level {lv}: (\d+) checks ok \((\d+) slots", out, re.M)
        assert int(m.group(1)) > 0, out
        assert int(m.group(2)) >= OWN_SLOTS.get(lv, 1), out
    assert "FAIL" not in out and out.rstrip().endswith("all ok"), out


@pytest.fixture(scope="session")
def aarch64_build():
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64", "cmake", "ninja") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"aarch64 cross test needs {', '.join(missing)} (apt install g++-aarch64-linux-gnu qemu-user)")
    if not os.path.isdir(SYSROOT):
        pytest.skip(f"no aarch64 sysroot at {SYSROOT} (apt install g++-aarch64-linux-gnu)")
    r = subprocess.run([os.path.join(ROOT, "scripts", "cross.sh"), "rpi5", CROSS_DIR], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, f"cross build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    exe = os.path.join(CROSS_DIR, "edge_test_kernels")
    assert os.path.isfile(exe) and os.path.isfile(os.path.join(CROSS_DIR, "edgert"))
    return exe


@pytest.mark.slow
@pytest.mark.parametrize("cpu,levels", QEMU_CPUS, ids=[c for c, _ in QEMU_CPUS])
def test_kernels_under_qemu(aarch64_build, cpu, levels):
    r = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", cpu, aarch64_build], capture_output=True,
                       text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"exit {r.returncode} under -cpu {cpu} (-4 = SIGILL):\n{out[-6000:]}"
    check_output(out, levels)


@pytest.mark.slow
def test_kernels_under_qemu_single_level(aarch64_build):
    """--level pins one level: on a Pi 5 CPU the neon level alone passes and dotprod is not reported."""
    r = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", "cortex-a76", aarch64_build, "--level", "neon"],
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"^level neon: \d+ checks ok", out, re.M), out
    assert not re.search(r"^level dotprod:", out, re.M), out
    r = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", "cortex-a72", aarch64_build, "--level", "dotprod"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr  # not supported on a Pi 4


@pytest.fixture(scope="session")
def native_build():
    """build/dev/edge_test_kernels when a developer build made it, else a C++-only build into build/native-tests."""
    return native_program("edge_test_kernels")[0]


@pytest.mark.slow
def test_kernels_native(native_build):
    r = subprocess.run([native_build], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    levels = re.search(r"^levels: (.*) \(best: (\w+)\)$", out, re.M).group(1).split()
    check_output(out, levels)


def check_backward_output(out, levels, own_level, min_own):
    """edge_test_backward listed `levels`, checked each without failures, and `own_level` fills >= min_own
    training slots itself (the levels above it inherit them and report 0 checks)."""
    m = re.search(r"^levels: (.*) \(best: (\w+)\)$", out, re.M)
    assert m and m.group(1).split() == levels, out
    for lv in levels:
        assert re.search(rf"^level {lv}: (\d+) checks ok", out, re.M), f"level {lv} not reported ok:\n{out}"
    own = re.search(rf"^level {own_level}: (\d+) checks ok \((\d+) slots", out, re.M)
    assert int(own.group(1)) > 0 and int(own.group(2)) >= min_own, out
    assert "FAIL" not in out and out.rstrip().endswith("all ok"), out


@pytest.mark.slow
@pytest.mark.parametrize("cpu,levels", QEMU_CPUS[:2], ids=[c for c, _ in QEMU_CPUS[:2]])
def test_backward_kernels_under_qemu(aarch64_build, cpu, levels):
    """edge_test_backward (csrc/tests/test_backward.cpp): the neon training kernels (every gemm_t dtype,
    gemm_tn_f32, rmsnorm/silu_mul/attention backward, lse/xent, adamw) vs the reference under qemu."""
    exe = os.path.join(CROSS_DIR, "edge_test_backward")
    r = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", cpu, exe], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"exit {r.returncode} under -cpu {cpu}:\n{out[-6000:]}"
    check_backward_output(out, levels, "neon", 21)


@pytest.mark.slow
def test_backward_kernels_native():
    exe = native_program("edge_test_backward")[0]
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    levels = re.search(r"^levels: (.*) \(best: (\w+)\)$", out, re.M).group(1).split()
    for lv in levels:
        assert re.search(rf"^level {lv}: (\d+) checks ok", out, re.M), out
    assert out.rstrip().endswith("all ok"), out
