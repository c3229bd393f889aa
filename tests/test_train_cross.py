"""Training steps are the same on every board (issue 10 §3): `edgert train` (csrc/tools/edgert_train.cpp, the C++
engine with no Python) on a tiny random llama (q8 and int4 files), natively on x86 and cross-built under qemu-user
as each board's CPU — Pi 4 cortex-a72 (neon), Pi 5 cortex-a76 (dotprod), RISC-V RVV 1.0 at VLEN 128 (k230) and
256 (spacemit-k1) — gives the x86 losses step for step within TOL_REL, and the same final parameters (Σ|θ|).
The native run is first tied to the Python engine: `edgert train` = `_core.Trainer` over edgerun.train.data's
windows in file order, bit for bit (same code, same kernel level; results do not depend on the thread count).

Steps: LoRA rank 4 on all seven targets (every gemm_t dtype path of the file, LoRA dA/dB, attention /
RMSNorm / SiLU backward, the chunked cross-entropy, AdamW; lr 1e-3, so the parameters move and later steps
see them — each step is another batch, so the loss need not fall); bias + SGD with momentum on the q8 file;
and MeZO (forward only) on the f32 file (the f32 gemm of each ISA). 4 steps × 2 × 16 tokens each.

Tolerance: another ISA sums in another order (SIMD lanes, FMA contraction) and, on the int-dot files, an
activation that sits on a block_q8x rounding boundary can round the other way; AdamW then turns a gradient
element that differs near 0 into a ±lr move (it normalises by √v). Measured, x86 avx512vnni vs qemu
cortex-a72 / a76: lr 1e-3 ≤ 3e-8 relative per step; at lr 3e-3 one such flip gave 3.6e-4 by step 3.
MeZO divides a loss difference by 2ε, so one such flip in L+ or L− moves its step: on the q8 file (ε 1e-2)
the losses drifted 3.3e-4 by step 3 and Σ|θ| 0.6 % after it; on the f32 file (no activation rounding, used
here) 5e-8 and 5e-8 at ε = 1e-2 (3e-6 at ε = 1e-3).
Declared: |Δloss| / loss <= TOL_REL · k at step k (TOL_REL = 1e-3: the forward pass's summation-order
difference, which the updates compound: int4 LoRA on RVV in s21 8.6e-5, 1.0e-4, 8.6e-5, 1.02e-3), Σ|θ| within
TOL_PARAMS = 1e-3 relative.
CI cost: the cross builds are the kernel tests' (build/cross-<arch>, incremental: seconds); each run under
qemu takes 1–2 s on an idle core (4 boards × 4 runs ≈ 30 s on the 2-core CI machine, plus the x86 runs).
"""

import glob
import json
import os
import subprocess

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgerun.device import get_profile, qemu_argv
from edgerun.train.data import load_data
from edgeconv.cli import main as edgeconv_main
from models.tiny import make_tiny
from test_cross_generate import PROFILES, ROOT, cross_edgert, native_edgert

TOL_REL = 1e-3
TOL_PARAMS = 1e-3
STEPS, BATCH, SEQ, RANK = 4, 2, 16, 4
TARGETS = "q,k,v,o,gate,up,down"
LORA = ["--method", "lora", "--rank", str(RANK), "--alpha", "8", "--targets", TARGETS, "--lr", "1e-3"]
BIAS = ["--method", "bias", "--targets", TARGETS, "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"]
MEZO = ["--method", "mezo", "--rank", str(RANK), "--targets", "q,v", "--lr", "1e-3", "--mezo-eps", "1e-2"]
RUNS = [("q8", "lora", LORA), ("int4", "lora", LORA), ("q8", "bias", BIAS), ("f32", "mezo", MEZO)]
BOARDS = ["rpi4", "rpi5", "k230", "spacemit-k1"]
TEXT = ("The quick brown fox jumps over the lazy dog. Hello world, this is a small text to train on. "
        "Pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump! ") * 3


def edgert_x86():
    """The tree's edgert when the tests run against the tree (conftest: _core built into runtime/), else the
    installed one — the edgert that matches the _core these tests import."""
    dev = os.path.join(ROOT, "build", "dev", "edgert")
    if glob.glob(os.path.join(ROOT, "runtime", "edgerun", "_core*.so")) and os.path.exists(dev):
        return dev
    return native_edgert()


@pytest.fixture(autouse=True)
def _profiles_from_tree(monkeypatch):
    monkeypatch.setenv("EDGE_DEVICES_DIR", PROFILES)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cross")
    make_tiny("llama", seed=11, dir=root / "hf")
    out = {}
    for r in ("q8", "int4", "f32"):
        out[r] = str(root / f"tiny.{r}.edge")
        assert edgeconv_main(["export", str(root / "hf"), "-o", out[r], "--quant", r, "--quiet"]) == 0
    out["text"] = str(root / "train.txt")
    with open(out["text"], "w") as f:
        f.write(TEXT)
    return out


def train(argv_prefix, model, text, args, env=None):
    """(losses per step, result record) of one `edgert train` run."""
    cmd = argv_prefix + ["train", model, "--data", text, "--steps", str(STEPS), "--batch", str(BATCH), "--seq", str(SEQ),
                         "-t", "2", "--seed", "3", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, **(env or {})))
    assert r.returncode == 0, (cmd, r.stderr[-2000:])
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    steps = [x for x in recs if "step" in x]
    assert [x["step"] for x in steps] == list(range(STEPS)) and "result" in recs[-1], r.stdout
    return [x["loss"] for x in steps], recs[-1]["result"]


def python_losses(model_path, text, method):
    """The same steps through _core.Trainer and edgerun.train.data (windows (k·B + j) mod N in file order)."""
    m = edgerun.Model(model_path, threads=2)
    ds = load_data(m, text, SEQ)
    kw = dict(method=method, rank=RANK, seed=3, batch=BATCH, seq=SEQ, threads=2)
    kw.update({"lora": dict(alpha=8.0, targets=TARGETS.split(","), lr=1e-3),
               "bias": dict(targets=TARGETS.split(","), optimizer="sgd", momentum=0.9, lr=0.05),
               "mezo": dict(targets=["q", "v"], lr=1e-3, mezo_eps=1e-2)}[method])
    t = _core.Trainer(m, **kw)
    losses = []
    for k in range(STEPS):
        toks, mask = ds.batch(np.array([(k * BATCH + j) % len(ds) for j in range(BATCH)]))
        if method == "mezo":
            losses.append(t.mezo_step(toks, mask, 1e-3, 3 * 1_000_003 + k))
        else:
            loss, n = t.forward_backward(toks, mask)
            t.optimizer_step()
            losses.append(loss / n)
    p = t.parameters()
    moved = max(np.abs(a).max() for n, a in p.items() if not n.endswith("lora_a"))  # lora_b / bias start at 0
    assert moved > 0, (method, "the steps did not move the parameters")
    return losses, float(sum(np.abs(a.astype(np.float64)).sum() for a in p.values()))


@pytest.fixture(scope="module")
def x86(files):
    """{(recipe, method): (losses, Σ|θ|)} of the native edgert, checked against the Python engine."""
    exe = edgert_x86()
    out = {}
    for recipe, method, args in RUNS:
        losses, res = train([exe], files[recipe], files["text"], args)
        want, want_abs = python_losses(files[recipe], files["text"], method)
        assert np.array_equal(np.float32(losses), np.float32(want)), (recipe, method, losses, want)
        assert res["param_abs_sum"] == pytest.approx(want_abs, rel=1e-7), (recipe, method)
        out[(recipe, method)] = (losses, res["param_abs_sum"])
    return out


def test_edgert_train_rejects_bad_usage(files):
    exe = edgert_x86()
    for args, want in ((["--steps", "0"], "--steps 0"), (["--method", "full"], "--method full"), ([], "--data"),
                       (["--data", files["text"], "--bogus", "1"], "unknown option --bogus")):
        r = subprocess.run([exe, "train", files["q8"], *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and want in r.stderr, (args, r.stderr)
    r = subprocess.run([exe, "train", files["q8"], "--data", files["text"], "--mem", "1MB"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "fit" in r.stderr, r.stderr  # the budget refusal names what fits


@pytest.mark.slow
@pytest.mark.parametrize("board", BOARDS)
def test_train_losses_match_x86_under_qemu(board, files, x86):
    profile = get_profile(board, PROFILES)
    argv = qemu_argv(profile, cross_edgert(profile.arch))
    for recipe, method, args in RUNS:
        losses, res = train(argv, files[recipe], files["text"], args)
        assert res["kernels"] == profile.kernel_level, (board, res)
        want, want_abs = x86[(recipe, method)]
        rel = [abs(a - b) / abs(b) / (k + 1) for k, (a, b) in enumerate(zip(losses, want))]  # per step: / k
        assert max(rel) <= TOL_REL, (board, recipe, method, losses, want)
        assert res["param_abs_sum"] == pytest.approx(want_abs, rel=TOL_PARAMS), (board, recipe, method)
