"""attention_fn and silu_mul_fn: every level the CPU supports against the reference and a float64 softmax-attention,
at head sizes and context lengths that break vector tails, with strided K/V rows."""

import numpy as np
import pytest

from edgerun import _core

LEVELS = _core.kernel_levels()


def attention64(q, k, v):
    s = (k.astype(np.float64) @ q.astype(np.float64)) / np.sqrt(len(q))
    p = np.exp(s - s.max())
    return (p / p.sum()) @ v.astype(np.float64)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("head_dim", [1, 2, 7, 8, 15, 16, 17, 24, 33, 64, 80, 128])
@pytest.mark.parametrize("n_pos", [1, 2, 3, 5, 16, 17, 63, 300])
def test_attention_matches_reference(level, head_dim, n_pos):
    rng = np.random.default_rng(head_dim * 1000 + n_pos)
    stride = head_dim + 5  # rows of K/V are wider than one head, as in the KV cache
    q = rng.standard_normal(head_dim).astype(np.float32) * 2
    k = rng.standard_normal((n_pos, stride)).astype(np.float32)
    v = rng.standard_normal((n_pos, stride)).astype(np.float32)
    exact = attention64(q, k[:, :head_dim], v[:, :head_dim])
    ref = _core.attention(q, k, v, "ref")
    got = _core.attention(q, k, v, level)
    vmax = np.abs(v[:, :head_dim]).max()
    assert np.abs(ref - exact).max() <= 1e-5 * vmax
    assert np.abs(got - ref).max() <= 1e-5 * vmax  # the bound declared in kernels.h


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("p_begin,n_pos", [(1, 2), (5, 16), (15, 17), (16, 40), (17, 40), (30, 31), (3, 300), (250, 300)])
def test_attention_window_matches_reference(level, p_begin, n_pos):
    """A sliding window: positions [p_begin, n_pos) only, starting inside or at the edge of a K tile."""
    rng = np.random.default_rng(p_begin * 7 + n_pos)
    head_dim, stride = 24, 29
    q = rng.standard_normal(head_dim).astype(np.float32) * 2
    k = rng.standard_normal((n_pos, stride)).astype(np.float32)
    v = rng.standard_normal((n_pos, stride)).astype(np.float32)
    exact = attention64(q, k[p_begin:, :head_dim], v[p_begin:, :head_dim])
    vmax = np.abs(v[:, :head_dim]).max()
    assert np.abs(_core.attention(q, k, v, "ref", p_begin) - exact).max() <= 1e-5 * vmax
    assert np.abs(_core.attention(q, k, v, level, p_begin) - exact).max() <= 1e-5 * vmax
    with pytest.raises(ValueError):
        _core.attention(q, k, v, level, n_pos)


@pytest.mark.parametrize("level", LEVELS)
def test_attention_extreme_scores(level):
    """Huge score gaps (one position dominates, others underflow) and equal scores."""
    q = np.full(16, 30.0, dtype=np.float32)
    k = np.zeros((4, 16), dtype=np.float32)
    k[2] = 1.0
    v = np.arange(64, dtype=np.float32).reshape(4, 16)
    np.testing.assert_allclose(_core.attention(q, k, v, level), v[2], rtol=1e-6)
    q0 = np.zeros(16, dtype=np.float32)
    np.testing.assert_allclose(_core.attention(q0, k, v, level), v.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [1, 3, 7, 8, 15, 16, 17, 33, 1536, 1543])
def test_silu_mul_matches_reference(level, n):
    rng = np.random.default_rng(n)
    g = (rng.standard_normal(n) * 6).astype(np.float32)
    g[:: 7] = rng.choice([0.0, -100.0, 100.0, -87.5, 88.0], size=len(g[::7]))  # saturating exps
    u = rng.standard_normal(n).astype(np.float32)
    ref = _core.silu_mul(g, u, "ref")
    exact = (g.astype(np.float64) / (1 + np.exp(-g.astype(np.float64)))) * u
    np.testing.assert_allclose(ref, exact, rtol=1e-6, atol=1e-30)
    got = _core.silu_mul(g, u, level)
    assert np.all(np.abs(got - ref) <= 1e-6 * np.abs(g * u) + 1e-30)  # the bound declared in kernels.h
