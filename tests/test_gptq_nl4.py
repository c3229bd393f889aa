"""GPTQ on nl4_32 (quant/gptq.py, the nl4 branch) and the int4 recipe's GPTQ mix (recipes.py `gptq_mix`).

Exact: with a diagonal H nothing is fed forward, so GPTQ-nl4 gives quantize()'s nl4_32 bytes (importance =
diag H); C++ dequantizes its bytes as numpy does. Quality: lower calibration-weighted output error than
round-to-nearest nl4_32, plain or importance-weighted. Budget: the mix stays within 4.5 bits/weight of the
whole file. Determinism: two calibrated exports are byte-identical.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgeconv import cli
from edgeconv import quant as Q
from edgeconv.format import EdgeFile
from edgeconv.quant.gptq import DAMP, gptq_quantize, output_error
from edgeconv.recipes import RECIPES, assign_dtypes, file_size, get_recipe


def _inputs(rng, n, cols):
    mix = np.eye(cols) + rng.standard_normal((cols, cols)) / np.sqrt(cols)
    return (rng.standard_normal((n, cols)) @ mix) * (0.2 + rng.gamma(0.5, size=cols))


@pytest.mark.parametrize("cols", [32, 96, 256])
def test_gptq_nl4_lowers_weighted_error_vs_rtn(cols):
    rng = np.random.default_rng(cols)
    x = _inputs(rng, 2048, cols)
    h = x.T @ x / len(x)
    w = rng.standard_normal((80, cols)).astype(np.float32)
    plain = Q.dequantize(Q.quantize(w, "nl4_32"), "nl4_32", w.shape)
    weighted = Q.dequantize(Q.quantize(w, "nl4_32", importance=np.diag(h)), "nl4_32", w.shape)
    b = gptq_quantize(w, "nl4_32", h)
    assert b.dtype == np.uint8 and b.shape == (80, Q.row_bytes("nl4_32", cols))
    ours = Q.dequantize(b, "nl4_32", w.shape)
    e_plain, e_weighted, e_gptq = (output_error(w, v, h) for v in (plain, weighted, ours))
    assert e_gptq < 0.9 * e_weighted < 0.9 * e_plain, (e_plain, e_weighted, e_gptq)
    # every code is a table value of its block's stored scale: the bytes are plain nl4_32 blocks
    assert np.all(np.isfinite(ours))


def test_gptq_nl4_with_diagonal_h_is_quantize():
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((33, 160)) * rng.gamma(1.0, size=160)).astype(np.float32)
    diag = rng.gamma(0.7, size=160) + 1e-3
    got = gptq_quantize(w, "nl4_32", np.diag(diag))
    np.testing.assert_array_equal(got, Q.quantize(w, "nl4_32", importance=diag))


def test_gptq_nl4_bytes_dequantize_the_same_in_cpp():
    from edgerun import _core

    rng = np.random.default_rng(3)
    x = _inputs(rng, 512, 128)
    w = rng.standard_normal((16, 128)).astype(np.float32)
    b = gptq_quantize(w, "nl4_32", x.T @ x / len(x))
    for r in range(w.shape[0]):
        np.testing.assert_array_equal(_core.dequantize(Q.DTYPES["nl4_32"].id, b[r].tobytes(), 128, level="ref"),
                                      Q.dequantize(b[r:r + 1], "nl4_32", (1, 128))[0])


def test_gptq_rejects_other_dtypes():
    with pytest.raises(ValueError, match="nl4_32"):
        gptq_quantize(np.zeros((2, 64), np.float32), "q8_0", np.eye(64))


# ---- the GPTQ mix of the int4 recipe ----

def _toy_plan(L=6, C=256, F=512, V=2048):
    from edgeconv.archs import PlannedTensor

    def t(name, role, shape, layer=None):
        return PlannedTensor(name, name, role, shape, layer, "f32" if len(shape) == 1 else None, False, None)

    plan = [t("tok_embd", "embedding", (V, C))]
    for i in range(L):
        plan += [t(f"blk.{i}.attn_norm", "norm", (C,), i)]
        plan += [t(f"blk.{i}.{r}", r, (C, C), i) for r in ("attn_q", "attn_k", "attn_v", "attn_o")]
        plan += [t(f"blk.{i}.ffn_gate", "ffn_gate", (F, C), i), t(f"blk.{i}.ffn_up", "ffn_up", (F, C), i),
                 t(f"blk.{i}.ffn_down", "ffn_down", (C, F), i)]
    return plan, L


@pytest.mark.parametrize("fixed", [128, 20_000, 60_000])
def test_gptq_mix_meets_the_budget_and_spends_it(fixed):
    from edgeconv.format import tensor_nbytes
    from edgeconv.recipes import _layer_set, fit_dtype

    plan, L = _toy_plan()
    rec = get_recipe(RECIPES["int4"].gptq_mix)
    dt = assign_dtypes(plan, rec, (), L, fixed)
    n = sum(p.n_elements for p in plan)
    size = file_size(plan, dt, fixed)
    assert 8 * size / n <= rec.budget_bpw
    assert dt["tok_embd"] == "nl4_32" and all(dt[f"blk.{i}.attn_norm"] == "f32" for i in range(L))
    assert set(dt.values()) <= {"f32", "int4_64", "nl4_32", "int4a_32", "q8_0"} and rec.refine_scales
    # spent: no upgrade the greedy pass skipped would still fit what is left of the budget
    left = rec.budget_bpw * n / 8 - size
    for up in rec.upgrades:
        layers = _layer_set(up.layers, L)
        for p in plan:
            if p.role in up.roles and (layers is None or p.layer in layers):
                extra = tensor_nbytes(fit_dtype(up.dtype, p.shape[-1]), p.shape) - tensor_nbytes(dt[p.name], p.shape)
                assert extra <= 0 or extra > left, (up, p.name, dt[p.name])
    # bought in order: a later role's upgrade only once every attn_v has its first one
    if any(dt[f"blk.{i}.attn_k"] != "int4_64" for i in range(L)):
        assert all(dt[f"blk.{i}.attn_v"] != "int4_64" for i in range(L))
    if any(dt[f"blk.{i}.ffn_down"] != "int4_64" for i in range(L)):
        assert all(dt[f"blk.{i}.attn_v"] in ("int4a_32", "q8_0") and dt[f"blk.{i}.attn_k"] == "nl4_32"
                   for i in range(L))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from models.tiny import make_tiny

    d = tmp_path_factory.mktemp("llama")
    make_tiny("llama", seed=3, dir=d)
    return {"llama": (d,)}


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def test_cli_int4_gptq_mix_is_deterministic_and_uses_nl4(tiny_llama, tmp_path, capsys):
    folder = tiny_llama["llama"][0]
    a, b = tmp_path / "a.edge", tmp_path / "b.edge"
    for out in (a, b):
        assert cli.main(["export", str(folder), "-o", str(out), "--quant", "int4", "-q", "--calib-tokens", "1024"]) == 0
    err = capsys.readouterr().err
    assert "GPTQ dtype mix: recipe int4g" in err and "nl4_32 tensors" in err  # the untied head: nl4_32
    assert _sha(a) == _sha(b)
    with EdgeFile(a) as f:
        assert f.metadata["quant.recipe"] == "int4"
        assert "nl4_32" in {t.dtype for t in f.tensors}


@pytest.mark.parametrize("name", ["int4_32", "int4_64", "nl4_32"])
def test_refine_scales_never_raises_the_output_error_of_a_row(name):
    rng = np.random.default_rng(11)
    x = _inputs(rng, 1024, 192)
    h = x.T @ x / len(x)
    w = rng.standard_normal((48, 192)).astype(np.float32)
    b0, b1 = gptq_quantize(w, name, h), gptq_quantize(w, name, h, refine=True)
    bpb = Q.row_bytes(name, 192) // (192 // Q.DTYPES[name].block)
    same_codes = b0.reshape(48, -1, bpb)[..., 2:] == b1.reshape(48, -1, bpb)[..., 2:]
    assert same_codes.all()  # only the scales move
    hd = h + DAMP * np.mean(np.diag(h)) * np.eye(192)  # the (damped) objective GPTQ minimises
    e0, e1 = (np.array([output_error(w[i:i + 1], Q.dequantize(b[i:i + 1], name, (1, 192)), hd) for i in range(48)])
              for b in (b0, b1))
    assert np.all(e1 <= e0 * (1 + 1e-6)) and e1.sum() < 0.995 * e0.sum(), (e0.sum(), e1.sum())
    # and the undamped output error drops as well
    assert output_error(w, Q.dequantize(b1, name, w.shape), h) < output_error(w, Q.dequantize(b0, name, w.shape), h)
