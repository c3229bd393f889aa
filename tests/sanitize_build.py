"""The ASan + UBSan build of the core (-DEDGE_SANITIZE=ON) for tests/test_sanitize.py and tests/test_fuzz.py.

sanitize_build() configures and builds build/sanitize once per session (ninja: a no-op when up to date):
the sanitized _core extension, the C++ tests (edge_test_kernels, edge_test_backend) and the fuzz targets
with the standalone replay + mutation driver (csrc/fuzz/). Such a _core needs the ASan runtime loaded
first, so it is never copied into runtime/edgerun/: stage_tree() copies the Python sources and the tests
into a scratch root with the sanitized _core, and asan_env() preloads the compiler's libasan.
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("EDGE_SANITIZE_BUILD") or os.path.join(ROOT, "build", "sanitize")  # env: another folder
CPP_TESTS = ("edge_test_kernels", "edge_test_backend")
FUZZ = ("fuzz_edge_file", "fuzz_tokenizer", "fuzz_blob_decode")


def sanitize_build(timeout: float = 1800) -> str:
    missing = [t for t in ("cmake", "ninja") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the sanitizer build needs {', '.join(missing)} (pip install cmake ninja)")
    try:
        import pybind11
    except ImportError:
        pytest.skip("the sanitizer build needs pybind11")
    cfg = ["cmake", "-S", ROOT, "-B", BUILD, "-G", "Ninja", "-DEDGE_SANITIZE=ON", "-DEDGE_PYTHON=ON", "-DEDGE_TESTS=ON",
           "-DEDGE_CUDA=OFF", "-DCMAKE_BUILD_TYPE=Release", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
           f"-DPython_EXECUTABLE={sys.executable}"]
    if shutil.which("ccache"):
        cfg.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
    cmds = [] if os.path.exists(os.path.join(BUILD, "build.ninja")) else [cfg]
    cmds.append(["cmake", "--build", BUILD, "--target", "_core", *CPP_TESTS, *FUZZ, "-j", str(len(os.sched_getaffinity(0)))])
    for cmd in cmds:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"sanitizer build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return BUILD


def _compiler(build: str) -> str:
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("CMAKE_CXX_COMPILER:"):
                return line.split("=", 1)[1].strip()
    return "c++"


def asan_env(build: str, leaks: bool) -> dict:
    """The environment a sanitized program runs in: reports abort; for Python, libasan preloaded and leak
    checking off (the interpreter and torch keep memory until exit by design)."""
    env = dict(os.environ, UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
               ASAN_OPTIONS=f"detect_leaks={int(leaks)}:abort_on_error=1:detect_odr_violation=0:"
                                    "allocator_may_return_null=1")  # the planner's tests ask for too much on purpose
    if not leaks:
        # libstdc++ too: loaded only later (with _core), ASan's __cxa_throw interceptor finds no real
        # __cxa_throw and aborts at the first C++ exception.
        libs = [subprocess.run([_compiler(build), f"-print-file-name={n}"], capture_output=True, text=True).stdout.strip()
                for n in ("libasan.so", "libstdc++.so")]
        if not all(os.path.isabs(lib) for lib in libs):
            pytest.skip(f"cannot find libasan.so / libstdc++.so of {_compiler(build)} to preload")
        env["LD_PRELOAD"] = " ".join(libs)
    return env


def stage_tree(build: str, dest: str) -> str:
    """dest/{runtime,converter,models,tests} copied from the tree, with the sanitized _core in runtime/edgerun/."""
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", ".cache")
    for sub in ("runtime", "converter", "models", "tests", "devices"):
        shutil.copytree(os.path.join(ROOT, sub), os.path.join(dest, sub), ignore=ignore)
    core = [n for n in os.listdir(build) if n.startswith("_core") and n.endswith(".so")]
    assert core, f"no _core*.so in {build}"
    shutil.copy(os.path.join(build, core[0]), os.path.join(dest, "runtime", "edgerun", core[0]))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), dest)
    return dest


def sanitizer_report(out: str) -> str | None:
    """The first line of an ASan / UBSan / LSan report in a program's output, or None."""
    for line in out.splitlines():
        if "ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line or ": runtime error: " in line:
            return line
    return None
