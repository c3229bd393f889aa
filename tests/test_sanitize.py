"""The core under AddressSanitizer + UndefinedBehaviorSanitizer (-DEDGE_SANITIZE=ON, tests/sanitize_build.py):
the C++ kernel and backend tests, and a pytest subset that reads untrusted or failing input — the .edge
reader and loader on bad files, MoE expert streaming with injected faults (NaN / inf
scales, a file truncated under the open store, a corrupt expert blob during eval), a truncated streamed
dense model — run against the sanitized _core. Any sanitizer report fails the test. (The tokenizer runs
under the sanitizers in tests/test_fuzz.py's fuzz_tokenizer.)"""
import os
import subprocess
import sys

import pytest

from sanitize_build import CPP_TESTS, asan_env, sanitize_build, sanitizer_report, stage_tree

# The pytest subset: files and -k filters (each file's own tests, unchanged).
SUBSET = [
    "tests/test_format.py",
    "tests/test_bad_input.py",
    "tests/test_expert_store.py::test_nan_scale_is_a_clear_error_and_isolated",
    "tests/test_expert_store.py::test_inf_scale_in_concat_down_matrix",
    "tests/test_expert_store.py::test_truncated_after_open",
    "tests/test_expert_store.py::test_threads_stress_every_expert_exact",
    "tests/test_moe_runtime.py::test_corrupt_expert_blob_fails_eval_cleanly",
    "tests/test_moe_runtime.py::test_unsupported_and_bad_moe_files",
    "tests/test_layer_stream.py::test_truncated_file_is_a_clear_error",
]


@pytest.fixture(scope="module")
def build():
    return sanitize_build()


@pytest.mark.parametrize("program", CPP_TESTS)
def test_cpp_tests_clean_under_asan_ubsan(build, program):
    r = subprocess.run([os.path.join(build, program)], capture_output=True, text=True, timeout=900,
                       env=asan_env(build, leaks=True))
    out = r.stdout + r.stderr
    assert sanitizer_report(out) is None, out[-6000:]
    assert r.returncode == 0, out[-6000:]


def test_pytest_subset_clean_under_asan_ubsan(build, tmp_path):
    root = stage_tree(build, str(tmp_path / "tree"))
    env = asan_env(build, leaks=False)
    env.pop("PYTHONPATH", None)
    # --capture=sys: fd 2 is not captured, so a sanitizer report that kills the child shows in its output
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--capture=sys", *SUBSET],
                       cwd=root, capture_output=True, text=True, timeout=1200, env=env)
    out = r.stdout + r.stderr
    assert sanitizer_report(out) is None, out[-8000:]
    assert r.returncode == 0, out[-8000:]
    assert " passed" in out and "_core" not in out.split("passed")[-1], out[-2000:]
