"""Calibration without torch (issue 11 §2): statistics from edgerun's C++ forward pass (csrc/act_stats.h,
Model.calib_begin / calib_end; converter/edgeconv/calib_native.py), GPTQ on them, and the CLI default of
the int4 recipes (calibrated on the built-in text + GPTQ; --no-calib = round-to-nearest).

The C++ statistics are checked against the PyTorch reference's (calib.collect_stats, itself checked
against transformers' nn.Linear inputs in test_converter.py / test_gptq.py) on tiny models: importance
and XᵀX / N of every matmul input within float32 summation error.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgeconv import cli
from edgeconv import quant as Q
from edgeconv.archs import plan_tensors
from edgeconv.export import export
from edgeconv.format import EdgeFile
from edgeconv.quant.gptq import gptq_quantize, output_error
from edgeconv.sources import open_source

_core = pytest.importorskip("edgerun._core")


def _plan(folder):
    with open_source(str(folder)) as src:
        hp = dict(src.hparams)
        return plan_tensors(src.arch, hp, src.shapes, src.naming, src.tie_config)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """(folder, f32 .edge, config, weights) of the tiny llama (untied head) and qwen2 (tied) models."""
    from models.tiny import make_tiny

    out = {}
    for arch in ("llama", "qwen2"):
        d = tmp_path_factory.mktemp(arch)
        model, config, weights = make_tiny(arch, seed=3, dir=d)
        export(d, d / "f32.edge", recipe="f32")
        out[arch] = (d, d / "f32.edge", config, weights)
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_cpp_stats_equal_reference(tiny_llama, arch):
    from edgeconv.calib import collect_stats
    from edgeconv.calib_native import collect_native

    folder, f32, config, weights = tiny_llama[arch]
    tokens = np.random.default_rng(5).integers(3, config["llm.vocab_size"], size=40).tolist()
    imp_ref, h_ref = collect_stats(weights, config, tokens, ctx=16, hessians=True)
    plan, tied = _plan(folder)
    imp, h = collect_native(str(f32), plan, tokens, ctx=16, hessians=True, tied=tied)
    assert set(imp) == set(imp_ref) == set(h)
    assert ("tok_embd" in imp) == tied and ("output" in imp) == (not tied)
    assert h["blk.0.attn_q"] is h["blk.0.attn_k"] is h["blk.0.attn_v"]
    assert h["blk.1.ffn_gate"] is h["blk.1.ffn_up"] and h["blk.1.ffn_up"] is not h["blk.1.ffn_down"]
    for n in imp:
        np.testing.assert_allclose(imp[n], imp_ref[n], rtol=2e-5, atol=1e-6 * imp_ref[n].max(), err_msg=n)
        np.testing.assert_allclose(h[n], h_ref[n], rtol=2e-5, atol=2e-6 * np.abs(h_ref[n]).max(), err_msg=n)
        np.testing.assert_allclose(np.diag(h[n]), imp[n], rtol=1e-5, atol=1e-7 * imp[n].max(), err_msg=n)


def test_cpp_stats_layer_range_counts_and_forward_unchanged(tiny_llama):
    """Hessians only for the asked layers; count = tokens; the forward's logits are the same with stats on."""
    folder, f32, config, _ = tiny_llama["qwen2"]
    toks = np.arange(3, 35, dtype=np.int32)
    m = _core.Model(str(f32), ctx=64, batch=16, kv="f32")
    want = m.eval(toks, all_logits=True)
    m.reset()
    m.calib_begin(hessian=True, layer_begin=1, layer_end=2, head_hessian=False)
    got = m.eval(toks, all_logits=True)
    m.reset()
    m.eval(toks[:7], all_logits=False)  # only the last row goes through the head
    entries = m.calib_end()
    assert np.array_equal(got, want)
    n_layers = config["llm.n_layers"]
    assert len(entries) == 4 * n_layers + 1
    for e in entries:
        assert e["expert"] == -1 and e["sumsq"].shape == (e["cols"],)
        assert e["count"] == (32 + 1 if e["site"] == "head_in" else 32 + 7)
        assert (e["xtx"] is not None) == (e["layer"] == 1), e
    with pytest.raises(_core.EdgeError, match="calib_begin"):
        m.calib_end()


def test_cpp_stats_moe_experts_see_their_routed_tokens(tmp_path):
    """MoE: expert_in / expert_mid per (layer, expert); counts over experts sum to tokens × top-k."""
    from models.tiny import make_tiny

    d = tmp_path / "moe"
    _, config, _ = make_tiny("qwen3moe", seed=1, dir=d)
    export(d, tmp_path / "m.edge", recipe="f32")
    m = _core.Model(str(tmp_path / "m.edge"), ctx=64, batch=32, kv="f32")
    m.calib_begin(hessian=True, expert_hessian=True)
    m.eval(np.arange(3, 43, dtype=np.int32), all_logits=True)
    entries = m.calib_end()
    k = config["moe.n_experts_used"]
    by = {}
    for e in entries:
        by.setdefault((e["layer"], e["site"]), []).append(e)
    moe_layers = {L for (L, s) in by if s == "expert_in"}
    assert moe_layers
    for L in moe_layers:
        ins, mids = by[(L, "expert_in")], by[(L, "expert_mid")]
        assert sum(e["count"] for e in ins) == 40 * k == sum(e["count"] for e in mids)
        for e in ins + mids:
            assert e["xtx"] is not None and 0 <= e["expert"] < config["moe.n_experts"]
            np.testing.assert_allclose(np.diag(e["xtx"]), e["sumsq"], rtol=1e-5, atol=1e-6 * e["sumsq"].max())


def test_gptq_on_cpp_stats_beats_rtn_on_layer_outputs(tiny_llama):
    """On the tiny model's real weights and real C++-collected H, GPTQ's matmul output error
    tr((W-Ŵ) H (W-Ŵ)ᵀ) is below round-to-nearest's for every int4 tensor, and clearly so overall."""
    from edgeconv.calib_native import builtin_text, collect_native
    from edgeconv.calib import tokenize

    folder, f32, config, weights = tiny_llama["qwen2"]
    with open_source(str(folder)) as src:
        tokens = tokenize(builtin_text(), src.tokenizer)
    plan, tied = _plan(folder)
    _, h = collect_native(str(f32), plan, tokens, ctx=128, max_tokens=2048, hessians=True, tied=tied)
    tot_rtn = tot_gptq = 0.0
    for name, hh in h.items():
        w = weights[name].astype(np.float32)
        if w.shape[1] % 32:
            continue
        rtn = Q.dequantize(Q.quantize(w, "int4_32"), "int4_32", w.shape)
        gq = Q.dequantize(gptq_quantize(w, "int4_32", hh), "int4_32", w.shape)
        e_rtn, e_gptq = output_error(w, rtn, hh), output_error(w, gq, hh)
        assert e_gptq < e_rtn, (name, e_gptq, e_rtn)
        tot_rtn, tot_gptq = tot_rtn + e_rtn, tot_gptq + e_gptq
    assert tot_gptq < 0.8 * tot_rtn, (tot_gptq, tot_rtn)


def _sha(p) -> str:
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def test_cli_int4_default_is_calibrated_deterministic_and_no_calib_is_rtn(tiny_llama, tmp_path, capsys):
    folder, f32, _, _ = tiny_llama["llama"]
    a, b, plain = tmp_path / "a.edge", tmp_path / "b.edge", tmp_path / "plain.edge"
    assert cli.main(["export", str(folder), "-o", str(a), "--quant", "int4", "-q", "--calib-tokens", "1024"]) == 0
    err = capsys.readouterr().err
    assert "built-in calibration text" in err and "C++ forward pass" in err and "GPTQ-quantized" in err
    assert cli.main(["export", str(folder), "-o", str(b), "--quant", "int4", "-q", "--calib-tokens", "1024"]) == 0
    assert _sha(a) == _sha(b)  # deterministic
    capsys.readouterr()
    assert not list(tmp_path.glob("*.calib-f16.edge"))  # the temporary float copy is gone
    assert cli.main(["export", str(folder), "-o", str(plain), "--quant", "int4", "-q", "--no-calib"]) == 0
    assert "calibrated" not in capsys.readouterr().err
    export(folder, tmp_path / "api.edge", recipe="int4")  # the API's default stays round-to-nearest
    assert _sha(plain) == _sha(tmp_path / "api.edge") != _sha(a)
    # --no-gptq: importance only, as export(calib="builtin")
    assert cli.main(["export", str(folder), "-o", str(tmp_path / "imp.edge"), "--quant", "int4", "-q",
                     "--no-gptq", "--calib-tokens", "1024"]) == 0
    export(folder, tmp_path / "imp2.edge", recipe="int4", calib="builtin", calib_tokens=1024)
    capsys.readouterr()
    assert _sha(tmp_path / "imp.edge") == _sha(tmp_path / "imp2.edge") not in (_sha(a), _sha(plain))
    # q8 is not calibrated by default
    assert cli.main(["export", str(folder), "-o", str(tmp_path / "q8.edge"), "--quant", "q8", "-q"]) == 0
    assert "calibrated" not in capsys.readouterr().err
    for bad in (["--no-calib", "--gptq"], ["--no-calib", "--calib", "builtin"],
                ["--gptq", "--no-gptq", "--calib", "builtin"]):
        assert cli.main(["export", str(folder), "-o", str(tmp_path / "x.edge"), "-q", *bad]) == 2
        assert "contradicts" in capsys.readouterr().err


def test_cli_default_closer_to_float_than_rtn(tiny_llama, tmp_path):
    """The calibrated default's logits are closer to the f32 file's than --no-calib's, on text the
    calibration never saw."""
    import edgerun
    from models.tiny import _CORPUS

    folder, f32, _, _ = tiny_llama["llama"]
    for flag, out in (([], "cal.edge"), (["--no-calib"], "rtn.edge")):
        assert cli.main(["export", str(folder), "-o", str(tmp_path / out), "-q", *flag]) == 0
    ref = edgerun.Model(f32)
    toks = ref.tokenize(_CORPUS, add_bos=False, special=False)[:200]
    want = ref.logits(toks)
    e = {o: float(((edgerun.Model(tmp_path / o).logits(toks) - want) ** 2).mean()) for o in ("cal.edge", "rtn.edge")}
    assert e["cal.edge"] < 0.9 * e["rtn.edge"], e  # measured 0.80×


def test_cli_moe_default_is_not_calibrated_and_says_so(tmp_path, capsys):
    from models.tiny import make_tiny

    d = tmp_path / "moe"
    make_tiny("qwen3moe", seed=1, dir=d)
    assert cli.main(["export", str(d), "-o", str(tmp_path / "m.edge"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "not calibrated" in err and "MoE" in err
    with EdgeFile(tmp_path / "m.edge") as f:
        assert f.metadata["quant.recipe"] == "int4"


def test_builtin_text_is_fixed_and_not_the_benchmark_text():
    from edgeconv.calib_native import builtin_text

    text = builtin_text()
    assert text == builtin_text() and 15_000 <= len(text) <= 40_000
    from pydoc_data.topics import topics

    shingles = {text[i:i + 48] for i in range(len(text) - 47)}
    for topic in topics.values():
        assert not any(topic[i:i + 48] in shingles for i in range(0, len(topic) - 47, 4))


def test_default_calibration_text_is_both_shipped_files_and_not_the_benchmark_text():
    """--calib builtin = calib_builtin.txt then calib_docs.txt (frozen stdlib docstrings: the same text on every
    Python); neither holds a 64-character run of the benchmark's evaluation text (pydoc_data.topics)."""
    from edgeconv.calib import load_text
    from edgeconv.calib_native import builtin_text, default_text, docs_text

    docs = docs_text()
    assert 80_000 <= len(docs) <= 120_000 and docs == docs_text()
    assert default_text() == builtin_text().rstrip("\n") + "\n\n" + docs
    text, label = load_text("builtin")
    assert text == default_text() and "calib_builtin.txt + calib_docs.txt" in label
    from pydoc_data.topics import topics

    shingles = {docs[i:i + 64] for i in range(len(docs) - 63)}
    for topic in topics.values():
        assert not any(topic[i:i + 64] in shingles for i in range(0, len(topic) - 63, 4))
