"""The CUDA prefill path (issue 9 §2): flash-style prefill attention, split-K decode attention
(csrc/backend/cuda/cuda_attention.cu) and the tensor-core prefill GEMM (csrc/kernels/cuda/gemm_mma.cu),
each against the CPU on tiny models at awkward sizes; and the weights read in place from host-registered
mapped memory (EDGE_CUDA_MAPPED_WEIGHTS=1, issue 9 §3). Skipped without a GPU.

Sizes: prompts of 1..130 tokens (the flash kernel takes steps of more than 8 tokens in tiles of 8 queries
and 32 keys: 9, 17, 40, 130 leave partial tiles), head_dim 16 / 24 / 64 / 128 (24 does not divide the
split kernel's 128 threads), GQA, a sliding window of 8 (smallthinker's tiny layers 1-3), and decode steps
that cross the split kernel's chunks (ctx 300: 10 chunks of 32 positions, cuda_attention_chunk).
Bounds: logits vs the CPU within tests/test_cuda.py's TOL (2e-3 · max|logit| for f32; 2e-2 for int-dot
weights). The older attention kernel (EDGE_CUDA_FLASH=0) computes the same softmax in one piece; the new
kernels agree with it within 1e-4 · max|logit| on f32 weights (f32 rounding of the split exponentials only).
The tensor-core GEMM is bit-exact with the reference gemm (csrc/tests/test_cuda_gemv.cu checks that), so
forcing it on every step of more than one token (EDGE_CUDA_MMA_MIN_T=2) keeps the GPU within TOL and the
greedy tokens equal to the CPU's."""

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgeconv.export import export
from env_util import cuda_model
from greedy_path import assert_greedy_path
from models.tiny import make_tiny

GPU = _core.cuda_info()["available"]
pytestmark = pytest.mark.skipif(not GPU, reason="no CUDA GPU here")
TOL = {"f32": 2e-3, "q8": 2e-2, "int4": 2e-2}
MODELS = {"llama-d16": ("llama", {}), "qwen3-d24": ("qwen3", {}),
          "llama-d64": ("llama", dict(head_dim=64, max_position_embeddings=512)),
          "llama-d128": ("llama", dict(head_dim=128, num_attention_heads=2, num_key_value_heads=1,
                                       max_position_embeddings=512)),
          "smallthinker-w8": ("smallthinker", {})}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda_attn")
    cache = {}

    def get(name, recipe):
        if (name, recipe) not in cache:
            arch, kw = MODELS[name]
            folder = root / name
            if not folder.exists():
                make_tiny(arch, seed=7, dir=folder, **kw)
            cache[(name, recipe)] = str(root / f"{name}.{recipe}.edge")
            export(str(folder), cache[(name, recipe)], recipe=recipe)
        return cache[(name, recipe)]

    return get


def load(path, ctx=300, **env):
    """A GPU model created with the backend switches in env (read when the backend starts)."""
    return cuda_model(path, env, ctx=ctx)


def ids(n, seed=0, vocab=300):
    return [int(t) for t in np.random.default_rng(seed).integers(3, vocab, n)]


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("n", [1, 3, 8, 9, 17, 40, 130])
def test_prefill_attention_equals_cpu(files, name, n):
    path = files(name, "f32")
    toks = ids(n, seed=n)
    cpu = edgerun.Model(path, ctx=300, kv="f32").logits(toks)
    gpu = load(path).logits(toks)
    assert np.isfinite(gpu).all() and rel(gpu, cpu) <= TOL["f32"]
    old = load(path, EDGE_CUDA_FLASH=0).logits(toks)
    assert rel(gpu, old) <= 1e-4


@pytest.mark.parametrize("name", ["llama-d16", "qwen3-d24", "llama-d64", "smallthinker-w8"])
def test_decode_split_attention_across_chunks(files, name):
    """Prompt of 100, then one-token steps to position 160 (crossing two 32-position chunks), graph on."""
    path = files(name, "f32")
    toks = ids(161, seed=1)
    cpu, gpu, old = edgerun.Model(path, ctx=300, kv="f32"), load(path), load(path, EDGE_CUDA_FLASH=0)
    outs = []
    for m in (cpu, gpu, old):
        m.reset()
        steps = [m.eval(toks[:100])]
        steps += [m.eval([t]) for t in toks[100:]]
        outs.append(np.stack(steps))
    a_cpu, a_gpu, a_old = outs
    assert np.isfinite(a_gpu).all()
    for i in range(len(a_cpu)):
        assert rel(a_gpu[i], a_cpu[i]) <= TOL["f32"], i
        assert rel(a_gpu[i], a_old[i]) <= 1e-4, i


@pytest.mark.parametrize("recipe", ["q8", "int4"])
@pytest.mark.parametrize("name", ["llama-d16", "qwen3-d24", "smallthinker-w8"])
def test_tensor_core_prefill_equals_cpu(files, name, recipe):
    path = files(name, recipe)
    toks = ids(40, seed=3)
    cpu = edgerun.Model(path, ctx=300, kv="f32")
    mma, gemv = load(path, EDGE_CUDA_MMA_MIN_T=2), load(path, EDGE_CUDA_MMA=0)
    a, b, c = cpu.logits(toks), mma.logits(toks), gemv.logits(toks)
    assert rel(b, a) <= TOL[recipe] and rel(c, a) <= TOL[recipe]
    # greedy: the GPU's path is the CPU's up to near-ties (the CPU's SIMD sums differ from the reference's order)
    assert_greedy_path(cpu, mma, toks[:20], 12, 2 * TOL[recipe])


@pytest.mark.parametrize("arch,recipe", [("llama-d16", "q8"), ("llama-d64", "int4"), ("smallthinker-w8", "int4")])
def test_weights_read_in_place_equal_the_device_copy(files, arch, recipe):
    """EDGE_CUDA_MAPPED_WEIGHTS=1: the file's pages registered and read by the kernels in place (the stand-in for
    a unified-memory board, issue 9 §3). Same kernels on the same bytes: logits equal bit for bit; the plan counts
    the weights once, as host memory, instead of as a device copy."""
    path = files(arch, recipe)
    toks = ids(24, seed=5)
    copy, mapped = load(path), load(path, EDGE_CUDA_MAPPED_WEIGHTS=1)
    assert np.array_equal(copy.logits(toks), mapped.logits(toks))
    greedy = dict(max_tokens=8, temperature=0)
    assert list(copy.generate(toks[:6], **greedy)) == list(mapped.generate(toks[:6], **greedy))
    a, b = copy.memory_plan, mapped.memory_plan
    moved_to_host = b["resident"] - a["resident"]  # the non-expert tensors, now counted as the host mapping
    assert 0 < moved_to_host <= a["device"] - b["device"]  # the device copy (its byte range) is gone
    assert b["total"] + b["device"] <= a["total"] + a["device"]  # host + device (one pool on a unified board): once


@pytest.mark.parametrize("name", ["llama-d64", "smallthinker-w8"])
def test_split_combine_in_last_cta_equals_combine_launch(files, name):
    """The split-K decode attention's merge in the last CTA (default) is the combine kernel's arithmetic: the
    logits of one-token steps (replayed graphs, crossing the 32-position chunks at ctx 300) are bit-equal."""
    path = files(name, "f32")
    fused, separate = load(path), load(path, EDGE_CUDA_SPLIT_COMBINE=0)
    toks = ids(140, seed=11)
    assert np.array_equal(fused.eval(toks[:120]), separate.eval(toks[:120]))
    for t in toks[120:]:
        assert np.array_equal(fused.eval([t]), separate.eval([t]))
