"""The execution seam's CPU backend and planner in C++ (csrc/tests/test_backend.cpp): every op of
csrc/backend/backend.h against float64 references on every kernel level this CPU runs, with 1 and 3
threads giving the same bits, plus the planner's accounting and allocation. Built like the kernel test
(build/dev when a developer build made it, else a C++-only build)."""
import re
import subprocess

import pytest

from native_build import native_program


@pytest.fixture(scope="module")
def exe():
    return native_program("edge_test_backend")[0]


def test_cpu_backend_ops_and_planner(exe):
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    assert m and int(m.group(2)) == 0 and int(m.group(1)) >= 20, out[-2000:]
    assert "level ref: checked" in out


def test_backend_test_fails_on_unknown_argument(exe):
    assert subprocess.run([exe, "--bogus"], capture_output=True, text=True, timeout=60).returncode == 2
