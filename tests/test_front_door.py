"""The front door (issue 12 §5, §4 first bullet): every bad input, bad option and Ctrl-C that a new user can
produce reaches them as one line on stderr and a conventional exit code (edgerun.cli_common: 1 a failed
check, 2 bad input, 130 interrupted), never a traceback. Driven through `python -m edgerun.cli` /
`python -m edgeconv.cli` / edgert in child processes, as a user runs them; the GGUF mutation test calls the
exporter in-process (the CLI wrapper around it is covered by the subprocess cases)."""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

from models.tiny import make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), PYTHONUNBUFFERED="1")
CHILD_ENV.pop("EDGE_TRACEBACK", None)


def run(*args, stdin=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env or CHILD_ENV)


def assert_one_line_error(r, rc: int, *phrases: str, prog: str = "edgerun") -> str:
    """rc as expected, no traceback anywhere, stderr's last line is `prog: error: ...` with every phrase."""
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-3000:]
    assert r.returncode == rc, (r.returncode, out[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{prog}: error: ") or lines[0].startswith(f"{prog} "), lines[0]
    for p in phrases:
        assert p.lower() in lines[0].lower(), (p, lines[0])
    return lines[0]


def edgert_exe() -> str | None:
    exe = os.path.join(ROOT, "build", "dev", "edgert")  # this tree's build first (an installed one may be older)
    return exe if os.path.exists(exe) else shutil.which("edgert")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny llama (HF folder, GGUF, .edge) and the bad inputs of the matrix below."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_converter import write_gguf

    from edgeconv.export import export

    root = tmp_path_factory.mktemp("front")
    model, _, _ = make_tiny("llama", seed=3, dir=root / "hf")
    write_gguf(str(root / "hf"), model, str(root / "m.gguf"), permute=True)
    export(str(root / "hf"), str(root / "tiny.edge"), recipe="q8", progress=False, log=lambda m: None)
    gguf_bytes = open(root / "m.gguf", "rb").read()
    (root / "trunc.gguf").write_bytes(gguf_bytes[:300000])  # inside the tensor data
    (root / "random.pt").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(64))
    (root / "empty_dir").mkdir()
    edge_bytes = open(root / "tiny.edge", "rb").read()
    (root / "trunc.edge").write_bytes(edge_bytes[:300])
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00" * 100)
    (root / "text.txt").write_text("the quick brown fox jumps over the lazy dog. " * 60)
    cache = root / "cache"
    cache.mkdir()
    env = dict(CHILD_ENV, EDGERUN_CACHE=str(cache))
    return {"root": root, "edge": str(root / "tiny.edge"), "gguf": str(root / "m.gguf"), "env": env,
            "cache": cache, "gguf_bytes": gguf_bytes}


BAD = {  # input -> (path in the fixture's folder, phrases of the one-line error of a converting command)
    "dir": ("empty_dir", ["empty_dir", "no config.json"]),
    "truncated_gguf": ("trunc.gguf", ["trunc.gguf", "truncated", "blk.1.ffn_up.weight"]),
    "random_pt": ("random.pt", ["random.pt", "not a PyTorch checkpoint"]),
    "onnx": ("model.onnx", ["model.onnx", "ONNX", "not supported yet"]),
    "missing": ("nope.gguf", ["nope.gguf", "no such file"]),
}
MATRIX = [("generate", b) for b in BAD] + [("chat", "dir"), ("chat", "onnx"), ("bench", "truncated_gguf"),
                                           ("bench", "missing"), ("info", "random_pt"), ("info", "dir"),
                                           ("perplexity", "truncated_gguf"), ("perplexity", "missing")]


@pytest.mark.parametrize("cmd,bad", MATRIX)
def test_edgerun_bad_model_is_one_line(tiny, cmd, bad):
    name, phrases = BAD[bad]
    path = str(tiny["root"] / name)
    extra = {"generate": ["-p", "hi"], "perplexity": [str(tiny["root"] / "text.txt")]}.get(cmd, [])
    r = run("edgerun.cli", cmd, path, *extra, stdin="", env=tiny["env"])
    assert_one_line_error(r, 2, *phrases)
    assert not list(tiny["cache"].glob("*.edge"))  # nothing (half-)written into the cache


@pytest.mark.parametrize("bad", list(BAD))
def test_edgeconv_export_bad_source_is_one_line(tiny, bad):
    name, phrases = BAD[bad]
    out = tiny["root"] / "out.edge"
    r = run("edgeconv.cli", "export", str(tiny["root"] / name), "-o", str(out), "--quant", "q8", "-q")
    assert_one_line_error(r, 2, *phrases, prog="edgeconv")
    assert not out.exists()


@pytest.mark.parametrize("args,rc,phrases", [
    (["edgerun.cli", "verify", "{root}/empty_dir"], 2, ["empty_dir", "not a regular file"]),
    (["edgerun.cli", "verify", "{root}/nope.edge"], 2, ["nope.edge"]),
    (["edgerun.cli", "verify", "{root}/trunc.edge"], 2, ["truncated"]),  # 1 is a checksum mismatch
    (["edgerun.cli", "perplexity", "{edge}", "{root}/empty_dir"], 2, ["empty_dir", "folder"]),
    (["edgerun.cli", "perplexity", "{edge}", "{root}/binary.txt"], 2, ["binary.txt", "not UTF-8"]),
    (["edgerun.cli", "perplexity", "{edge}", "{root}/nope.txt"], 2, ["nope.txt", "no such file"]),
    (["edgeconv.cli", "inspect", "{root}/empty_dir"], 2, ["empty_dir", "directory"]),
    (["edgeconv.cli", "inspect", "{root}/nope.edge"], 2, ["nope.edge", "no such file"]),
    (["edgeconv.cli", "inspect", "{root}/m.gguf"], 2, ["m.gguf", "not a .edge file"]),
    (["edgeconv.cli", "inspect", "{root}/trunc.edge"], 2, ["trunc.edge"]),
    (["edgeconv.cli", "verify", "{root}/trunc.edge"], 2, ["trunc.edge", "truncated"]),
    (["edgeconv.cli", "verify", "{root}/empty_dir"], 2, ["empty_dir", "directory"]),
])
def test_other_bad_files_are_one_line(tiny, args, rc, phrases):
    args = [a.format(root=tiny["root"], edge=tiny["edge"]) for a in args]
    r = run(*args, env=tiny["env"])
    out = r.stdout + r.stderr
    assert "Traceback" not in out and r.returncode == rc, (r.returncode, out[-2000:])
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and all(p.lower() in line[0].lower() for p in phrases), r.stderr


# ---- numeric options: validated by their argparse types, one line, exit 2 ------------------------------

BAD_OPTIONS = [
    ("generate", ["--threads", "0"], "--threads"), ("generate", ["-t", "-3"], "--threads"),
    ("generate", ["-t", "100000"], "CPUs"), ("generate", ["-n", "0"], "-n"), ("generate", ["-n", "-2"], "-n"),
    ("generate", ["-n", "x"], "integer"), ("generate", ["--ctx", "0"], "--ctx"), ("generate", ["--ctx", "-5"], "--ctx"),
    ("generate", ["--temp", "-1"], "--temp"), ("generate", ["--temp", "nan"], "finite"),
    ("generate", ["--top-p", "5"], "--top-p"), ("generate", ["--min-p", "1.5"], "--min-p"),
    ("generate", ["--top-k", "-1"], "--top-k"), ("generate", ["--repeat-penalty", "0"], "--repeat-penalty"),
    ("generate", ["--seed", "-1"], "--seed"), ("generate", ["--mem", "0"], "--mem"),
    ("generate", ["--mem", "garbage"], "garbage"), ("generate", ["--gpu-mem", "0"], "--gpu-mem"),
    ("generate", ["--io-threads", "0"], "--io-threads"), ("generate", ["--moe-lowbit-threshold", "2"], "threshold"),
    ("bench", ["--prompt-tokens", "0"], "--prompt-tokens"), ("bench", ["--gen-tokens", "-1"], "--gen-tokens"),
    ("bench", ["--repeat", "0"], "--repeat"), ("perplexity", ["--ctx", "2"], "--ctx"),
    ("perplexity", ["--chunks", "0"], "--chunks"), ("chat", ["--max-tokens", "0"], "--max-tokens"),
    ("info", ["--ram", "-1"], "--ram"),
]


@pytest.mark.parametrize("cmd,opt,phrase", BAD_OPTIONS, ids=[f"{c}{' '.join(o)}" for c, o, _ in BAD_OPTIONS])
def test_edgerun_numeric_options_are_checked(tiny, cmd, opt, phrase):
    extra = {"generate": ["-p", "hi"], "perplexity": [str(tiny["root"] / "text.txt")]}.get(cmd, [])
    r = run("edgerun.cli", cmd, tiny["edge"], *extra, *opt, stdin="")
    assert_one_line_error(r, 2, phrase, prog=f"edgerun {cmd}")


@pytest.mark.parametrize("opt", [["--calib-tokens", "0"], ["--align", "3"], ["--ctx", "-1", "--device", "rpi5"],
                                 ["--mem", "0", "--device", "rpi5"], ["--expert-bits", "0"], ["--gptq-damp", "-1"]])
def test_edgeconv_numeric_options_are_checked(tiny, opt):
    r = run("edgeconv.cli", "export", tiny["gguf"], "-o", str(tiny["root"] / "o.edge"), *opt)
    assert_one_line_error(r, 2, opt[0], prog="edgeconv export")


def test_valid_edge_of_ranges_run(tiny):
    # -n -1 is llama.cpp's "until the end of the text or of the context"
    r = run("edgerun.cli", "generate", tiny["edge"], "-p", "hello", "-n", "-1", "--ctx", "40", "--temp", "0",
            "--json", "-t", "2", "--top-k", "0", "--top-p", "1", "--min-p", "0")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["prompt_tokens"] + len(res["tokens"]) == 40 or res["tokens"][-1] == 2
    r = run("edgerun.cli", "generate", tiny["edge"], "-p", "hello", "-n", "1", "--json", "--mem", "1GB")
    assert r.returncode == 0 and len(json.loads(r.stdout)["tokens"]) == 1, r.stderr


# ---- --version, --help ------------------------------------------------------------------------------------

def _pyproject_version() -> str:
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    return re.search(r'^version = "([0-9.]+)"', text, re.M).group(1)


def test_version_is_one_number_everywhere():
    v = _pyproject_version()
    for mod, prog in (("edgerun.cli", "edgerun"), ("edgeconv.cli", "edgeconv")):
        r = run(mod, "--version")
        assert r.returncode == 0 and r.stdout.strip() == f"{prog} {v}", (r.stdout, r.stderr)
    exe = edgert_exe()
    if exe:
        r = subprocess.run([exe, "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == f"edgert {v}", r.stdout
    import edgeconv
    import edgerun
    assert edgerun.__version__ == edgeconv.__version__ == v


def _parsers(p):
    yield p
    for a in p._actions:
        if a.__class__.__name__ == "_SubParsersAction":
            for sp in a.choices.values():
                yield from _parsers(sp)


@pytest.mark.parametrize("mod", ["edgerun.cli", "edgeconv.cli"])
def test_every_help_shows_defaults_and_exit_codes(mod):
    import importlib

    root = importlib.import_module(mod).build_parser()
    for p in _parsers(root):
        text = p.format_help()
        assert "exit codes: 0 ok" in text and "130 interrupted" in text, p.prog
        for a in p._actions:
            if not a.option_strings or a.nargs == 0 or a.required:  # positionals, flags, --help, required
                continue
            assert "default" in p._get_formatter()._expand_help(a).lower(), (p.prog, a.option_strings)
    r = run(mod, "--help")
    assert r.returncode == 0 and "exit codes" in r.stdout


def test_generate_help_shows_the_values(tiny):
    r = run("edgerun.cli", "generate", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for s in ("default 40", "(default: 128)", "-1 = until the end", "default: all"):
        assert s in text, s


# ---- chat: a message longer than the context does not end the session -----------------------------------

def test_chat_message_longer_than_context_keeps_the_session(tiny):
    long = "tell me about " + "many many words " * 40
    r = run("edgerun.cli", "chat", tiny["edge"], "--ctx", "64", "--temp", "0", "--max-tokens", "4", "--stats",
            stdin=f"{long}\nhi\n/exit\n")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "message not sent" in r.stderr and "do not fit the context of 64" in r.stderr
    assert r.stderr.count("tok/s") == 1  # the short message after it got its reply


def test_chat_context_shift_drops_the_oldest_turns(tiny):
    turns = "".join(f"message number {i} with some words\n" for i in range(8))
    r = run("edgerun.cli", "chat", tiny["edge"], "--ctx", "128", "--temp", "0", "--max-tokens", "8", "--stats",
            "--system", "be brief", stdin=turns + "/exit\n")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "oldest message" in r.stderr and r.stderr.count("tok/s") == 8


# ---- Ctrl-C: SIGINT to the child in the middle of the long operation: exit 130, one line ----------------

def _interrupt_after(cmd: list[str], marker: str, stream: str, env=None, stdin=None, timeout=120, settle=0.0):
    """Start cmd, wait until `marker` appears on `stream` ("stdout" / "stderr") and `settle` seconds more
    (so that the line being printed is finished), send SIGINT, return
    (rc, stdout, stderr). The other stream goes to a file so that neither pipe can fill."""
    side = tempfile.TemporaryFile()
    kw = {"stdout": subprocess.PIPE, "stderr": side} if stream == "stdout" else {"stdout": side, "stderr": subprocess.PIPE}
    p = subprocess.Popen(cmd, env=env or CHILD_ENV, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                         **kw)
    if stdin:
        p.stdin.write(stdin.encode())
        p.stdin.flush()
    pipe = p.stdout if stream == "stdout" else p.stderr
    seen, t0 = b"", time.monotonic()
    try:
        while marker.encode() not in seen:
            assert time.monotonic() - t0 < timeout and p.poll() is None, (p.poll(), seen[-2000:])
            if select.select([pipe], [], [], 0.5)[0]:
                seen += os.read(pipe.fileno(), 65536)
        time.sleep(settle)
        p.send_signal(signal.SIGINT)
        rest, t1 = b"", time.monotonic()
        while time.monotonic() - t1 < 60:  # to EOF, with a deadline (the child must end by itself)
            if select.select([pipe], [], [], 0.5)[0]:
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    break
                rest += chunk
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    side.seek(0)
    other = side.read().decode(errors="replace")
    side.close()
    text = (seen + rest).decode(errors="replace")
    return (p.returncode, text, other) if stream == "stdout" else (p.returncode, other, text)


def _screen_lines(text: str) -> list[str]:
    """text's lines as a terminal shows them: "\r" goes back to the line's start and what follows overwrites
    it (a progress bar redraws and clears itself so); trailing blanks and blank last lines dropped."""
    lines = []
    for raw in text.split("\n"):
        cells: list[str] = []
        for piece in raw.split("\r"):
            cells[:len(piece)] = piece
        lines.append("".join(cells).rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_close_bars_clears_a_bar_interrupted_inside_tqdm(monkeypatch):
    """A Ctrl-C inside tqdm()'s first drawing leaves a bar without last_print_t, which tqdm's close() skips:
    cli_common's _close_bars ends its line, so the error line stands alone (CI saw it glued to the bar)."""
    import io

    from tqdm import tqdm

    from edgerun import cli_common
    fp = io.StringIO()
    bar = tqdm(range(75), desc="big.edge", unit="tensor", leave=False, file=fp)
    del bar.last_print_t  # as if interrupted between the first refresh and the end of __init__
    cli_common._close_bars()
    fp.write("edgeconv: interrupted; nothing written\n")
    assert _screen_lines(fp.getvalue())[-1] == "edgeconv: interrupted; nothing written", fp.getvalue()


def _assert_last_line(err: str, line: str) -> None:
    """stderr's last line, as a terminal shows it, is exactly `line`: no progress bar's text left before it."""
    last = _screen_lines(err)[-1] if err.strip() else ""
    assert last == line, (last, err[-800:])


def _assert_interrupted(rc, out, err, prog="edgerun", line="interrupted"):
    assert "Traceback" not in out + err, err[-3000:]
    assert rc == 130, (rc, err[-2000:])
    _assert_last_line(err, f"{prog}: {line}")


def test_ctrl_c_during_generate(tiny):
    rc, out, err = _interrupt_after([sys.executable, "-m", "edgerun.cli", "generate", tiny["edge"], "-p", "hi",
                                     "-n", "-1", "--ctx", "200000", "--temp", "0"], " ", "stdout")
    _assert_interrupted(rc, out, err)


def test_ctrl_c_during_perplexity(tiny):
    big = tiny["root"] / "big.txt"
    big.write_text("the quick brown fox jumps over the lazy dog. " * 20000)
    rc, out, err = _interrupt_after([sys.executable, "-m", "edgerun.cli", "perplexity", tiny["edge"], str(big),
                                     "--ctx", "64", "--verbose"], "edgerun: kernels", "stderr", settle=0.5)
    _assert_interrupted(rc, out, err)


def test_ctrl_c_in_chat(tiny):
    # during a reply: the reply ends and the session goes on (llama.cpp's interactive mode); /exit is rc 0
    cmd = [sys.executable, "-m", "edgerun.cli", "chat", tiny["edge"], "--ctx", "200000", "--max-tokens", "-1",
           "--temp", "0"]
    p = subprocess.Popen(cmd, env=CHILD_ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"hello\n")
    p.stdin.flush()
    seen = b""
    while len(seen) < 200:  # "> " then the reply's first pieces
        assert select.select([p.stdout], [], [], 60)[0] and p.poll() is None
        seen += os.read(p.stdout.fileno(), 4096)
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    out, err = p.communicate(b"/exit\n", timeout=60)
    assert p.returncode == 0 and b"Traceback" not in err, err[-2000:]
    # at the prompt: Ctrl-C quits with 130
    # (settle: a signal that lands between input()'s prompt and its read() waits for the read, in CPython)
    rc, out, err = _interrupt_after(cmd, "> ", "stdout", stdin="", settle=0.5)
    _assert_interrupted(rc, out, err)


@pytest.fixture(scope="module")
def bigger_hf(tmp_path_factory):
    """A random llama large enough that converting it takes a while (~30 M weights)."""
    root = tmp_path_factory.mktemp("bigger")
    make_tiny("llama", seed=0, dir=root / "hf", hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
              num_attention_heads=8, num_key_value_heads=4, head_dim=64)
    return root / "hf"


def test_ctrl_c_during_first_use_conversion(tiny, bigger_hf, tmp_path):
    env = dict(CHILD_ENV, EDGERUN_CACHE=str(tmp_path / "cache"))
    rc, out, err = _interrupt_after([sys.executable, "-m", "edgerun.cli", "generate", str(bigger_hf), "-p", "hi"],
                                    "edgerun: converting", "stdout", env=env)
    _assert_interrupted(rc, out, err)
    assert os.listdir(tmp_path / "cache") == []  # neither the .edge nor its temporary file


_EXEC_CTRL_C = """
import sys
from {pkg} import cli
def interrupted(args):
    exec("raise KeyboardInterrupt")  # as in a dataclass built by a lazy import: CPython 3.11 then dies of SIGINT
cli.{cmd} = interrupted
sys.argv = {argv!r}
cli.entry()
"""


@pytest.mark.parametrize("pkg,cmd,argv,line", [
    ("edgerun", "cmd_generate", ["edgerun", "generate", "x.edge", "-p", "hi"], "interrupted"),
    ("edgeconv", "cmd_recipes", ["edgeconv", "recipes"], "interrupted; nothing written")])
def test_ctrl_c_inside_exec_of_a_string_exits_130(pkg, cmd, argv, line, tmp_path):
    # run with -m, as `python -m edgerun.cli`: only that path of CPython's checks the flag exec() left
    (tmp_path / "ctrl_c_main.py").write_text(_EXEC_CTRL_C.format(pkg=pkg, cmd=cmd, argv=argv))
    env = dict(CHILD_ENV, PYTHONPATH=os.pathsep.join([str(tmp_path), CHILD_ENV["PYTHONPATH"]]))
    r = subprocess.run([sys.executable, "-m", "ctrl_c_main"], capture_output=True, text=True, env=env, timeout=60)
    _assert_interrupted(r.returncode, r.stdout, r.stderr, prog=pkg, line=line)


def test_ctrl_c_wrapped_by_set_name_is_an_interruption():
    from edgerun.cli_common import EXIT_INTERRUPTED, error_line

    class Hit:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    try:
        type("C", (), {"f": Hit()})
    except BaseException as e:  # Python 3.11: RuntimeError from KeyboardInterrupt; 3.12: the KeyboardInterrupt
        caught = e
    try:
        raise ValueError("conversion of x failed") from caught
    except ValueError as e:
        assert error_line(e) == ("interrupted", EXIT_INTERRUPTED)
    assert error_line(ValueError("plain")) == ("plain", 2)


def test_ctrl_c_during_edgeconv_export(bigger_hf, tmp_path):
    out_path = tmp_path / "big.edge"
    rc, out, err = _interrupt_after([sys.executable, "-m", "edgeconv.cli", "export", str(bigger_hf), "-o",
                                     str(out_path), "--quant", "int4"], "%", "stderr")
    _assert_interrupted(rc, out, err, prog="edgeconv", line="interrupted; nothing written")
    assert os.listdir(tmp_path) == []


# ---- a failure while a progress bar is on screen: the bar is closed first, the error line stands alone ------

@pytest.fixture(scope="module")
def nan_expert_hf(tmp_path_factory):
    """A tiny mixtral whose last expert has a NaN: its conversion fails in the middle of the experts' bar."""
    from safetensors.numpy import load_file, save_file

    root = tmp_path_factory.mktemp("nan_expert")
    make_tiny("mixtral", seed=1, dir=root / "hf")
    path = root / "hf" / "model.safetensors"
    weights = load_file(str(path))
    name = max(k for k in weights if ".experts." in k)
    weights[name][0, 0] = np.nan
    save_file(weights, str(path), metadata={"format": "pt"})
    return root / "hf", name


@pytest.mark.parametrize("prog", ["edgeconv", "edgerun"])
def test_failure_under_a_progress_bar_is_one_clean_line(nan_expert_hf, prog, tmp_path):
    src, name = nan_expert_hf
    env = dict(CHILD_ENV, EDGERUN_CACHE=str(tmp_path / "cache"))
    args = (["edgeconv.cli", "export", str(src), "-o", str(tmp_path / "out.edge"), "--quant", "q8"] if prog == "edgeconv"
            else ["edgerun.cli", "generate", str(src), "-p", "hi"])
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, env=env, timeout=300)
    err = r.stderr.decode(errors="replace")  # bytes: the bar's "\r" kept
    assert r.returncode == 2 and "Traceback" not in err, (r.returncode, err[-2000:])
    assert "experts:" in err  # the bar was drawn
    what = f"{src}: expert tensor '{name}' (up) contains NaN or infinity"
    if prog == "edgerun":
        what = f"conversion of {src} (recipe keep) failed: {what}"
    _assert_last_line(err, f"{prog}: error: {what}")


# ---- perplexity progress: on a TTY only -------------------------------------------------------------------

def _run_on_tty(args: list[str], env=None) -> tuple[int, bytes, str]:
    """(rc, what the child wrote to its stderr, a pseudo-terminal; stdout) of args run to the end."""
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env or CHILD_ENV)
    os.close(slave)
    tty = b""
    while True:
        try:
            if select.select([master], [], [], 60)[0]:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                tty += chunk
            else:
                break
        except OSError:  # EIO once the child closed its side
            break
    out = p.communicate(timeout=60)[0].decode()
    os.close(master)
    return p.returncode, tty, out


def test_perplexity_progress_only_on_a_tty(tiny):
    text = str(tiny["root"] / "text.txt")
    args = [sys.executable, "-m", "edgerun.cli", "perplexity", tiny["edge"], text, "--ctx", "64", "--chunks", "3"]
    r = subprocess.run(args, capture_output=True, text=True, env=CHILD_ENV, timeout=120)
    assert r.returncode == 0 and "[1/3]" not in r.stderr and "perplexity" in r.stdout
    rc, tty, out = _run_on_tty(args)
    assert rc == 0, tty
    assert b"[1/3] perplexity" in tty and b"[3/3] perplexity" in tty, tty
    final = float(re.search(r"perplexity ([0-9.]+)", out).group(1))
    assert f"[3/3] perplexity {final:.4f}".encode() in tty


_PERPLEXITY_FAILS = """
import sys
import edgerun
from edgerun import cli
def fails(self, text, progress=None, **kw):
    progress(1, 3, 9.5)
    raise ValueError("a failure after the first chunk")
edgerun.Model.perplexity = fails
sys.argv = {argv!r}
cli.entry()
"""


def test_perplexity_failure_ends_the_progress_line(tiny, tmp_path):
    """A failure after a chunk: the error line goes below the TTY's progress line, not onto its end."""
    argv = ["edgerun", "perplexity", tiny["edge"], str(tiny["root"] / "text.txt"), "--ctx", "64"]
    (tmp_path / "ppl_fails.py").write_text(_PERPLEXITY_FAILS.format(argv=argv))
    rc, tty, out = _run_on_tty([sys.executable, str(tmp_path / "ppl_fails.py")])
    err = tty.decode(errors="replace")
    assert rc == 2 and "Traceback" not in err, (rc, err)
    assert _screen_lines(err)[-2:] == ["[1/3] perplexity 9.5000", "edgerun: error: a failure after the first chunk"], err


# ---- edgert: its own parse() checks ranges ----------------------------------------------------------------

@pytest.mark.parametrize("opt,phrase", [(["-n", "0"], "-n 0"), (["-n", "-5"], "-n -5"), (["-n", "12x"], "-n 12x"),
                                        (["-t", "0"], "-t 0"), (["-t", "-3"], "-t -3"), (["-t", "100000"], "CPUs"),
                                        (["--temp", "-1"], "--temp"), (["--temp", "nan"], "--temp"),
                                        (["--mem", "0"], "--mem"), (["--mem", "lots"], "--mem"),
                                        (["--seed", "-1"], "--seed"), (["--bogus"], "unknown option"),
                                        (["-n"], "needs a value")])
def test_edgert_checks_its_options(tiny, opt, phrase):
    exe = edgert_exe()
    if exe is None:
        pytest.skip("edgert is not built")
    r = subprocess.run([exe, "generate", tiny["edge"], "-p", "hi", *opt], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgert: ") and phrase in lines[0], r.stderr


def test_edgert_n_minus_one_runs_to_the_end_of_the_context(tiny):
    exe = edgert_exe()
    if exe is None:
        pytest.skip("edgert is not built")
    r = subprocess.run([exe, "generate", tiny["edge"], "-p", "hi", "-n", "-1", "--ids"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ids = [int(t) for t in r.stdout.split()]
    assert len(ids) > 128 or ids[-1] == 2  # the tiny model's context is 256; EOS (2) may end it first
    r = subprocess.run([exe, "bench", tiny["edge"], "--prompt-tokens", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--prompt-tokens" in r.stderr


# ---- .pt: random bytes vs. a real pickle with globals --------------------------------------------------------

def test_pt_random_bytes_vs_pickle_with_globals(tmp_path):
    pytest.importorskip("torch")
    import pickle

    from edgeconv.sources.torch_ckpt import load_state_dict

    class Payload:
        def __reduce__(self):
            return (print, ("never printed",))

    (tmp_path / "legacy.pt").write_bytes(pickle.dumps({"w": Payload()}, protocol=4))  # not a zip, FRAME opcodes
    (tmp_path / "zip.pt").write_bytes(b"PK\x03\x04" + bytes(200))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="NOT executed"):
        load_state_dict(str(tmp_path / "legacy.pt"))
    for name in ("zip.pt", "empty.pt"):
        with pytest.raises(ValueError, match=f"{name}: not a PyTorch checkpoint"):
            load_state_dict(str(tmp_path / name))


# ---- §4: 200 mutated copies of a tiny GGUF through the exporter -------------------------------------------

def _mutations(data: bytes, header_end: int, n: int, seed: int):
    """n seeded mutants: truncations at random offsets, bit flips, zeroed and random spans (mostly in the
    header / metadata / tensor table, where the reader parses, some anywhere)."""
    rng = random.Random(seed)
    for i in range(n):
        kind = ("truncate", "flip", "zero", "random")[i % 4]
        b = bytearray(data)
        if kind == "truncate":
            b = b[:rng.randrange(len(b))]
        else:
            lim = header_end if rng.random() < 0.75 else len(b)
            if kind == "flip":
                for _ in range(rng.randint(1, 8)):
                    b[rng.randrange(lim)] ^= 1 << rng.randrange(8)
            else:
                at, span = rng.randrange(lim), rng.randint(1, 64)
                b[at:at + span] = bytes(span) if kind == "zero" else bytes(rng.randrange(256) for _ in range(span))
                del b[len(data):]
        yield kind, bytes(b)


def test_mutated_gguf_never_escapes_as_a_traceback(tiny, tmp_path):
    import gguf

    from edgeconv.export import export

    data = tiny["gguf_bytes"]
    header_end = gguf.GGUFReader(tiny["gguf"]).data_offset
    converted, errors = [], 0
    for i, (kind, b) in enumerate(_mutations(data, header_end, 200, seed=12)):
        src = tmp_path / f"mut{i}.gguf"
        src.write_bytes(b)
        out = tmp_path / f"mut{i}.edge"
        try:
            export(str(src), str(out), recipe="q8", progress=False, log=lambda m: None)
        except ValueError as e:  # the converter's own error: names the file, one line once the CLI joins it
            errors += 1
            msg = " ".join(str(e).split())
            assert str(src) in msg, (kind, msg)
            if kind == "truncate" and len(b) >= header_end:
                assert "truncated" in msg and "tensor '" in msg, msg
            assert not out.exists()
        else:
            converted.append(str(out))
        src.unlink()
    assert errors > 100 and converted  # most mutants are refused; some (flips in the data) still convert
    # every file that converted loads and runs, or fails with an EdgeError — in a child, so a crash shows
    script = textwrap.dedent(f"""
        import edgerun
        ok = bad = 0
        for p in {converted!r}:
            try:
                edgerun.Model(p, threads=1).logits([1, 2, 3])
                ok += 1
            except edgerun.EdgeError:
                bad += 1
        print(ok, bad)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=CHILD_ENV)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    ok, bad = map(int, r.stdout.split())
    assert ok + bad == len(converted)
    # the CLI wrapper on a few of the same mutants: one line, exit 2
    for i, (kind, b) in enumerate(_mutations(data, header_end, 8, seed=99)):
        src = tmp_path / f"cli{i}.gguf"
        src.write_bytes(b)
        r = run("edgeconv.cli", "export", str(src), "-o", str(tmp_path / f"cli{i}.edge"), "-q")
        assert "Traceback" not in r.stdout + r.stderr, r.stderr
        assert r.returncode == 0 or (r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1), r.stderr
