"""The C++ runtime on mixture-of-experts models (docs/MOE.md): logits against the PyTorch reference
(models/moe) and Hugging Face transformers on tiny models of every MoE architecture, prefill against
token-by-token decode, sliding-window / NoPE layouts, experts streamed through a tiny cache against a
fully resident run (bit for bit), expert-cache statistics, the memory budget and corrupt expert blobs."""

import os
import re

import numpy as np
import pytest
import torch

import edgerun
from edgerun import _core
from edgeconv.cli import main as edgeconv_main
from edgeconv.format import EdgeFile, EdgeWriter
from models.edge_loader import load_edge_reference
from models.tiny import make_tiny

ARCHS = ["smallthinker", "qwen3moe", "mixtral", "olmoe"]
TOKENS = [1, 17, 33, 250, 7, 99, 3, 12, 200, 5, 64, 128, 31]  # 13 > the tiny SWA window (8)
TOL_FLOAT = 2e-4    # f32 weights: summation order only (as tests/test_runtime.py)
TOL_INT_DOT = 4e-2  # int-dot weights: block_q8x activations, ~0.5% per matmul (as tests/test_runtime.py)
PAGE = 4096


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny(arch, recipe="f32", **hf_overrides) -> (path of the exported .edge, HF model or None, reference
    over the file's dequantized weights). Built by models.tiny.make_tiny + `edgeconv export`, once each."""
    root = tmp_path_factory.mktemp("moe")
    cache = {}

    def get(arch, recipe="f32", **overrides):
        key = (arch, recipe, repr(sorted(overrides.items())))
        if key not in cache:
            folder = root / f"{arch}.{len(cache)}"
            hf, _, _ = make_tiny(arch, seed=1, dir=folder, **overrides)
            path = str(root / f"{arch}.{recipe}.{len(cache)}.edge")
            assert edgeconv_main(["export", str(folder), "-o", path, "--quant", recipe, "--quiet"]) in (0, None)
            cache[key] = (path, hf, load_edge_reference(path))
        return cache[key]

    return get


def rewrite(src, dst, meta=None, tensors=None):
    """Copies an .edge file with metadata keys replaced (`meta`) and tensors replaced or reshaped
    (`tensors`: name -> (dtype, shape, bytes)), for files the converter would never write."""
    with EdgeFile(src) as f:
        md = dict(f.metadata)
        md.update(meta or {})
        items = [(t.name, t.dtype, tuple(t.shape), f.raw(t.name).tobytes()) for t in f.tensors]
    items = [(n, *(tensors or {}).get(n, (d, sh, b))) for n, d, sh, b in items]
    with EdgeWriter(dst, alignment=PAGE, bits_per_weight_key=None) as w:
        for k, v in md.items():
            w.add_metadata(k, v)
        for n, d, sh, _ in items:
            w.declare(n, d, sh)
        w.begin()
        for n, _, _, b in items:
            w.write_tensor(n, b)
    return str(dst)


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def ref_logits(ref, tokens=TOKENS):
    return ref.logits(torch.tensor(tokens)).numpy()


def decisive_tokens(ref, n=8, margin=0.05, tries=100):
    """A token sequence whose routing is decisive in every MoE layer of the reference: for each token the
    k-th largest router logit beats the (k+1)-th by `margin` × the std of that layer's logits.
    Quantized activations move router logits by about 1-2% of their scale, which can swap near-tied
    experts; such a token then takes other experts than the reference, and through attention later
    tokens differ by far more than the quantization error. Comparing quantized runs is meaningful only
    away from ties. Built token by token (causal: a new token never changes earlier routing), seeded."""
    rng = np.random.default_rng(0)
    k = ref.shape.n_experts_used
    tokens: list[int] = []
    while len(tokens) < n:
        for _ in range(tries):
            cand = tokens + [int(rng.integers(0, ref.shape.llm.vocab_size))]
            tr = {}
            ref.logits(torch.tensor(cand), trace=tr)
            lgs = [lg.numpy() for name, lg in tr.items() if name.endswith("router_logits")]
            if all(np.diff(np.sort(lg[-1])[-k - 1:-k + 1 or None])[0] >= margin * lg.std() for lg in lgs):
                tokens = cand
                break
        else:
            pytest.fail("no token with decisive routing found")
    return tokens


# ---- numerics --------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_f32_matches_reference_and_transformers(tiny, arch):
    path, hf, ref = tiny(arch)
    m = edgerun.Model(path, threads=2, kv="f32")
    assert m.is_moe and m.config["n_experts"] == 8
    got = m.logits(TOKENS)
    assert got.shape == (len(TOKENS), m.vocab_size)
    assert rel_err(got, ref_logits(ref)) < TOL_FLOAT
    if hf is not None:  # SmallThinker has no transformers class
        with torch.no_grad():
            want = hf(torch.tensor([TOKENS])).logits[0].numpy()
        assert rel_err(got, want) < TOL_FLOAT


@pytest.mark.parametrize("recipe", ["q8", "int4"])
@pytest.mark.parametrize("arch", ARCHS)
def test_quantized_matches_reference(tiny, arch, recipe):
    path, _, ref = tiny(arch, recipe)
    tokens = decisive_tokens(ref)
    got = edgerun.Model(path, threads=2).logits(tokens)
    assert rel_err(got, ref_logits(ref, tokens)) < TOL_INT_DOT


def test_mixtral_sliding_window_matches_transformers(tiny):
    path, hf, ref = tiny("mixtral", sliding_window=5)
    assert edgerun.Model(path).metadata("llm.swa_window") == 5
    got = edgerun.Model(path, threads=2, kv="f32").logits(TOKENS)
    with torch.no_grad():
        want = hf(torch.tensor([TOKENS])).logits[0].numpy()
    assert rel_err(got, want) < TOL_FLOAT
    assert rel_err(got, ref_logits(ref)) < TOL_FLOAT
    # the window matters here: the same weights without it give other logits
    full_path, _, _ = tiny("mixtral")
    assert rel_err(edgerun.Model(full_path).logits(TOKENS)[-1], got[-1]) > 1e-2


def test_smallthinker_nope_and_window_layers_matter(tiny):
    """Layer 0 is NoPE + full attention, layers 1-3 RoPE + window 8: changing either layout changes the
    logits of the tokens past the window, and the runtime follows the reference in each case."""
    base, _, ref = tiny("smallthinker")
    for layout in [dict(rope_layout=[1, 1, 1, 1]), dict(sliding_window_layout=[0, 0, 0, 0])]:
        path, _, ref2 = tiny("smallthinker", **layout)
        got = edgerun.Model(path, kv="f32").logits(TOKENS)
        assert rel_err(got, ref_logits(ref2)) < TOL_FLOAT
        assert rel_err(got[-1], edgerun.Model(base, kv="f32").logits(TOKENS)[-1]) > 1e-3


@pytest.mark.parametrize("arch", ["smallthinker", "qwen3moe"])
def test_prefill_equals_token_by_token(tiny, arch):
    path, _, _ = tiny(arch, "q8")
    m = edgerun.Model(path, threads=2, batch=4)  # batch 4: chunked prefill with several experts per chunk
    full = m.logits(TOKENS)
    m.reset()
    m.eval(TOKENS[:5])
    steps = [m.eval([t]) for t in TOKENS[5:]]
    np.testing.assert_allclose(np.stack(steps), full[5:], rtol=0, atol=1e-3 * np.abs(full).max())


def test_threads_do_not_change_results(tiny):
    path, _, _ = tiny("olmoe", "int4")
    np.testing.assert_array_equal(edgerun.Model(path, threads=1).logits(TOKENS),
                                  edgerun.Model(path, threads=2).logits(TOKENS))


# ---- streaming, statistics, budget -----------------------------------------------------------------

def _decode(m, tokens):
    m.reset()
    return np.stack([m.eval([t]) for t in tokens])


@pytest.mark.parametrize("arch,recipe", [("smallthinker", "int4"), ("qwen3moe", "q8"), ("mixtral", "f32")])
def test_streamed_under_tiny_budget_equals_resident(tiny, arch, recipe):
    path, _, _ = tiny(arch, recipe)
    resident = edgerun.Model(path, threads=2, ctx=64)
    plan = resident.memory_plan
    n_units = resident.config["moe_layers"] * resident.config["n_experts"]
    assert plan["expert_slots"] >= n_units  # no budget: every expert fits
    k = resident.config["n_experts_used"]
    fixed = plan["resident"] + plan["kv_cache"] + plan["scratch"] + plan["io_buffers"]
    budget = fixed + (k + 1) * plan["slot_bytes"]
    streamed = edgerun.Model(path, threads=2, ctx=64, mem=budget)
    sp = streamed.memory_plan
    assert sp["expert_slots"] == k + 1 and sp["total"] <= budget
    np.testing.assert_array_equal(streamed.logits(TOKENS), resident.logits(TOKENS))
    np.testing.assert_array_equal(_decode(streamed, TOKENS), _decode(resident, TOKENS))
    s, r = streamed.moe_stats, resident.moe_stats
    assert s["evictions"] > 0 and s["misses"] > r["misses"]
    assert r["evictions"] == 0


def test_stats_are_consistent(tiny):
    path, _, ref = tiny("smallthinker", "q8")
    m = edgerun.Model(path, threads=2)
    m.moe_reset_stats()
    _decode(m, TOKENS)
    s = m.moe_stats
    cfg = m.config
    acquires = len(TOKENS) * cfg["moe_layers"] * cfg["n_experts_used"]  # one token per step: k distinct experts
    assert s["hits"] + s["misses"] == acquires
    assert s["true_total"] == acquires
    assert s["recall"] == 1.0  # SmallThinker's predictor is its own router (it reads the layer input)
    assert 0 < s["hit_rate"] <= 1 and s["bytes_read"] > 0 and s["reads"] >= s["misses"]
    m.moe_reset_stats()
    assert m.moe_stats["hits"] == 0 and m.moe_stats["recall"] is None


def test_linear_predictor_recall_is_measured(tiny):
    path, _, _ = tiny("qwen3moe", "f32")  # router reads ffn_norm: the linear predictor guesses before attention
    m = edgerun.Model(path, threads=2)
    _decode(m, TOKENS)
    s = m.moe_stats
    assert s["true_total"] == len(TOKENS) * 2 * 2  # 2 MoE layers, k = 2
    assert 0.0 <= s["recall"] <= 1.0 and s["predicted_true"] > 0


def test_memory_plan_and_too_small_budget(tiny):
    path, _, _ = tiny("olmoe", "int4")
    m = edgerun.Model(path, ctx=64)
    p = m.memory_plan
    assert p["total"] == p["resident"] + p["kv_cache"] + p["scratch"] + p["io_buffers"] + p["expert_cache"]
    assert p["expert_cache"] == p["expert_slots"] * p["slot_bytes"] > 0
    blobs = sum(t["nbytes"] for t in _core.file_info(path)["tensors"] if t["dtype"] == "blob")
    assert p["resident"] == os.path.getsize(path) - blobs - _gaps(path)
    fixed = p["total"] - p["expert_cache"]
    with pytest.raises(edgerun.MemoryBudgetError, match="expert slots.*missing"):
        edgerun.Model(path, ctx=64, mem=fixed + p["slot_bytes"])  # k = 2 slots are needed
    with pytest.raises(edgerun.MemoryBudgetError, match="MiB missing"):
        edgerun.Model(path, ctx=64, mem=p["resident"])


def _gaps(path):
    """Header, metadata, table and alignment padding: file bytes that are not tensor data."""
    ts = _core.file_info(path)["tensors"]
    return os.path.getsize(path) - sum(t["nbytes"] for t in ts)


def test_corrupt_expert_blob_fails_eval_cleanly(tiny, tmp_path):
    src, _, _ = tiny("smallthinker", "int4")
    data = bytearray(open(src, "rb").read())
    t = next(t for t in _core.file_info(src)["tensors"] if t["name"] == "blk.2.exp.3.planes4")
    data[t["offset"]:t["offset"] + 2] = b"\x00\x7e"  # the first f16 scale becomes NaN
    bad = tmp_path / "bad.edge"
    bad.write_bytes(bytes(data))
    m = edgerun.Model(str(bad), threads=2)
    good = edgerun.Model(src, threads=2)
    errors, ok = [], []
    for tok in range(12):  # tokens that route to layer 2's expert 3 fail; the others run
        m.reset()
        try:
            ok.append((tok, m.eval([tok])))
        except edgerun.BadFileError as e:
            errors.append(str(e))
            assert m.n_past == 0  # the failing token was not appended
    assert errors and ok
    assert all("layer 2" in e and "expert 3" in e and re.search(r"offset \d+", e) for e in errors)
    for tok, got in ok:  # the failures left nothing behind: the same logits as the intact file
        good.reset()
        np.testing.assert_array_equal(got, good.eval([tok]))


def test_unsupported_and_bad_moe_files(tiny, tmp_path):
    path, _, _ = tiny("mixtral")
    assert edgerun.Model(rewrite(path, tmp_path / "ok.edge")).logits(TOKENS[:2]).shape == (2, 320)  # the copy is valid
    cases = [
        # the name alone no longer decides (layout keys do): a family needing a layout feature the runtime
        # lacks declares it (here MLA attention) and is refused, naming the family and the key
        ({"general.architecture": "deepseek2", "llm.attn": "mla"}, None, edgerun.UnsupportedError, "deepseek2"),
        ({"moe.gating": "sparsemixer"}, None, edgerun.UnsupportedError, "moe.gating"),
        ({"moe.predictor": "router"}, None, edgerun.UnsupportedError, "router_input"),  # router reads ffn_norm
        ({"moe.layers": [1, 1, 1]}, None, edgerun.BadFileError, "moe.layers"),
        ({"moe.n_experts_used": 9}, None, edgerun.BadFileError, "n_experts_used"),
        ({"llm.swa_layers": [0, 2]}, None, edgerun.BadFileError, "swa_layers"),
        ({"llm.qk_norm_scope": "row"}, None, edgerun.UnsupportedError, "qk_norm_scope"),
        (None, {"blk.1.ffn_router": ("f32", (7, 64), bytes(7 * 64 * 4))}, edgerun.BadFileError, r"blk\.1\.ffn_router.*\[8, 64\]"),
        (None, {"blk.0.ffn_router": ("f16", (8, 64), bytes(8 * 64 * 2))}, edgerun.BadFileError, "must be f32"),
    ]
    for i, (meta, tensors, err, msg) in enumerate(cases):
        bad = rewrite(path, tmp_path / f"bad{i}.edge", meta, tensors)
        with pytest.raises(err, match=msg):
            edgerun.Model(bad)


def test_lowbit_serving_under_a_budget(tiny):
    """--moe-lowbit miss: cold experts of low routing weight are read as their 2-bit prefix (planes4_msb):
    counted, and the logits move away from the int4 run (by less than a different model would)."""
    path, _, _ = tiny("olmoe", "int4")
    resident = edgerun.Model(path, threads=2, ctx=64)
    p = resident.memory_plan
    budget = p["total"] - p["expert_cache"] + 3 * p["slot_bytes"]
    low = edgerun.Model(path, threads=2, ctx=64, mem=budget, moe_lowbit="miss", moe_lowbit_threshold=1.0)
    got, want = _decode(low, TOKENS), _decode(resident, TOKENS)
    assert low.moe_stats["lowbit_serves"] > 0 and resident.moe_stats["lowbit_serves"] == 0
    assert 1e-3 < rel_err(got, want) < 0.5
    with pytest.raises(ValueError, match="moe_lowbit"):
        edgerun.Model(path, moe_lowbit="always")
    with pytest.raises(ValueError, match="policy"):
        edgerun.Model(path, cache_policy="fifo")


def test_lowbit_with_router_predictor_is_decided_at_prefetch(tiny):
    """SmallThinker predicts with its own router (recall 1.0): every expert is prefetched before attention,
    so no miss reaches acquire; the true routing weights go with the prefetch and a light expert is read
    as its 2-bit prefix right away (not in int4 first). With moe_lowbit off: identical to resident."""
    path, _, _ = tiny("smallthinker", "int4")
    resident = edgerun.Model(path, threads=2, ctx=64)
    p = resident.memory_plan
    budget = p["total"] - p["expert_cache"] + 3 * p["slot_bytes"]
    want = _decode(resident, TOKENS)
    # norm_topk with k = 2: the lighter expert of a token weighs < 0.5; 0.45 catches a few of them
    low = edgerun.Model(path, threads=2, ctx=64, mem=budget, moe_lowbit="miss", moe_lowbit_threshold=0.45)
    got = _decode(low, TOKENS)
    s, cfg = low.moe_stats, low.config
    assert s["lowbit_serves"] > 0 and s["recall"] == 1.0
    assert s["hits"] + s["misses"] == len(TOKENS) * cfg["moe_layers"] * cfg["n_experts_used"]
    assert s["reads"] == s["prefetch_issued"] and s["retries"] == 0  # an expert prefetched low is never re-read in int4
    assert np.isfinite(got).all()
    assert 1e-3 < rel_err(got, want) < 0.5
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cos.min() > 0.9, cos
    off = edgerun.Model(path, threads=2, ctx=64, mem=budget, moe_lowbit="off", moe_lowbit_threshold=0.45)
    np.testing.assert_array_equal(_decode(off, TOKENS), want)
    np.testing.assert_array_equal(off.logits(TOKENS), resident.logits(TOKENS))
    assert off.moe_stats["lowbit_serves"] == 0


def test_cli_bench_json_and_chat_stats(tiny, capsys, monkeypatch):
    import io
    import json
    from edgerun.cli import main as edgerun_main
    path, _, _ = tiny("smallthinker", "int4")
    # The CLI's --mem covers the whole process (this pytest process included): budget what it holds now,
    # the model's fixed terms and a few expert slots (the streaming itself is tested with mem_scope="model").
    p = edgerun.Model(path, mem=10**12, mem_scope="process").memory_plan
    budget = (p["process"] + p["resident"] + p["kv_cache"] + p["scratch"] + p["io_buffers"] + 3 * p["slot_bytes"]
              + (8 << 20))
    assert edgerun_main(["bench", path, "--json", "--prompt-tokens", "8", "--gen-tokens", "4", "--repeat", "1",
                         "--mem", str(budget), "--cache-policy", "lru", "--io-threads", "1"]) == 0
    out = capsys.readouterr().out
    res = json.loads(out[out.index("{"):])
    mem, moe = res["memory"], res["moe"]
    assert {"resident", "kv_cache", "scratch", "io_buffers", "expert_cache", "process", "total", "budget"} <= set(mem)
    assert mem["total"] <= mem["budget"] == budget and mem["process"] > 0 and res["peak_rss_mb"] > 0
    assert moe["hits"] + moe["misses"] > 0 and moe["recall"] == 1.0 and moe["cache_policy"] == "lru"
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/exit\n"))
    assert edgerun_main(["chat", path, "--temp", "0", "--max-tokens", "4", "--stats", "--mem", str(budget)]) == 0
    err = capsys.readouterr().err
    assert "tok/s" in err and "hit rate" in err and "recall" in err and "MB read" in err and "I/O stall" in err


# ---- dense models over the budget: layers streamed through a window (csrc/layer_stream.h) ----------

def test_dense_model_over_budget_streams_layers(tmp_path):
    folder = tmp_path / "llama"
    make_tiny("llama", seed=2, dir=folder, num_hidden_layers=4)
    path = str(tmp_path / "llama.q8.edge")
    assert edgeconv_main(["export", str(folder), "-o", path, "--quant", "q8", "--quiet"]) in (0, None)
    full = edgerun.Model(path, threads=2, ctx=64)
    p = full.memory_plan
    assert p["layer_window"] == 0 and full.layer_stream_stats is None
    blk = sum(t["nbytes"] for t in _core.file_info(path)["tensors"] if t["name"].startswith("blk."))
    outside = p["resident"] - blk
    fixed = outside + p["kv_cache"] + p["scratch"]
    layer = blk // 4
    streamed = edgerun.Model(path, threads=2, ctx=64, mem=fixed + 2 * layer + 4 * PAGE)  # room for 2 buffers
    sp = streamed.memory_plan
    assert sp["layer_window"] == 2 and sp["resident"] == outside and sp["total"] <= fixed + 2 * layer + 4 * PAGE
    assert sp["io_buffers"] >= 2 * layer
    np.testing.assert_array_equal(streamed.logits(TOKENS), full.logits(TOKENS))
    np.testing.assert_array_equal(_decode(streamed, TOKENS[:4]), _decode(full, TOKENS[:4]))
    s = streamed.layer_stream_stats
    assert s["reads"] >= 4 and s["bytes_read"] >= blk
    with pytest.raises(edgerun.MemoryBudgetError, match="streaming its layers does not fit"):
        edgerun.Model(path, ctx=64, mem=fixed + layer // 2)
