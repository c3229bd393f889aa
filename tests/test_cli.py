"""The edgerun / edgeconv command lines end to end on a tiny model (with a tokenizer and chat template),
each in a child process as a user would run them."""

import json
import os
import subprocess
import sys

import pytest

from models.tiny import make_tiny

CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def run(*args, stdin=None, check=True):
    r = subprocess.run([sys.executable, "-m", *args], input=stdin, capture_output=True, text=True, timeout=300,
                       env=CHILD_ENV)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    make_tiny("llama", seed=3, dir=root / "hf")
    out = root / "tiny.edge"
    run("edgeconv.cli", "export", str(root / "hf"), "-o", str(out), "--quant", "q8", "-q")
    return str(out)


def test_inspect_and_verify(model):
    info = json.loads(run("edgeconv.cli", "inspect", model, "--json").stdout)
    assert info["metadata"]["general.architecture"]["value"] == "llama"
    assert "checksums match" in run("edgerun.cli", "verify", model).stdout


def test_generate_json_is_deterministic(model):
    a = json.loads(run("edgerun.cli", "generate", model, "--prompt", "hello world", "-n", "8", "--temp", "0",
                       "--json").stdout)
    b = json.loads(run("edgerun.cli", "generate", model, "--prompt", "hello world", "-n", "8", "--temp", "0",
                       "--json", "--seed", "7").stdout)
    assert a["tokens"] == b["tokens"] and 1 <= len(a["tokens"]) <= 8
    s1 = json.loads(run("edgerun.cli", "generate", model, "-p", "hello", "-n", "8", "--temp", "1", "--seed", "5",
                        "--json").stdout)
    s2 = json.loads(run("edgerun.cli", "generate", model, "-p", "hello", "-n", "8", "--temp", "1", "--seed", "5",
                        "--json").stdout)
    assert s1["tokens"] == s2["tokens"]


def test_bench_and_perplexity_json(model, tmp_path):
    res = json.loads(run("edgerun.cli", "bench", model, "--threads", "2", "--prompt-tokens", "16", "--gen-tokens",
                         "8", "--repeat", "1", "--json").stdout)
    assert res["prefill_tok_s"] > 0 and res["decode_tok_s"] > 0 and res["peak_rss_mb"] > 0
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 80)
    ppl = json.loads(run("edgerun.cli", "perplexity", model, str(text), "--ctx", "64", "--chunks", "3",
                         "--json").stdout)
    assert ppl["tokens"] == 3 * (64 - 64 // 2 - 1) and ppl["ppl"] > 1


def test_chat_reads_stdin_and_handles_commands(model):
    r = run("edgerun.cli", "chat", model, "--temp", "0", "--max-tokens", "8", "--stats",
            stdin="hello there\n/reset\nhi again\n/exit\n")
    assert "conversation cleared" in r.stderr
    assert r.stderr.count("tok/s") == 2  # one --stats line per reply


def test_mem_budget_refusal_is_a_clear_error(model):
    r = run("edgerun.cli", "bench", model, "--mem", "1KB", "--json", check=False)
    assert r.returncode == 2 and "smaller quantization recipe" in r.stderr


def test_bad_arguments(model, tmp_path):
    r = run("edgerun.cli", "generate", str(tmp_path / "nope.edge"), "-p", "x", check=False)
    assert r.returncode != 0 and "nope.edge" in r.stderr
    r = run("edgeconv.cli", "export", model, "-o", str(tmp_path / "x.edge"), "--quant", "int3", check=False)
    assert r.returncode != 0 and "int3" in r.stderr
