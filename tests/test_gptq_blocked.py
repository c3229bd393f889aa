"""GPTQ's blocked implementation (quant/gptq.py: left-looking steps inside a quantization group, one product per
group and per lazy batch) against the textbook algorithm written plainly here: per column, quantize with the
group's scale, then push the scaled error onto EVERY later column at once (right-looking, no batching).

Both do the same algebra in a different summation order, so they agree to float rounding: the same codes for
all but a few elements whose value sits on a rounding boundary, and the same output error tr(ΔW H ΔWᵀ) to a
small tolerance. Sizes are chosen so that the lazy batch (LAZY = 128 columns) does not divide the row
(cols = 224, 416) and the row chunks do not divide the rows (67 rows).
Also: refine_scales's one-product form against its definition (least squares on the damped objective), and
the block-preserving act-order (the default): a permutation of whole blocks, no worse than natural order.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeconv import quant as Q
from edgeconv.quant import gptq, int4, nl4
from edgeconv.quant._blocks import f16_from_bytes, safe_div, unpack_nibbles
from edgeconv.quant.gptq import DAMP, gptq_quantize, inverse_factor, output_error


def _inputs(rng, n, cols):
    mix = np.eye(cols) + rng.standard_normal((cols, cols)) / np.sqrt(cols)
    return (rng.standard_normal((n, cols)) @ mix) * (0.2 + rng.gamma(0.5, size=cols))


def _reference(w, dtype, h):
    """Textbook GPTQ -> (codes [rows, cols], d [rows, nb], m [rows, nb]); scale weights diag H like gptq_quantize."""
    rows, cols = w.shape
    B = Q.DTYPES[dtype].block
    u = inverse_factor(h, DAMP).astype(np.float32)
    sw = gptq._scale_weights("hdiag", h, cols, B)
    W = w.astype(np.float32).copy()
    codes = np.zeros((rows, cols), np.float32)
    d_all, m_all = np.zeros((rows, cols // B), np.float32), np.zeros((rows, cols // B), np.float32)
    for j in range(cols):
        g = j // B
        if j % B == 0:
            x = W[:, j:j + B][:, None, :]
            if dtype.startswith("int4a"):
                d, m = int4.int4a_params(x, sw[g][None, :])
                m_all[:, g] = m[:, 0]
            else:
                d = (nl4.nl4_scale if dtype == "nl4_32" else int4.int4_scale)(x, sw[g][None, :])
            d_all[:, g] = d[:, 0]
        d, m = d_all[:, g], m_all[:, g]
        if dtype == "nl4_32":
            q = nl4.nl4_nearest(W[:, j], d).astype(np.float32)
            hat = d * nl4.VALUES[q.astype(np.uint8)]
        else:
            lo, hi = (0, 15) if dtype.startswith("int4a") else (-8, 7)
            q = np.clip(np.rint((W[:, j] - m) * safe_div(np.float32(1), d)), lo, hi)
            hat = d * q + m
        codes[:, j] = q
        e = (W[:, j] - hat) / u[j, j]
        W[:, j + 1:] -= e[:, None] * u[j, j + 1:][None, :]
    return codes, d_all, m_all


def _codes(b, dtype, shape):
    rows, cols = shape
    B = Q.DTYPES[dtype].block
    blocks = b.reshape(rows, cols // B, -1)
    off = 4 if dtype.startswith("int4a") else 2
    q = unpack_nibbles(blocks[..., off:]).astype(np.float32).reshape(rows, cols)
    return q - 8 if dtype.startswith("int4_") else q


@pytest.mark.parametrize("dtype,rows,cols", [("int4_32", 67, 224), ("int4_64", 67, 448), ("int4a_32", 67, 224),
                                             ("nl4_32", 67, 416), ("int4_128", 5, 384)])
def test_blocked_gptq_matches_the_per_column_reference(dtype, rows, cols, monkeypatch):
    rng = np.random.default_rng(cols + rows)
    x = _inputs(rng, 4 * cols, cols)
    h = x.T @ x / len(x)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    monkeypatch.setattr(gptq, "_ROW_CHUNK", 20 * cols)  # row chunks of 20: 67 = 3 · 20 + 7
    b = gptq_quantize(w, dtype, h, order="natural")  # the reference's column order
    ref, ref_d, ref_m = _reference(w, dtype, h)
    # the same codes up to rounding-boundary cases; where a code differs, the rest of its row may follow
    assert np.mean(_codes(b, dtype, w.shape) == ref) > 0.97
    rows_same = np.all(_codes(b, dtype, w.shape) == ref, axis=1)
    assert rows_same.mean() > 0.5
    d = f16_from_bytes(b.reshape(rows, cols // Q.DTYPES[dtype].block, -1)[..., 0:2])
    # the f16 scales where the codes agree: equal, or one f16 step apart (a search on values that differ by rounding)
    np.testing.assert_allclose(d[rows_same], ref_d[rows_same], rtol=2e-3)
    assert np.mean(d[rows_same] == ref_d[rows_same]) > 0.95
    # the objective: equal to rounding, never materially worse
    ours = Q.dequantize(b, dtype, w.shape)
    e_ours = output_error(w, ours, h)
    B = Q.DTYPES[dtype].block
    want = ref_d.repeat(B, axis=1) * (nl4.VALUES[ref.astype(np.uint8)] if dtype == "nl4_32" else ref) \
        + ref_m.repeat(B, axis=1)
    e_ref = output_error(w, want, h)
    assert e_ours <= e_ref * 1.002, (e_ours, e_ref)
    assert abs(e_ours / e_ref - 1) < 0.002


@pytest.mark.parametrize("name", ["int4_64", "nl4_32"])
def test_refine_scales_solves_the_least_squares_problem(name, monkeypatch):
    """The new scales are the f16-rounded least-squares scales (G d = c built from its definition), and a row
    takes them exactly when its damped objective drops (measured directly)."""
    rng = np.random.default_rng(5)
    cols, rows = 192, 37
    x = _inputs(rng, 1024, cols)
    h = x.T @ x / len(x)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    b0 = gptq_quantize(w, name, h, order="natural")
    hd = (h + DAMP * np.mean(np.diag(h)) * np.eye(cols)).astype(np.float32)
    monkeypatch.setattr(gptq, "_REFINE_CHUNK", 11 * cols * (cols // Q.DTYPES[name].block))  # chunks of 11 rows
    b1 = gptq.refine_scales(w, b0.copy(), name, hd)
    B = Q.DTYPES[name].block
    nb = cols // B
    v = Q.dequantize(b0, name, w.shape) / f16_from_bytes(b0.reshape(rows, nb, -1)[..., 0:2]).repeat(B, axis=1)
    d0 = f16_from_bytes(b0.reshape(rows, nb, -1)[..., 0:2]).astype(np.float64)
    d1 = f16_from_bytes(b1.reshape(rows, nb, -1)[..., 0:2]).astype(np.float64)
    H = hd.astype(np.float64)
    for i in range(rows):
        a = np.zeros((nb, cols))
        for k in range(nb):
            a[k, k * B:(k + 1) * B] = v[i, k * B:(k + 1) * B]
        sol = np.linalg.solve(a @ H @ a.T, a @ H @ w[i].astype(np.float64))
        obj = [float((w[i] - dd @ a) @ H @ (w[i] - dd @ a)) for dd in (d0[i], d1[i])]
        if np.array_equal(d1[i], d0[i]):
            cand = np.float16(sol).astype(np.float64)
            obj_c = float((w[i] - cand @ a) @ H @ (w[i] - cand @ a))
            assert obj_c >= obj[0] * (1 - 1e-5), i  # kept: the least-squares scales were not better
        else:
            np.testing.assert_allclose(d1[i], np.float16(sol).astype(np.float64), rtol=2e-3, err_msg=str(i))
            assert obj[1] < obj[0], i


def test_block_act_order_permutes_whole_blocks():
    rng = np.random.default_rng(2)
    dg = rng.gamma(0.5, size=224)
    perm = gptq.block_act_order(np.diag(dg), 32)
    assert sorted(perm) == list(range(224))
    runs = perm.reshape(7, 32)
    assert all(len(set(r // 32)) == 1 for r in runs)          # each run of 32 is one natural block
    assert np.all(np.diff(dg[runs], axis=1) <= 0)             # most active inputs first inside a block
    sums = np.array([dg[r].sum() for r in runs])
    assert np.all(np.diff(sums) <= 0)                         # and the most active blocks first


@pytest.mark.parametrize("dtype", ["int4_32", "int4_64", "int4a_32", "nl4_32"])
def test_act_order_lowers_the_output_error(dtype):
    rng = np.random.default_rng(Q.DTYPES[dtype].id)
    e = {"natural": 0.0, "act": 0.0}
    for _ in range(3):
        x = _inputs(rng, 1024, 192)
        h = x.T @ x / len(x)
        w = rng.standard_normal((40, 192)).astype(np.float32)
        for o in e:
            e[o] += output_error(w, Q.dequantize(gptq_quantize(w, dtype, h, order=o), dtype, w.shape), h)
    assert e["act"] < 0.97 * e["natural"], e
    with pytest.raises(ValueError, match="order"):
        gptq_quantize(w, dtype, h, order="random")
