"""The fuzz targets in CI, bounded (tests/fuzz/run.py): every C++ target (csrc/fuzz/, built by the
sanitizer build with the standalone replay + mutation driver) and every Python importer target
(tests/fuzz/py_targets.py, atheris when installed, else the plain mutator) replays its seed corpus —
the regress-* inputs of fixed findings included — and then runs a bounded number of fresh mutants.
Long local runs: python tests/fuzz/run.py --runs 10000 --jobs N (see its --help)."""
import json
import os
import subprocess
import sys

import pytest

from sanitize_build import ROOT, sanitize_build

RUN = os.path.join(ROOT, "tests", "fuzz", "run.py")


def _run(*args, timeout=600):
    r = subprocess.run([sys.executable, RUN, "--json", *args], capture_output=True, text=True, timeout=timeout)
    assert r.stdout.strip(), r.stderr[-4000:]
    summary = json.loads(r.stdout)
    bad = [x for x in summary["results"] if not x["ok"]]
    assert r.returncode == 0 and not bad, "\n\n".join(t for x in bad for t in x["tails"])[-8000:]
    return summary["results"]


def test_cpp_fuzz_targets_replay_and_mutate():
    build = sanitize_build()
    results = _run("--targets", "edge_file,tokenizer,blob_decode", "--build", build, "--runs", "400",
                   "--seconds", "20")
    for x in results:  # the whole corpus replayed, then fresh inputs
        n_corpus = len(os.listdir(os.path.join(ROOT, "tests", "fuzz", "corpus", x["target"])))
        assert x["runs"] > n_corpus, x


@pytest.mark.parametrize("target", ["gguf", "pt", "safetensors", "hf_config", "onnx"])
def test_python_fuzz_target(target):
    pytest.importorskip("onnx") if target == "onnx" else None
    pytest.importorskip("torch") if target == "pt" else None
    pytest.importorskip("gguf") if target == "gguf" else None
    (x,) = _run("--targets", target, "--runs", "60", "--seconds", "15")
    assert x["runs"] > len(os.listdir(os.path.join(ROOT, "tests", "fuzz", "corpus", target))), x


@pytest.mark.parametrize("target,name,phrase", [
    ("gguf", "regress-nan-tensor-unnamed", "contains NaN or infinity"),  # export's message lacked the file
    ("hf_config", "regress-bad-json-unnamed", "config.json is not valid JSON"),  # json's own error, no file
])
def test_python_regressions_name_the_input(target, name, phrase):
    """Findings of the Python targets, fixed: the input fails with a ValueError that names the file and says why."""
    pytest.importorskip("gguf") if target == "gguf" else None
    sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
    import py_targets

    data = open(os.path.join(ROOT, "tests", "fuzz", "corpus", target, name), "rb").read()
    src = py_targets._file("m.gguf", data) if target == "gguf" else py_targets._folder("config.json", data)
    from edgeconv.export import export

    with pytest.raises(ValueError) as e:
        export(src, os.path.join(py_targets._scratch, "out.edge"), recipe="q8", progress=False, log=lambda m: None)
    msg = " ".join(str(e.value).split())
    assert src in msg and phrase in msg, msg
