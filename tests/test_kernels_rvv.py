"""edge_test_kernels (csrc/tests/test_kernels.cpp) on riscv64 under qemu: the RVV 1.0 kernels
(csrc/kernels/rvv/) at several vector lengths, and the scalar fallback on a core without V.

scripts/cross.sh spacemit-k1 builds build/cross-riscv64 once per session with zig's clang
(devices/toolchains/riscv64-zig.cmake; incremental: seconds when nothing changed, a few minutes from
scratch on 2 cores). One static rv64gc binary serves every riscv64 board, so it runs as
  -cpu rv64,v=true,vlen=128   (Kendryte K230, C908)          -> best level "rvv"
  -cpu rv64,v=true,vlen=256   (SpacemiT K1, X60)             -> best level "rvv"
  -cpu rv64,v=true,vlen=512   (vector-length agnostic check) -> best level "rvv"
  -cpu rv64                   (VisionFive 2: rv64gc, no V)   -> "ref" only, and no SIGILL
and must exit 0 with every level it lists checked. The binary must also keep vector instructions inside
the rvv kernels (an inline function compiled with V and kept by the linker would SIGILL without V).
Skipped, with the reason, when qemu-riscv64, cmake, ninja or the ziglang package is missing.
"""
import bisect
import importlib.util
import os
import re
import shutil
import struct
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROSS_DIR = os.path.join(ROOT, "build", "cross-riscv64")
RVV_CPU = "rv64,v=true,vlen={},elen=64,vext_spec=v1.0"
EM_RISCV = 243


def check_output(out, levels):
    """The run listed exactly `levels` (best last) and reported each one checked without failures."""
    m = re.search(r"^levels: (.*) \(best: (\w+)\)$", out, re.M)
    assert m, out
    assert m.group(1).split() == levels, out
    assert m.group(2) == levels[-1], out
    for lv in levels:
        ok = re.search(rf"^level {lv}: (\d+) checks ok", out, re.M)
        assert ok and int(ok.group(1)) > 0, f"level {lv} not reported ok:\n{out}"
    assert "FAIL" not in out and out.rstrip().endswith("all ok"), out


def elf_info(path):
    """(e_machine, has PT_INTERP) of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, path
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return machine, 3 in types  # PT_INTERP = 3


@pytest.fixture(scope="session")
def rvv_build():
    missing = [t for t in ("qemu-riscv64", "cmake", "ninja") if shutil.which(t) is None]
    if importlib.util.find_spec("ziglang") is None:
        missing.append("ziglang (pip install ziglang)")
    if missing:
        pytest.skip(f"riscv64 cross test needs {', '.join(missing)} (qemu-riscv64: apt install qemu-user)")
    r = subprocess.run([os.path.join(ROOT, "scripts", "cross.sh"), "spacemit-k1", CROSS_DIR], capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, f"cross build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    exe = os.path.join(CROSS_DIR, "edge_test_kernels")
    assert os.path.isfile(exe) and os.path.isfile(os.path.join(CROSS_DIR, "edgert"))
    return exe


def run_qemu(cpu, exe, *args):
    r = subprocess.run(["qemu-riscv64", "-cpu", cpu, exe, *args], capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != "EDGE_KERNELS"})
    return r.returncode, r.stdout + r.stderr


@pytest.mark.slow
def test_binaries_are_static_riscv64(rvv_build):
    """qemu-riscv64 (and any board) runs them without a sysroot."""
    for name in ("edge_test_kernels", "edgert"):
        machine, interp = elf_info(os.path.join(CROSS_DIR, name))
        assert machine == EM_RISCV, (name, machine)
        assert not interp, f"{name} is dynamically linked"


@pytest.mark.slow
@pytest.mark.parametrize("vlen", [128, 256, 512])
def test_rvv_kernels_under_qemu(rvv_build, vlen):
    rc, out = run_qemu(RVV_CPU.format(vlen), rvv_build)
    assert rc == 0, f"exit {rc} at VLEN {vlen}:\n{out[-6000:]}"
    check_output(out, ["ref", "rvv"])
    own = int(re.search(r"^level rvv: \d+ checks ok \((\d+) slots", out, re.M).group(1))
    # every gemm slot (18), every dequant slot but the import-only q5_0 / q4_k / q6_k (15), quantize_q8x,
    # attention over the 5 KV forms, attention_block (3), silu_mul
    assert own >= 43, out


@pytest.mark.slow
def test_no_vector_unit_falls_back_to_ref(rvv_build):
    """rv64gc without V (VisionFive 2): the hwcap has no 'V', only "ref" is offered, nothing traps."""
    rc, out = run_qemu("rv64", rvv_build)
    assert rc == 0, f"exit {rc} without V (-4 = SIGILL):\n{out[-6000:]}"
    check_output(out, ["ref"])
    rc, out = run_qemu("rv64", rvv_build, "--level", "rvv")
    assert rc == 2 and "not supported" in out, out
    rc, out = run_qemu("rv64", os.path.join(CROSS_DIR, "edgert"), "kernels")
    assert rc == 0 and "default: ref" in out.splitlines(), out


@pytest.mark.slow
def test_vector_instructions_only_in_rvv_kernels(rvv_build):
    """Every function of edgert holding an RVV instruction belongs to the rvv kernels (namespace edge::rvv or
    a *_rvv entry point): nothing the rv64gc core runs was compiled with V."""
    objdump, nm = shutil.which("llvm-objdump"), shutil.which("llvm-nm")
    if not objdump or not nm:
        pytest.skip("needs llvm-objdump and llvm-nm (apt install llvm)")
    exe = os.path.join(CROSS_DIR, "edgert")
    syms = []
    for line in subprocess.run([nm, "-n", "-C", "--defined-only", exe], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW" and not parts[2].startswith(".L"):
            syms.append((int(parts[0], 16), parts[2]))
    assert syms
    dis = subprocess.run([objdump, "-d", "--mattr=+v", "--no-show-raw-insn", exe], capture_output=True, text=True,
                         check=True).stdout
    addrs = [a for a, _ in syms]
    owners = set()
    for m in re.finditer(r"^\s*([0-9a-f]+):\s+(v[a-z0-9.]+)\s", dis, re.M):
        i = bisect.bisect_right(addrs, int(m.group(1), 16)) - 1
        owners.add(syms[i][1] if i >= 0 else "?")
    assert owners, "no RVV instruction at all: the rvv kernels were not built with V"
    outside = sorted(o for o in owners if "edge::rvv::" not in o and not re.search(r"\w+_rvv\(", o))
    assert not outside, f"vector instructions outside the rvv kernels: {outside[:20]}"


@pytest.mark.slow
@pytest.mark.parametrize("vlen", [128, 256])
def test_rvv_backward_kernels_under_qemu(rvv_build, vlen):
    """edge_test_backward (csrc/tests/test_backward.cpp): the rvv training kernels (every gemm_t dtype,
    gemm_tn_f32, attention/rmsnorm/silu_mul backward, lse/xent, adamw) vs the reference."""
    rc, out = run_qemu(RVV_CPU.format(vlen), os.path.join(CROSS_DIR, "edge_test_backward"))
    assert rc == 0, f"exit {rc} at VLEN {vlen}:\n{out[-6000:]}"
    m = re.search(r"^levels: (.*) \(best: (\w+)\)$", out, re.M)
    assert m and m.group(1).split() == ["ref", "rvv"], out
    assert re.search(r"^level ref: \d+ checks ok", out, re.M), out
    own = re.search(r"^level rvv: (\d+) checks ok \((\d+) slots", out, re.M)
    assert own and int(own.group(1)) > 0 and int(own.group(2)) >= 21, out  # 14 gemm_t + 7
    assert "FAIL" not in out and out.rstrip().endswith("all ok"), out
