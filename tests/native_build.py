"""Native C++ test programs for the tests: build/dev/<target> when a developer build made it, else a C++-only
build of just those targets into build/<folder> (cmake + ninja; skips the test when either is missing)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def native_program(*targets: str, folder: str = "native-tests", defines: tuple = (), timeout: float = 900) -> list[str]:
    """Paths of the executables `targets` (the first one's folder holds the others)."""
    dev = [os.path.join(ROOT, "build", "dev", t) for t in targets]
    if all(os.path.isfile(p) for p in dev):
        return dev
    missing = [t for t in ("cmake", "ninja") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the native C++ tests need {', '.join(missing)} (pip install cmake ninja)")
    build = os.path.join(ROOT, "build", folder)
    for cmd in (["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DEDGE_PYTHON=OFF", "-DEDGE_TESTS=ON",
                 "-DCMAKE_BUILD_TYPE=Release", *defines],
                ["cmake", "--build", build, "--target", *targets, "-j", str(os.cpu_count() or 2)]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"native build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return [os.path.join(build, t) for t in targets]
