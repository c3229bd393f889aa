"""Blocked prefill attention (issue 11 §3; csrc/backend/cpu/cpu_attention_block.cpp): a step of several tokens
runs the attention_block kernels (a block of heads × tokens of one kv head against each K/V tile once) instead
of one kernel call per (token, head). $EDGE_ATTN_BLOCK is the smallest step that takes it (0: never).

On tiny models of every architecture the tests build (llama, qwen2, qwen3, gemma3 with sliding windows in a
ring, MoE with and without a window, a GQA group of 3 at head_dim 64), for every KV form: the logits of the
blocked path stay within the declared bound of the per-token path, and do not depend on the thread count.
The kernels themselves: edge_test_kernels (every level vs float64, test_attention_block.h)."""

import numpy as np
import pytest

import edgerun
from edgeconv.cli import main as edgeconv_main
from models.tiny import make_tiny
from test_gemma3 import make_gemma3

TOKENS = ([1, 17, 33, 250, 7, 99, 3, 12, 200, 5, 64, 128, 31, 45, 2, 9, 77, 150, 11, 8] * 5)[:90]
# max|Δlogit| / max|logit|, blocked vs per-token: both are within 1e-5·max|V| of exact attention (kernels.h);
# the same bound as one-token decode vs the same positions in one prefill (tests/test_kv_cache.py)
TOL_BLOCK = 1e-4

BUILDS = {
    "llama": lambda d: make_tiny("llama", seed=1, dir=d),
    "qwen2": lambda d: make_tiny("qwen2", seed=2, dir=d),
    "qwen3": lambda d: make_tiny("qwen3", seed=3, dir=d),
    "gemma3": lambda d: make_gemma3(d),
    "mixtral_swa": lambda d: make_tiny("mixtral", seed=1, dir=d, sliding_window=5),
    "qwen3moe": lambda d: make_tiny("qwen3moe", seed=4, dir=d),
    "llama_group3_dh64": lambda d: make_tiny("llama", seed=5, dir=d, hidden_size=96, num_attention_heads=3,
                                             num_key_value_heads=1, head_dim=64),
}


@pytest.fixture(scope="module")
def edge_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("attn_block")
    cache = {}

    def get(arch):
        if arch not in cache:
            BUILDS[arch](root / arch)
            out = root / f"{arch}.f32.edge"
            assert edgeconv_main(["export", str(root / arch), "-o", str(out), "--quant", "f32", "--quiet"]) in (0, None)
            cache[arch] = str(out)
        return cache[arch]
    return get


def logits(path, monkeypatch, block, **kw):
    monkeypatch.setenv("EDGE_ATTN_BLOCK", block)
    return edgerun.Model(path, batch=32, **kw).logits(TOKENS)


@pytest.mark.parametrize("kv", ["f32", "f16", "q8"])
@pytest.mark.parametrize("arch", list(BUILDS))
def test_blocked_logits_within_bound_of_per_token(edge_files, monkeypatch, arch, kv):
    path = edge_files(arch)
    want = logits(path, monkeypatch, "0", threads=2, kv=kv)
    got = logits(path, monkeypatch, "1", threads=2, kv=kv)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < err <= TOL_BLOCK, err  # > 0: the blocked path ran (its sums are grouped differently)
    for threads in (1, 3):  # the split over the pool never changes a row's result
        np.testing.assert_array_equal(logits(path, monkeypatch, "1", threads=threads, kv=kv), got)


def test_default_threshold_keeps_decode_on_the_per_token_path(edge_files, monkeypatch):
    """Unset: prompt chunks take the blocked path, one-token steps the per-token one (bit for bit the same
    decode as EDGE_ATTN_BLOCK=0 after the same prefill)."""
    path = edge_files("llama")
    monkeypatch.delenv("EDGE_ATTN_BLOCK", raising=False)
    m = edgerun.Model(path, threads=2, batch=32)
    monkeypatch.setenv("EDGE_ATTN_BLOCK", "0")
    off = edgerun.Model(path, threads=2, batch=32)
    prefill = m.logits(TOKENS)
    assert not np.array_equal(prefill, off.logits(TOKENS))  # the prompt went through the blocked kernels
    off.reset()
    for t in TOKENS[:-1]:  # the same cache contents: decode both from one-token steps only
        off._m.eval([t])
    m.reset()
    for t in TOKENS[:-1]:
        m._m.eval([t])
    np.testing.assert_array_equal(m._m.eval([TOKENS[-1]]), off._m.eval([TOKENS[-1]]))
