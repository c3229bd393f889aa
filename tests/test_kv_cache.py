"""The KV cache stored as f16 or q8 (--kv): the attention kernels of every level against float64 attention on
the dequantized cache and against their reference; the model's logits and plan with each form; the context
chosen to fit --mem."""

import os

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgeconv.cli import main as edgeconv_main
from models.tiny import make_tiny

LEVELS = _core.kernel_levels()
KV_TYPES = ["f16", "q8"]


def attention64(q, k, v):
    s = (k.astype(np.float64) @ q.astype(np.float64)) / np.sqrt(len(q))
    p = np.exp(s - s.max())
    return (p / p.sum()) @ v.astype(np.float64)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kv", KV_TYPES)
@pytest.mark.parametrize("head_dim", [1, 2, 7, 8, 15, 16, 17, 33, 64, 80])
@pytest.mark.parametrize("n_pos", [1, 2, 3, 5, 16, 17, 63, 129])
def test_attention_kv_matches_float64(level, kv, head_dim, n_pos):
    """Every level vs float64 attention on the cache as stored (kernels.h: |Δ| ≤ 1e-5·max|V|), and vs its reference."""
    rng = np.random.default_rng(head_dim * 1000 + n_pos)
    q = rng.standard_normal(head_dim).astype(np.float32) * 2
    k = rng.standard_normal((n_pos, head_dim)).astype(np.float32)
    v = rng.standard_normal((n_pos, head_dim)).astype(np.float32)
    got, kd, vd = _core.attention_kv(q, k, v, kv, level)
    ref, kd_ref, vd_ref = _core.attention_kv(q, k, v, kv, "ref")
    np.testing.assert_array_equal(kd, kd_ref)  # the stored form does not depend on the level
    vmax = np.abs(vd).max()
    assert np.abs(ref - attention64(q, kd, vd)).max() <= 1e-5 * vmax
    assert np.abs(got - ref).max() <= 1e-5 * vmax
    if kv == "f16":  # the reference converts exactly and then is attention_ref: equal bit for bit
        np.testing.assert_array_equal(ref, _core.attention(q, kd, vd, "ref"))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kv", KV_TYPES)
@pytest.mark.parametrize("p_begin,n_pos", [(1, 2), (5, 16), (15, 17), (16, 40), (17, 40), (250, 300)])
def test_attention_kv_window(level, kv, p_begin, n_pos):
    rng = np.random.default_rng(p_begin * 7 + n_pos)
    q = rng.standard_normal(24).astype(np.float32)
    k = rng.standard_normal((n_pos, 24)).astype(np.float32)
    v = rng.standard_normal((n_pos, 24)).astype(np.float32)
    got, kd, vd = _core.attention_kv(q, k, v, kv, level, p_begin)
    assert np.abs(got - attention64(q, kd[p_begin:], vd[p_begin:])).max() <= 1e-5 * np.abs(vd).max()


def test_q8_cache_form():
    """q8: per position one scale amax/127, codes within ±127, zero rows stay zero, error ≤ half a step."""
    rng = np.random.default_rng(3)
    k = rng.standard_normal((20, 40)).astype(np.float32) * np.geomspace(1e-3, 1e3, 20, dtype=np.float32)[:, None]
    k[4] = 0
    _, kd, _ = _core.attention_kv(np.ones(40, np.float32), k, k, "q8")
    step = np.abs(k).max(1, keepdims=True) / 127
    assert np.all(np.abs(kd - k) <= step * (0.5 + 1e-5))
    assert np.all(kd[4] == 0)
    with pytest.raises(ValueError):
        _core.attention_kv(np.ones(40, np.float32), k, k, "q4")


@pytest.fixture(scope="module")
def tiny_edge(tmp_path_factory):
    root = tmp_path_factory.mktemp("kv")
    make_tiny("llama", seed=1, dir=root / "hf")
    out = root / "tiny.f32.edge"
    assert edgeconv_main(["export", str(root / "hf"), "-o", str(out), "--quant", "f32", "--quiet"]) in (0, None)
    return str(out)


TOKENS = [1, 17, 33, 250, 7, 99, 3, 12, 200, 5, 64, 128, 31] * 5
# Declared bounds of the logits vs the f32 cache, max|Δ| / max|logit| over 65 positions of the tiny model:
# f16 rounds K and V to 11 significant bits (2^-12 relative), q8 to 1/254 of each head vector's max.
TOL_KV = {"f16": 2e-3, "q8": 2e-2}


@pytest.mark.parametrize("kv", KV_TYPES)
@pytest.mark.parametrize("kernels", sorted({"ref", LEVELS[-1]}))
def test_model_logits_with_kv(tiny_edge, kv, kernels):
    base = edgerun.Model(tiny_edge, threads=1, kernels=kernels, kv="f32")
    m = edgerun.Model(tiny_edge, threads=2, kernels=kernels, kv=kv)
    assert base.kv == "f32" and m.kv == kv
    want = base.logits(TOKENS)
    got = m.logits(TOKENS)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < err <= TOL_KV[kv]
    # decode one token at a time == the same positions in one prefill, to the kernels' reordering
    m.reset()
    step = np.stack([m._m.eval([t]) for t in TOKENS[:20]])
    assert np.abs(step - got[:20]).max() <= 1e-4 * np.abs(got).max()


def test_plan_counts_the_smaller_cache(tiny_edge):
    sizes = {kv: edgerun.Model(tiny_edge, threads=1, ctx=256, kv=kv).memory_plan["kv_cache"] for kv in ["f32", "f16", "q8"]}
    cfg = edgerun.Model(tiny_edge, threads=1, ctx=256).config
    elems = 2 * cfg["n_layers"] * 256 * cfg["n_kv_heads"] * cfg["head_dim"]
    assert sizes["f32"] == 4 * elems and sizes["f16"] == 2 * elems
    assert sizes["q8"] == elems + 2 * cfg["n_layers"] * cfg["n_kv_heads"] * 256 * 4  # codes + one f32 scale per (pos, head)
    with pytest.raises(ValueError, match="kv must be one of"):
        edgerun.Model(tiny_edge, kv="q4")


@pytest.mark.parametrize("kv", ["f32", "q8"])
def test_budget_chooses_the_context(tiny_edge, kv):
    """--mem without --ctx: the longest context (whole K tiles, at most the trained one) whose plan fits."""
    full = edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv)
    assert not full.ctx_from_budget
    trained = full.config["max_ctx"]
    small = edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv, ctx=16)
    per_tile = (edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv, ctx=32).memory_plan["total"] - small.memory_plan["total"])
    budget = small.memory_plan["total"] + 5 * per_tile + per_tile // 2  # room for 6 tiles, not 7
    m = edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv, mem=budget)
    assert m.ctx_from_budget and m.ctx == 6 * 16 and m.memory_plan["total"] <= budget
    assert edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv, ctx=7 * 16).memory_plan["total"] > budget  # one tile more would not
    assert not edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv, mem=budget, ctx=48).ctx_from_budget  # --ctx given: kept
    big = edgerun.Model(tiny_edge, threads=1, batch=16, kv=kv, mem=1 << 40)  # everything fits: the trained context
    assert big.ctx_from_budget and big.ctx == trained


@pytest.fixture(scope="module")
def swa_edge(tmp_path_factory):
    root = tmp_path_factory.mktemp("swa")
    make_tiny("mixtral", seed=1, dir=root / "hf", sliding_window=5)
    out = root / "swa.f32.edge"
    assert edgeconv_main(["export", str(root / "hf"), "-o", str(out), "--quant", "f32", "--quiet"]) in (0, None)
    return str(out)


@pytest.mark.parametrize("kv", ["f32", "q8"])
def test_window_ring_equals_the_full_cache(swa_edge, kv):
    """Sliding-window layers keep a ring of R = 16 slots (window 5 + batch 4 - 1, in whole tiles), stored
    twice: the logits over 150 positions (the ring wraps 9 times, in steps of 4 tokens) equal the full cache's
    bit for bit, and the plan counts 2R positions per layer instead of the context."""
    tokens = (TOKENS * 3)[:150]
    full = edgerun.Model(swa_edge, threads=2, batch=4, kv=kv, swa_ring=False)
    ring = edgerun.Model(swa_edge, threads=2, batch=4, kv=kv)
    assert full.swa_ring == 0 and ring.swa_ring == 16
    np.testing.assert_array_equal(ring.logits(tokens), full.logits(tokens))
    assert ring.memory_plan["kv_cache"] * full.ctx == full.memory_plan["kv_cache"] * 2 * 16
    # decode after the prefill, one token at a time
    for t in [5, 9, 77]:
        np.testing.assert_array_equal(ring._m.eval([t]), full._m.eval([t]))
    # a prefix the ring still holds is kept; an older one cannot be (the chat prefix reuse restarts)
    n = ring.n_past
    assert ring._m.keepable(n - 5) == n - 5 and ring._m.keepable(n - 40) == 0
    with pytest.raises(ValueError, match="ring"):
        ring._m.truncate(n - 40)
    ring._m.truncate(n - 5)
    full._m.truncate(n - 5)
    np.testing.assert_array_equal(ring._m.eval([3, 4]), full._m.eval([3, 4]))


@pytest.mark.parametrize("kv", ["f32", "f16", "q8"])
def test_every_sequence_has_the_stored_form_and_the_ring(swa_edge, kv):
    """Model(n_seq=2): each sequence's cache is stored as `kv`, its sliding-window layers in their own ring; an
    eval_batch step over both sequences (a prompt chunk of one beside the other's decode token) gives each
    sequence the logits of single-sequence eval with the full cache, bit for bit, after the rings wrapped."""
    rng = np.random.default_rng(5)
    V = edgerun.Model(swa_edge, threads=1).vocab_size
    prompts = [[int(t) for t in rng.integers(0, V, n)] for n in (40, 23)]
    conts = [[int(t) for t in rng.integers(0, V, 30)] for _ in prompts]
    full = edgerun.Model(swa_edge, threads=2, batch=4, kv=kv, swa_ring=False)
    want = []
    for p, c in zip(prompts, conts):
        full.reset()
        full.eval(p)
        want.append(np.stack([full._m.eval([t]) for t in c]))
    m = edgerun.Model(swa_edge, threads=2, batch=8, kv=kv, n_seq=2)
    assert m.swa_ring == 16 and m.kv == kv  # window 5 + batch 8 - 1, in whole tiles
    names = {b["name"] for b in m._m.memory_buffers}
    assert {"kv.0.k", "kv.0.k.s1"} <= names and (kv != "q8" or {"kv.0.k_scale", "kv.0.k_scale.s1"} <= names)
    for i in range(10):  # sequence 0's prompt in chunks of 4, sequence 1's in chunks of 3 beside it (then none)
        a, b = prompts[0][4 * i:4 * i + 4], prompts[1][3 * i:3 * i + 3]
        m.eval_batch([0] * len(a) + [1] * len(b), a + b)
    assert m.seq_n_past(0) == 40 and m.seq_n_past(1) == 23
    got = [[], []]
    for t0, t1 in zip(*conts):
        lg = m.eval_batch([0, 1], [t0, t1])
        got[0].append(lg[0])
        got[1].append(lg[1])
    for s in range(2):
        np.testing.assert_array_equal(np.stack(got[s]), want[s])
    # a ring's sequence keeps a recent prefix, not an old one; the other sequence is not affected
    n = m.seq_n_past(0)
    assert m.seq_keepable(0, n - 5) == n - 5 and m.seq_keepable(0, n - 40) == 0
    with pytest.raises(ValueError, match="ring"):
        m.seq_truncate(0, n - 40)
    m.seq_truncate(0, n - 5)
    assert m.seq_n_past(0) == n - 5 and m.seq_n_past(1) == 23 + 30
