"""Model(n_seq=N).eval_batch: several KV sequences stepped together (csrc/model.h) against single-sequence
eval of the same tokens. Tiny models of each family shape (dense llama q8 = int-dot, qwen3 f32 with q/k
norm, MoE smallthinker with a sliding window and NoPE layers, mixtral); the real SmolLM2 Q4_1 when present.

Bound: per column the step is eval()'s arithmetic (matmul columns are independent: int-dot dtypes
quantize each token's activations on their own, the gemm tile computes each output from its own row
and column; attention runs per token over its own sequence), so the logits are asserted EQUAL. A kernel
whose tile made a column depend on its neighbours would break this test, and the server's promise that a
seeded request gives `edgerun generate`'s text with it."""

import numpy as np
import pytest

from edgeconv.cli import main as edgeconv_main
from edgerun import EdgeError, Model
from models.tiny import make_tiny

CASES = [("llama", "q8"), ("qwen3", "f32"), ("smallthinker", "q8"), ("mixtral", "f32")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    cache = {}

    def get(arch, recipe):
        if (arch, recipe) not in cache:
            make_tiny(arch, seed=2, dir=root / arch)
            path = str(root / f"{arch}.{recipe}.edge")
            assert edgeconv_main(["export", str(root / arch), "-o", path, "--quant", recipe, "--quiet"]) in (0, None)
            cache[(arch, recipe)] = path
        return cache[(arch, recipe)]
    return get


def single(path, prompts, conts, **kw):
    """Per sequence: the logits after each continuation token, by single-sequence eval."""
    m = Model(path, threads=2, **kw)
    out = []
    for p, c in zip(prompts, conts):
        m.reset()
        m.eval(p)
        out.append(np.stack([m.eval([t]) for t in c]))
    return out


def batched(path, prompts, conts, **kw):
    """The same through one model of len(prompts) sequences: sequence 0's and 1's prompts in one step,
    sequence 2's alone, the last prompt read in the step where the others decode their first token,
    then every sequence decodes one token per step."""
    n = len(prompts)
    m = Model(path, threads=2, n_seq=n, **kw)
    assert m.n_seq == n
    m.eval_batch([0] * len(prompts[0]) + [1] * len(prompts[1]), prompts[0] + prompts[1])
    for s in range(2, n - 1):
        m.eval_batch([s] * len(prompts[s]), prompts[s])
    got = [[] for _ in range(n)]
    last = n - 1
    for step in range(len(conts[0])):
        seqs = list(range(last))
        toks = [conts[s][step] for s in range(last)]
        if step == 0:
            seqs, toks = seqs + [last] * len(prompts[last]), toks + prompts[last]
        else:
            seqs, toks = seqs + [last], toks + [conts[last][step - 1]]
        lg = m.eval_batch(seqs, toks)
        assert lg.shape == (n, m.vocab_size)
        for s in range(last):
            got[s].append(lg[s])
        if step:
            got[last].append(lg[last])
    got[last].append(m.eval_batch([last], [conts[last][-1]])[0])
    for s in range(n):
        assert m.seq_n_past(s) == len(prompts[s]) + len(conts[s])
    return [np.stack(g) for g in got]


@pytest.mark.parametrize("arch,recipe", CASES)
def test_batched_decode_equals_single_sequence_decode(tiny, arch, recipe):
    path = tiny(arch, recipe)
    rng = np.random.default_rng(7)
    V = Model(path).vocab_size
    prompts = [[int(t) for t in rng.integers(0, V, n)] for n in (5, 11, 3, 13)]  # 11, 13 > the tiny SWA window
    conts = [[int(t) for t in rng.integers(0, V, 6)] for _ in prompts]
    want = single(path, prompts, conts, ctx=64)
    got = batched(path, prompts, conts, ctx=64)
    for s, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(g, w), (arch, recipe, s, float(np.abs(g - w).max()))


def test_sequences_are_independent_and_truncate_per_sequence(tiny):
    path = tiny("llama", "q8")
    m = Model(path, threads=1, ctx=32, n_seq=3)
    one = Model(path, threads=1, ctx=32)
    want = one.eval([5, 6, 7])
    m.eval_batch([1, 1, 1], [9, 9, 9])         # another sequence's tokens change nothing of sequence 2
    got = m.eval_batch([2, 2, 2], [5, 6, 7])
    assert np.array_equal(got[0], want)
    m.seq_truncate(2, 1)                        # back to [5]: then 6, 7 again give the same logits
    assert m.seq_n_past(2) == 1 and m.seq_n_past(1) == 3
    assert np.array_equal(m.eval_batch([2, 2], [6, 7])[0], want)
    m.seq_truncate(1, 0)
    assert m.seq_n_past(1) == 0 and m.seq_n_past(2) == 3
    # sequence 0 is eval()'s
    assert np.array_equal(m.eval([5, 6, 7]), want) and m.seq_n_past(0) == 3 and m.n_past == 3


def test_plan_holds_one_kv_cache_per_sequence(tiny):
    path = tiny("llama", "q8")
    # kv="f32": the refusal below needs a KV cache larger than the layers that streaming would free
    p1 = Model(path, ctx=128, kv="f32").memory_plan
    p4 = Model(path, ctx=128, n_seq=4, kv="f32").memory_plan
    assert p4["kv_cache"] == 4 * p1["kv_cache"] and p4["scratch"] == p1["scratch"]
    names = {b["name"] for b in Model(path, ctx=128, n_seq=2)._m.memory_buffers}
    assert {"kv.0.k", "kv.0.v", "kv.0.k.s1", "kv.0.v.s1"} <= names
    budget = p1["resident"] + 2 * p1["kv_cache"] + p1["scratch"] + (p1["kv_cache"] // 2)
    Model(path, ctx=128, n_seq=2, mem=budget, kv="f32")
    with pytest.raises(EdgeError, match="KV cache"):  # a third sequence does not fit: refused at load
        Model(path, ctx=128, n_seq=3, mem=budget, kv="f32")


def test_eval_batch_rejects_bad_input_and_keeps_state(tiny):
    path = tiny("llama", "q8")
    m = Model(path, threads=1, ctx=8, batch=6, n_seq=2)
    m.eval_batch([0, 1], [3, 4])
    cases = [
        (([0, 1, 0], [1, 2, 3]), "not consecutive"),
        (([2], [1]), "not one of the 2 sequences"),
        (([-1], [1]), "not one of the 2 sequences"),
        (([0], [10 ** 6]), "outside the vocabulary"),
        (([0] * 7, [1] * 7), "more than the batch"),
        (([1] * 6 + [0], [1] * 7), "more than the batch"),
        (([0, 0], [1]), "sequence ids for"),
        (([], []), "no tokens"),
    ]
    for (seqs, toks), msg in cases:
        with pytest.raises(EdgeError, match=msg):
            m.eval_batch(seqs, toks)
    m.eval_batch([1] * 6, [1] * 6)
    with pytest.raises(EdgeError, match="context of sequence 1 is full"):  # 7 + 2 > ctx 8
        m.eval_batch([0, 1, 1], [1, 2, 3])
    assert m.seq_n_past(0) == 1 and m.seq_n_past(1) == 7  # nothing appended by a refused step
    with pytest.raises(EdgeError):
        m.seq_truncate(1, 8)
    with pytest.raises(EdgeError):
        m.seq_truncate(2, 0)
    with pytest.raises(EdgeError, match="n_seq"):
        Model(path, n_seq=0)


@pytest.mark.slow
def test_smollm2_batched_decode_equals_single_sequence_decode():
    from edgerun.defaults import default_model
    try:
        path = default_model(quiet=True)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    rng = np.random.default_rng(3)
    V = Model(path, ctx=64).vocab_size
    prompts = [[int(t) for t in rng.integers(0, V, n)] for n in (4, 9, 6)]
    conts = [[int(t) for t in rng.integers(0, V, 3)] for _ in prompts]
    for g, w in zip(batched(path, prompts, conts, ctx=64), single(path, prompts, conts, ctx=64)):
        assert np.array_equal(g, w), float(np.abs(g - w).max())
