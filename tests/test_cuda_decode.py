"""The CUDA decode step (issue 9 §2): one-token steps recorded as a CUDA graph and replayed, the embedding
read on the device, and the sampler on the GPU (only the token id comes back). Skipped without a GPU.

The reference for each is the same model on the same GPU with the feature off, by the backend's switches:
EDGE_CUDA_GRAPH=0 issues the recorded ops eagerly, EDGE_CUDA_SAMPLER=0 samples on the host from the
downloaded logits (csrc/sampler.cpp). A graph replays the eager kernels, so logits are equal bit for bit;
the GPU sampler runs the host chain with the host's draws, so tokens are equal — but where CUDA's expf
and libm's differ in the last bit right at a draw's boundary (chance ~1e-6 per token here)."""

import numpy as np
import pytest

import edgerun
from edgerun import _core
from edgeconv.export import export
from edgerun.model import SamplingParams
from env_util import INT4G_EXPORT, cuda_model
from models.tiny import make_tiny

GPU = _core.cuda_info()["available"]
pytestmark = pytest.mark.skipif(not GPU, reason="no CUDA GPU here")
PROMPT = [1, 17, 33, 250, 7, 99, 3, 12]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda_decode")
    out = {}
    for arch, kw in (("llama", {}), ("qwen3", {}), ("llama-v5000", dict(vocab_size=5000, tie_word_embeddings=True))):
        folder = root / arch
        make_tiny(arch.split("-")[0], seed=5, dir=folder, **kw)
        # nl4: the default int4 file's embedding / head form everywhere; int4g: the default int4 export (env_util)
        for recipe in ("f32", "q8", "int4", "nl4", "int4g"):
            out[(arch, recipe)] = str(root / f"{arch}.{recipe}.edge")
            export(str(folder), out[(arch, recipe)], **(INT4G_EXPORT if recipe == "int4g" else dict(recipe=recipe)))
    return out


def load(path, graph=True, sampler=True, fuse=True, pipeline=True, rope_attn=True):
    env = {"EDGE_CUDA_GRAPH": "1" if graph else "0", "EDGE_CUDA_SAMPLER": "1" if sampler else "0",
           "EDGE_CUDA_FUSE": "1" if fuse else "0", "EDGE_CUDA_PIPELINE": "1" if pipeline else "0",
           "EDGE_CUDA_ROPE_ATTN": "1" if rope_attn else "0"}
    return cuda_model(path, env, ctx=256)


def decode_logits(m, tokens=None, n=24):
    """Prompt, then n one-token steps feeding the argmax (or the given tokens): the logits of every step."""
    m.reset()
    out = [m.eval(PROMPT)]
    for i in range(n):
        out.append(m.eval([int(np.argmax(out[-1])) if tokens is None else tokens[i]]))
    return np.stack(out)


TOL = {"f32": 2e-3, "q8": 2e-2, "int4": 2e-2, "nl4": 2e-2, "int4g": 2e-2}  # tests/test_cuda.py's GPU-vs-CPU bounds


@pytest.mark.parametrize("recipe", ["f32", "q8", "int4", "nl4", "int4g"])
@pytest.mark.parametrize("arch", ["llama", "qwen3", "llama-v5000"])
def test_graph_decode_equals_eager(files, arch, recipe):
    path = files[(arch, recipe)]
    g = load(path, graph=True)
    assert g._m.device_steps  # every embedding dtype here is read on the device (cuda_step.cu embed_step)
    a, b = decode_logits(g), decode_logits(load(path, graph=False))
    assert np.array_equal(a, b)  # same kernels, same bits
    fed = [int(t) for t in a.argmax(1)[:-1]]
    cpu = decode_logits(edgerun.Model(path, kv="f32"), tokens=fed)  # the CPU on the GPU's tokens
    assert float(np.abs(a - cpu).max() / np.abs(cpu).max()) <= TOL[recipe]


@pytest.mark.parametrize("recipe", ["q8", "int4", "nl4", "int4g"])  # int4g: gate int4_64, up nl4_32
@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_fused_decode_equals_unfused(files, arch, recipe):
    """The fused one-token GEMV (norm / act·mul / quantize inside it, q/k/v and gate/up in one launch, the residual
    in its epilogue: cuda_fused.cu) and RoPE + K/V append inside the split-K attention (cuda_attention.cu) compute the
    unfused ops' bits (EDGE_CUDA_FUSE=0; EDGE_CUDA_ROPE_ATTN=0 for the attention alone), graph and eager alike."""
    path = files[(arch, recipe)]
    fused = decode_logits(load(path))
    assert np.array_equal(fused, decode_logits(load(path, fuse=False)))
    assert np.array_equal(fused, decode_logits(load(path, rope_attn=False)))
    assert np.array_equal(fused, decode_logits(load(path, graph=False)))


@pytest.mark.parametrize("arch", ["llama", "llama-v5000"])
@pytest.mark.parametrize("params", [dict(temperature=0), dict(temperature=0.8),
                                    dict(temperature=1.3, top_k=5, top_p=0.9, min_p=0.0, repeat_penalty=1.2),
                                    dict(temperature=0.7, top_k=64, top_p=1.0, min_p=0.1, repeat_penalty=0.9)])
def test_gpu_sampler_equals_host_sampler(files, arch, params):
    path = files[(arch, "q8")]
    gpu, host = load(path), load(path, sampler=False)
    seqs = set()
    for seed in range(4):
        kw = dict(params, seed=seed, max_tokens=40, stop_ids=[])
        a, b = [], []
        list(gpu.generate(PROMPT, tokens_out=a, **kw))
        list(host.generate(PROMPT, tokens_out=b, **kw))
        assert a == b, (seed, a, b)
        seqs.add(tuple(a))
    if params["temperature"] > 0:
        assert len(seqs) > 1  # the seeds drew different sequences: really sampled


def test_gpu_sampler_distribution(files):
    """Many seeded draws of the first token: the GPU's frequencies follow the host chain's probabilities."""
    path = files[("llama-v5000", "f32")]
    gpu = load(path)
    counts = {}
    n = 300
    for seed in range(n):
        out = []
        list(gpu.generate(PROMPT, max_tokens=1, temperature=1.0, top_k=40, top_p=0.95, min_p=0.0, seed=seed,
                          stop_ids=[], tokens_out=out))
        counts[out[0]] = counts.get(out[0], 0) + 1
    logits = edgerun.Model(path, kv="f32").logits(PROMPT)[-1].astype(np.float64)
    order = np.argsort(-logits, kind="stable")[:40]
    p = np.exp(logits[order] - logits[order[0]])
    p /= p.sum()
    keep = int(np.searchsorted(np.cumsum(p), 0.95) + 1)
    p = p[:keep] / p[:keep].sum()
    assert set(counts) <= set(int(t) for t in order[:keep + 1])  # + 1: the f32 vs f64 top-p boundary
    top = int(order[0])
    assert abs(counts.get(top, 0) / n - p[0]) < 4 * np.sqrt(p[0] * (1 - p[0]) / n) + 0.02


def gen(m, prompt, **kw):
    out = []
    text = "".join(m.generate(prompt, tokens_out=out, **kw))
    return out, text, m.n_past


@pytest.mark.parametrize("recipe", ["q8", "int4"])
def test_pipelined_generate_equals_synchronous(files, recipe):
    """generate() launches the next step before handing out a token (EDGE_CUDA_PIPELINE, Model.eval_sample_launch):
    the same tokens, text and n_past as one step at a time, greedy and sampled; stopping at a stop id (the step
    launched past it is undone), at max_tokens 1..3, at the end of the context, after an early close of the
    generator; and a later turn that reuses the cached prefix gives the same tokens too."""
    path = files[("llama", recipe)]
    a, b = load(path), load(path, pipeline=False)
    assert a._m.pipelined(SamplingParams(0.0).make()) and not b._m.pipelined(SamplingParams(0.0).make())
    assert not a._m.pipelined(SamplingParams(0.8, repeat_penalty=1.1).make())  # the penalty needs the token
    for kw in (dict(temperature=0), dict(temperature=0.9, seed=3), dict(temperature=0.9, repeat_penalty=1.2, seed=1)):
        ref, _, _ = gen(b, PROMPT, max_tokens=40, **kw)
        for m in (a, b):
            m.reset()
        assert gen(a, PROMPT, max_tokens=40, **kw) == gen(b, PROMPT, max_tokens=40, **kw)
        stop = ref[len(ref) // 2]  # a stop id met mid-way
        assert gen(a, PROMPT, max_tokens=40, stop_ids=[stop], **kw) == gen(b, PROMPT, max_tokens=40, stop_ids=[stop], **kw)
        for n in (1, 2, 3):
            assert gen(a, PROMPT, max_tokens=n, **kw) == gen(b, PROMPT, max_tokens=n, **kw)
        # the next turn: the conversation so far plus new tokens (prefix reuse of what the cache holds)
        turn = PROMPT + ref[:5] + [5, 6, 7]
        assert gen(a, turn, max_tokens=12, **kw) == gen(b, turn, max_tokens=12, **kw)
    # the end of the context (ctx 256): the steps launched near it
    long = PROMPT * 30
    assert gen(a, long, max_tokens=64, temperature=0) == gen(b, long, max_tokens=64, temperature=0)
    assert a.n_past <= 256
    # an early close: what the cache holds is what was committed, and the next call agrees
    for m in (a, b):
        m.reset()
        it = m.generate(PROMPT, max_tokens=30, temperature=0)
        for _ in range(3):
            next(it)
        it.close()
    assert a.n_past == b.n_past
    assert gen(a, PROMPT + [9], max_tokens=10, temperature=0) == gen(b, PROMPT + [9], max_tokens=10, temperature=0)
