"""The execution seam's CPU backend and planner in C++ (csrc/tests/test_backend.cpp): every op of
csrc/backend/backend.h against float64 references on every kernel level this CPU runs, with 1 and 3
threads giving the same bits, plus the planner's accounting and allocation. Built like the kernel test
(build/dev when a developer build made it, else a C++-only build)."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exe():
    dev = os.path.join(ROOT, "build", "dev", "edge_test_backend")
    if os.path.isfile(dev):
        return dev
    missing = [t for t in ("cmake", "ninja") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the C++ backend test needs {', '.join(missing)} (pip install cmake ninja)")
    build = os.path.join(ROOT, "build", "native-tests")
    for cmd in (["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DEDGE_PYTHON=OFF", "-DEDGE_TESTS=ON",
                 "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", build, "--target", "edge_test_backend", "-j", str(os.cpu_count() or 2)]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"native build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return os.path.join(build, "edge_test_backend")


def test_cpu_backend_ops_and_planner(exe):
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    assert m and int(m.group(2)) == 0 and int(m.group(1)) >= 20, out[-2000:]
    assert "level ref: checked" in out


def test_backend_test_fails_on_unknown_argument(exe):
    assert subprocess.run([exe, "--bogus"], capture_output=True, text=True, timeout=60).returncode == 2
