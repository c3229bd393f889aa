"""GPTQ (edgeconv/quant/gptq.py), the H collection of calib.py and the built-in calibration text.

Exact: with a diagonal H GPTQ has nothing to feed forward, so it must give quantize()'s bytes (with
importance = diag H); its bytes dequantize identically in C++ and numpy.
Quality: lower matmul output error than plain and importance-weighted quantization on inputs with a
non-identity covariance; an exported tiny model's logits closer to the f32 model's.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from edgeconv import cli
from edgeconv import quant as Q
from edgeconv.export import export
from edgeconv.format import EdgeFile
from edgeconv.quant.gptq import gptq_quantize, inverse_factor, output_error

INT4_TYPES = ["int4_32", "int4_64", "int4_128", "int4a_32", "int4a_64", "int4a_128"]


def _correlated_inputs(rng, n, cols):
    """X [n, cols]: mixed (correlated) features with a few large channels, like transformer activations."""
    mix = np.eye(cols) + rng.standard_normal((cols, cols)) / np.sqrt(cols)
    return (rng.standard_normal((n, cols)) @ mix) * (0.2 + rng.gamma(0.5, size=cols))


# ---- the algorithm ----

def test_inverse_factor_is_upper_cholesky_of_damped_inverse():
    rng = np.random.default_rng(0)
    x = _correlated_inputs(rng, 300, 96)
    h = x.T @ x / 300
    h[:, 5] = h[5, :] = 0  # an input that is never active
    u = inverse_factor(h, damp=0.01)
    hd = h.copy()
    hd[5, 5] = 1.0
    hd += 0.01 * np.mean(np.diag(hd)) * np.eye(96)
    assert np.all(np.tril(u, -1) == 0) and np.all(np.diag(u) > 0)
    np.testing.assert_allclose(u.T @ u, np.linalg.inv(hd), rtol=1e-9, atol=1e-9 * np.abs(u.T @ u).max())


@pytest.mark.parametrize("name", INT4_TYPES)
def test_gptq_lowers_output_error(name):
    rng = np.random.default_rng(Q.DTYPES[name].id)
    rows, cols = 96, 256
    x = _correlated_inputs(rng, 2048, cols)
    h = x.T @ x / len(x)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    plain = Q.dequantize(Q.quantize(w, name), name, w.shape)
    weighted = Q.dequantize(Q.quantize(w, name, importance=np.diag(h)), name, w.shape)
    b = gptq_quantize(w, name, h)
    assert b.dtype == np.uint8 and b.shape == (rows, Q.row_bytes(name, cols))
    ours = Q.dequantize(b, name, w.shape)
    e_plain, e_weighted, e_gptq = (output_error(w, v, h) for v in (plain, weighted, ours))
    # ‖(W - Ŵ) Xᵀ‖² directly, for the definition of output_error
    assert np.isclose(e_gptq, np.sum(((w - ours).astype(np.float64) @ x.T) ** 2) / len(x), rtol=1e-6)
    assert e_gptq < 0.8 * e_weighted < 0.8 * e_plain, (e_plain, e_weighted, e_gptq)


@pytest.mark.parametrize("name", INT4_TYPES)
def test_gptq_bytes_dequantize_bit_exact_in_cpp(name):
    from edgerun import _core

    rng = np.random.default_rng(10 + Q.DTYPES[name].id)
    cols = 384
    x = _correlated_inputs(rng, 1024, cols)
    w = np.concatenate([rng.standard_normal((6, cols)), rng.standard_t(2, size=(3, cols)) * 1e-3,
                        np.zeros((1, cols))]).astype(np.float32)
    b = gptq_quantize(w, name, x.T @ x / len(x))
    ours = Q.dequantize(b, name, w.shape)
    cpp = np.stack([_core.dequantize(Q.DTYPES[name].id, row.tobytes(), cols, level="ref") for row in b])
    assert np.array_equal(cpp, ours)
    assert np.all(np.isfinite(ours)) and np.all(ours[-1] == 0)


@pytest.mark.parametrize("name", INT4_TYPES)
def test_diagonal_h_is_the_weighted_quantizer(name):
    """No input correlation -> no error feedback: GPTQ == quantize(importance=diag H), byte for byte."""
    rng = np.random.default_rng(20)
    w = rng.standard_normal((40, 256)).astype(np.float32)
    diag = rng.gamma(0.5, size=256) ** 2
    assert np.array_equal(gptq_quantize(w, name, np.diag(diag)), Q.quantize(w, name, importance=diag))
    assert np.array_equal(gptq_quantize(w, name, np.eye(256)), Q.quantize(w, name))
    assert np.array_equal(gptq_quantize(w, name, np.diag(diag), scale_weights=None), Q.quantize(w, name))


def test_gptq_bad_input():
    w = np.zeros((4, 64), np.float32)
    with pytest.raises(ValueError, match="int4"):
        gptq_quantize(w, "q8_0", np.eye(64))
    with pytest.raises(ValueError, match="H must be"):
        gptq_quantize(w, "int4_32", np.eye(32))
    with pytest.raises(ValueError, match="multiple of 64"):
        gptq_quantize(np.zeros((4, 96), np.float32), "int4_64", np.eye(96))
    with pytest.raises(ValueError, match="finite"):
        gptq_quantize(np.full((4, 64), np.nan, np.float32), "int4_32", np.eye(64))
    with pytest.raises(ValueError, match="NaN"):
        inverse_factor(np.full((4, 4), np.inf))
    with pytest.raises(ValueError, match="damp"):
        inverse_factor(np.eye(4), damp=-1.0)


# ---- calibration: H per input, the built-in text ----

def test_collect_stats_hessians_match_linear_inputs():
    """H = XᵀX/N of every nn.Linear input of the transformers model; shared inputs share one array."""
    import torch

    from edgeconv.calib import collect_stats
    from models.tiny import make_tiny

    model, config, weights = make_tiny("qwen2", seed=3)
    tokens = np.random.default_rng(5).integers(3, config["llm.vocab_size"], size=40).tolist()
    imp, hess = collect_stats(weights, config, tokens, ctx=16, hessians=True)
    assert set(hess) == set(imp)
    assert hess["blk.0.attn_q"] is hess["blk.0.attn_k"] is hess["blk.0.attn_v"]
    assert hess["blk.1.ffn_gate"] is hess["blk.1.ffn_up"] and hess["blk.1.ffn_up"] is not hess["blk.1.ffn_down"]
    for n, h in hess.items():
        np.testing.assert_allclose(np.diag(h), imp[n], rtol=1e-4, atol=1e-7, err_msg=n)

    acc = {}
    leaf = {"q_proj": "attn_q", "o_proj": "attn_o", "down_proj": "ffn_down"}
    handles = []
    for name, mod in model.named_modules():
        if name == "lm_head" or name.split(".")[-1] in leaf:
            ours = "tok_embd" if name == "lm_head" else f"blk.{name.split('.')[2]}.{leaf[name.split('.')[-1]]}"

            def hook(mod, args, ours=ours):
                x = args[0].reshape(-1, args[0].shape[-1]).double()
                acc[ours] = acc.get(ours, 0) + x.T @ x
            handles.append(mod.register_forward_pre_hook(hook))
    with torch.no_grad():
        for s in range(0, 40, 16):
            model(torch.tensor([tokens[s:s + 16]]))
    for h in handles:
        h.remove()
    assert len(acc) == 1 + 3 * config["llm.n_layers"]
    for n, v in acc.items():
        want = (v / 40).numpy()
        np.testing.assert_allclose(hess[n], want, rtol=1e-4, atol=1e-6 * np.abs(want).max(), err_msg=n)


def test_stdlib_text_deterministic_and_not_the_benchmark_text():
    from edgeconv.calib_text import stdlib_text

    text = stdlib_text()
    assert text == stdlib_text() and 50_000 <= len(text) <= 100_000
    # A fresh interpreter makes the same text and never loads pydoc_data.topics (the evaluation text).
    code = ("import hashlib, sys; from edgeconv.calib_text import stdlib_text; t = stdlib_text(); "
            "print(hashlib.sha256(t.encode()).hexdigest(), 'pydoc_data.topics' in sys.modules, 'pydoc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout.split()
    assert out == [hashlib.sha256(text.encode()).hexdigest(), "False", "False"]
    from pydoc_data.topics import topics

    shingles = {text[i:i + 64] for i in range(len(text) - 63)}
    for topic in topics.values():
        assert not any(topic[i:i + 64] in shingles for i in range(0, len(topic) - 63, 8))


# ---- export ----

def test_export_gptq_tiny_model_logits_closer(tmp_path):
    """--calib stdlib --gptq: the runtime loads the file, and its logits are closer to the f32 model's
    than with --calib alone, both on calibration-like text and on text the calibration never saw."""
    edgerun = pytest.importorskip("edgerun")
    from edgeconv.calib_text import stdlib_text
    from models.tiny import _CORPUS, make_tiny

    d = tmp_path / "m"
    make_tiny("llama", seed=0, dir=d)
    export(d, tmp_path / "f32.edge", recipe="f32")
    plain = export(d, tmp_path / "c.edge", recipe="int4", calib="stdlib", calib_tokens=2048)
    # gptq_mix=False: GPTQ against round-to-nearest at the same dtypes (the default would use int4g's mix)
    res = export(d, tmp_path / "g.edge", recipe="int4", calib="stdlib", calib_tokens=2048, gptq=True, gptq_mix=False)
    assert res.dtypes == plain.dtypes and res.file_size == plain.file_size
    # every int4 matmul weight; tok_embd of this untied model is only looked up (no input, no H)
    n_int4 = sum(dt.startswith("int4") for n, dt in res.dtypes.items() if n != "tok_embd")
    assert n_int4 >= 10 and f"GPTQ-quantized {n_int4} int4 tensors" in res.notes
    assert any("stdlib docstrings" in n for n in res.notes)
    with EdgeFile(tmp_path / "c.edge") as fc, EdgeFile(tmp_path / "g.edge") as fg:
        assert np.array_equal(fc.array("tok_embd"), fg.array("tok_embd"))
        assert not np.array_equal(fc.array("blk.0.attn_q"), fg.array("blk.0.attn_q"))

    ref = edgerun.Model(tmp_path / "f32.edge")
    for text in (stdlib_text()[:3000], _CORPUS):
        toks = ref.tokenize(text, add_bos=False, special=False)[:200]
        want = ref.logits(toks)
        e_calib = float(((edgerun.Model(tmp_path / "c.edge").logits(toks) - want) ** 2).mean())
        e_gptq = float(((edgerun.Model(tmp_path / "g.edge").logits(toks) - want) ** 2).mean())
        assert e_gptq < 0.92 * e_calib, (e_gptq, e_calib)


def test_gptq_needs_calibration(tmp_path, capsys):
    from models.tiny import make_tiny

    d = tmp_path / "m"
    make_tiny("llama", seed=0, dir=d)
    with pytest.raises(ValueError, match="--gptq needs calibration"):
        export(d, tmp_path / "x.edge", recipe="int4", gptq=True)
    assert cli.main(["export", str(d), "-o", str(tmp_path / "x.edge"), "--gptq", "-q"]) == 2
    assert "--gptq needs calibration data: add --calib stdlib" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--gptq-damp"):
        export(d, tmp_path / "x.edge", recipe="int4", calib="stdlib", gptq=True, gptq_damp=-0.1)
    assert not (tmp_path / "x.edge").exists()
