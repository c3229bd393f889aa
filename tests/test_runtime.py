"""The C++ runtime's logits against the PyTorch reference (models/) and Hugging Face transformers,
on tiny random-weight models of every architecture, for every quantization type and kernel level."""

import os

import numpy as np
import pytest
import torch

import edgerun
from edgerun import _core
from edgeconv.cli import main as edgeconv_main
from models.edge_loader import load_edge_reference
from models.tiny import make_tiny

ARCHS = {
    "llama": {},
    "llama_tied": {"tie_word_embeddings": True},
    "qwen2": {},
    "qwen3": {},
}
TOKENS = [1, 17, 33, 250, 7, 99, 3, 12, 200, 5, 64, 128, 31]

# Declared tolerances vs the reference run on the same (dequantized) weights, as max|Δlogit| relative to
# max|logit|. Float-weight types see only summation-order differences; int-dot types also quantize the
# activations to int8 per 32 values (block_q8x), which costs ~0.5% per matmul, compounding over layers.
TOL_FLOAT = 2e-4
TOL_INT_DOT = 4e-2
RECIPES = ["f32", "f16", "bf16", "q8", "int4", "int4a", "mxint8", "mxfp8", "mxfp6", "mxfp4"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny(arch, recipe) -> (path of the .edge file, HF model); each is built once per module."""
    root = tmp_path_factory.mktemp("tiny")
    cache = {}

    def get(arch, recipe="f32"):
        key = (arch, recipe)
        if key not in cache:
            hf_dir = root / arch
            if arch not in {k[0] for k in cache}:
                base = "llama" if arch.startswith("llama") else arch
                hf, _, _ = make_tiny(base, seed=1, dir=hf_dir, **ARCHS[arch])
                cache[(arch, None)] = hf
            out = root / f"{arch}.{recipe.replace(' ', '')}.edge"
            quant, *extra = recipe.split()  # e.g. "int4 --no-calib"
            assert edgeconv_main(["export", str(hf_dir), "-o", str(out), "--quant", quant, *extra, "--quiet"]) in (0, None)
            cache[key] = str(out)
        return cache[key], cache[(arch, None)]

    return get


def hf_logits(hf, tokens):
    with torch.no_grad():
        return hf(torch.tensor([tokens])).logits[0].numpy()


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("arch", list(ARCHS))
def test_f32_matches_transformers_and_reference(tiny, arch):
    path, hf = tiny(arch)
    m = edgerun.Model(path, threads=2, kv="f32")  # the f32 path end to end (the f16 KV default: tests/test_kv_cache.py)
    got = m.logits(TOKENS)
    assert rel_err(got, hf_logits(hf, TOKENS)) < TOL_FLOAT
    ref = load_edge_reference(path).logits(torch.tensor(TOKENS)).numpy()
    assert rel_err(got, ref) < TOL_FLOAT
    assert got.shape == (len(TOKENS), m.vocab_size)


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("arch", ["llama_tied", "qwen2", "qwen3"])
def test_quantized_matches_reference(tiny, arch, recipe):
    path, _ = tiny(arch, recipe)
    ref = load_edge_reference(path).logits(torch.tensor(TOKENS)).numpy()
    info = _core.file_info(path)
    int_dot = any(_core.DTYPES[t["dtype"]][3] for t in info["tensors"])
    got = edgerun.Model(path, threads=2, kv="f32").logits(TOKENS)  # the weights' error alone
    assert rel_err(got, ref) < (TOL_INT_DOT if int_dot else TOL_FLOAT)


@pytest.mark.parametrize("recipe,tol", [("f32", 1e-4), ("int4 --no-calib", 1e-2)])
@pytest.mark.parametrize("level", _core.kernel_levels())
def test_every_kernel_level_agrees(tiny, level, recipe, tol):
    path, _ = tiny("qwen2", recipe)
    base = edgerun.Model(path, threads=1, kernels="ref").logits(TOKENS)
    got = edgerun.Model(path, threads=2, kernels=level).logits(TOKENS)
    assert edgerun.Model(path, kernels=level).kernel_level == level
    # f32 weights: only the f32 summation order differs between levels. int4 (round-to-nearest weights, so the
    # file does not depend on the runtime's calibration pass): the same quantized activations (bit-exact
    # quantize_q8x) and exact int32 block sums, but a summation-order difference upstream (e.g. the blocked
    # prefill attention's tiles) can flip one activation's int8 rounding, which moves the logits by ~5e-3.
    assert rel_err(got, base) < tol
    assert (got.argmax(1) == base.argmax(1)).all()


def test_prefill_then_decode_equals_full_forward(tiny):
    path, _ = tiny("qwen3", "q8")
    m = edgerun.Model(path, threads=2, batch=4)  # batch 4 forces chunked prefill
    full = m.logits(TOKENS)
    m.reset()
    m.eval(TOKENS[:6])
    steps = [m.eval([t]) for t in TOKENS[6:]]
    np.testing.assert_allclose(np.stack(steps), full[6:], rtol=0, atol=1e-3 * np.abs(full).max())
    assert m.n_past == len(TOKENS)


def test_greedy_generation_matches_transformers(tiny):
    path, hf = tiny("llama")
    m = edgerun.Model(path, threads=2)
    out = []
    for _ in m.generate(TOKENS[:5], 12, temperature=0, stop_ids=[], tokens_out=out):
        pass
    with torch.no_grad():
        want = hf.generate(torch.tensor([TOKENS[:5]]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                           pad_token_id=0)[0, 5:].tolist()
    assert out == want


def test_threads_do_not_change_results(tiny):
    path, _ = tiny("qwen2", "int4")
    a = edgerun.Model(path, threads=1).logits(TOKENS)
    b = edgerun.Model(path, threads=2).logits(TOKENS)
    np.testing.assert_array_equal(a, b)


def test_memory_budget_is_checked_before_loading(tiny):
    path, _ = tiny("llama", "f32")
    m = edgerun.Model(path)
    plan = m.memory_plan
    need = plan["total"]
    assert plan["layer_window"] == 0
    assert edgerun.Model(path, mem=need).memory_plan["layer_window"] == 0  # exactly enough: all mapped
    # one byte less at the same context (--ctx given: without it the budget would choose a shorter context,
    # tests/test_kv_cache.py): the layers stream through a window of buffers instead of failing (docs/MOE.md §4)
    streamed = edgerun.Model(path, mem=need - 1, ctx=m.ctx)
    assert streamed.memory_plan["layer_window"] > 0 and streamed.memory_plan["total"] <= need - 1
    # below what must stay resident (embeddings, head, KV cache, scratch) it is refused before loading
    with pytest.raises(edgerun.MemoryBudgetError):
        edgerun.Model(path, mem=plan["kv_cache"] + plan["scratch"])


def test_context_overflow_and_bad_tokens_are_errors(tiny):
    path, _ = tiny("llama", "f32")
    m = edgerun.Model(path, ctx=8)
    with pytest.raises(ValueError, match="context is full"):
        m.eval(list(range(9)))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.eval([m.vocab_size])
    with pytest.raises(ValueError):
        m.eval([-1])


def test_sampler():
    logits = np.array([0.0, 3.0, 1.0, 2.9], dtype=np.float32)
    greedy = _core.Sampler(temperature=0)
    assert greedy.sample(logits, []) == 1
    # repetition penalty can flip the argmax
    pen = _core.Sampler(temperature=0, repeat_penalty=1.5)
    assert pen.sample(logits, [1]) == 3
    # same seed, same draws; top_k=1 is greedy
    draws = lambda seed: [_core.Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0, repeat_penalty=1,
                                        seed=seed).sample(logits, []) for _ in range(1)]
    assert draws(7) == draws(7)
    assert _core.Sampler(temperature=2.0, top_k=1, seed=3).sample(logits, []) == 1
    s = _core.Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0, repeat_penalty=1, seed=1)
    counts = np.bincount([s.sample(logits, []) for _ in range(4000)], minlength=4) / 4000
    p = np.exp(logits - logits.max())
    p /= p.sum()
    np.testing.assert_allclose(counts, p, atol=0.03)
    # min_p removes tokens far below the best
    s = _core.Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.5, repeat_penalty=1, seed=1)
    assert {s.sample(logits, []) for _ in range(200)} <= {1, 3}
    # top_p=0.5 keeps only the most likely token here
    s = _core.Sampler(temperature=1.0, top_k=0, top_p=0.4, min_p=0, repeat_penalty=1, seed=1)
    assert {s.sample(logits, []) for _ in range(100)} == {1}
