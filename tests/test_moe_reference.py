"""models/moe: the MoE reference against transformers (Qwen3-MoE, Mixtral, OLMoE) on tiny random models, and
SmallThinker's semantics (no transformers class) pinned one property at a time.

Tolerance vs transformers float32: 1e-5 · max|logits| as for the dense reference (both compute the same
float32 ops in a different order; measured: 0 on these models). Routing makes a wrong detail visible at
once: a different expert or weight moves the logits by O(1), far above the tolerance.
"""

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from models.hf_names import (convert_moe_state_dict, hf_config_to_llm, hf_config_to_moe,  # noqa: E402
                             hf_config_to_ours, moe_hf_to_ours, moe_ours_to_hf)
from models.moe import MoeReference, route                                               # noqa: E402
from models.moe.hf_folder import load_hf_folder                                          # noqa: E402
from models.tiny import make_tiny                                                        # noqa: E402

CASES = {
    "qwen3moe": ("qwen3moe", {}),                                   # norm_topk on, layer 1 dense
    "qwen3moe_nonorm": ("qwen3moe", {"norm_topk_prob": False}),
    "mixtral": ("mixtral", {}),
    "mixtral_swa": ("mixtral", {"sliding_window": 5}),
    "olmoe": ("olmoe", {}),                                         # norm_topk off
    "olmoe_norm": ("olmoe", {"norm_topk_prob": True}),
    "smallthinker": ("smallthinker", {}),                           # NoPE+full layer 0, RoPE+SWA(8) 1-3
    "smallthinker_softmax": ("smallthinker", {"moe_primary_router_apply_softmax": True}),
}
HF_CASES = [c for c in CASES if not c.startswith("smallthinker")]
_built: dict = {}


def tiny(case):
    if case not in _built:
        arch, overrides = CASES[case]
        _built[case] = make_tiny(arch, seed=7, **overrides)
    return _built[case]


def prompt(vocab, n=11, seed=3):
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed))


def hf_logits(model, tokens):
    with torch.no_grad():
        return model(tokens[None]).logits[0]


def err_rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max()) / float(b.abs().max())


def close(a, b, rel):
    e = err_rel(a, b)
    assert e <= rel, f"max abs diff {e:.3g} x scale > {rel:g} x scale"


def test_cases_cover_the_features():
    c = {k: tiny(k)[1] for k in CASES}
    assert c["qwen3moe"]["moe.layers"] == [1, 0, 1] and c["qwen3moe"]["llm.d_ff"] == 96
    assert c["qwen3moe"]["moe.norm_topk"] == 1 and c["qwen3moe_nonorm"]["moe.norm_topk"] == 0
    assert c["qwen3moe"]["llm.qk_norm_scope"] == "head" and c["olmoe"]["llm.qk_norm_scope"] == "full"
    assert c["olmoe"]["moe.norm_topk"] == 0 and c["olmoe_norm"]["moe.norm_topk"] == 1
    assert c["mixtral"]["llm.swa_layers"] == [0, 0]
    assert c["mixtral_swa"]["llm.swa_layers"] == [1, 1] and c["mixtral_swa"]["llm.swa_window"] == 5
    st = c["smallthinker"]
    assert (st["moe.gating"], st["moe.act"], st["moe.router_input"]) == ("sigmoid", "relu", "residual")
    assert st["llm.rope_layers"] == [0, 1, 1, 1] and st["llm.swa_layers"] == [0, 1, 1, 1]
    assert st["llm.swa_window"] == 8 and c["smallthinker_softmax"]["moe.gating"] == "softmax"
    for k in CASES:
        assert (c[k]["moe.n_experts"], c[k]["moe.n_experts_used"], c[k]["moe.d_expert"]) == (8, 2, 32)


@pytest.mark.parametrize("case", HF_CASES)
def test_logits_match_transformers(case):
    hf, cfg, w = tiny(case)
    toks = prompt(cfg["llm.vocab_size"])
    m = MoeReference(cfg, w)
    ours, theirs = m.logits(toks), hf_logits(hf, toks)
    assert ours.dtype == torch.float32 and ours.shape == (len(toks), cfg["llm.vocab_size"])
    assert float(theirs.std()) > 1.0, "logits nearly flat: the tiny model's init is too small"
    close(ours, theirs, 1e-5)
    # routing is not degenerate: the tokens spread over most experts in every MoE layer
    for r in m.routing(toks):
        assert len(set(r.experts.flatten().tolist())) >= 5, f"layer {r.layer} uses few experts"


@pytest.mark.parametrize("case,key", [("qwen3moe", "moe.norm_topk"), ("olmoe", "moe.norm_topk"),
                                      ("mixtral_swa", "llm.swa_layers"), ("olmoe", "llm.qk_norm_scope"),
                                      ("mixtral", "moe.router_input")])
def test_each_key_matters(case, key):
    """The comparisons above can fail: flipping one key moves the logits far outside the tolerance."""
    hf, cfg, w = tiny(case)
    toks = prompt(cfg["llm.vocab_size"])
    flipped = {"moe.norm_topk": lambda v: 1 - v, "llm.swa_layers": lambda v: [0] * len(v),
               "llm.qk_norm_scope": lambda v: "head", "moe.router_input": lambda v: "residual"}[key]
    cfg2 = dict(cfg, **{key: flipped(cfg[key])})
    if key == "llm.qk_norm_scope":       # per-head weights: take the first head_dim entries
        w = {n: (a[:cfg["llm.head_dim"]] if n.endswith(("q_norm", "k_norm")) else a) for n, a in w.items()}
    assert err_rel(MoeReference(cfg2, w).logits(toks), hf_logits(hf, toks)) > 1e-2


@pytest.mark.parametrize("case", list(CASES))
def test_prefill_then_decode_equals_full_forward(case):
    _, cfg, w = tiny(case)
    m = MoeReference(cfg, w)
    toks = prompt(cfg["llm.vocab_size"], n=14)     # > the SmallThinker window (8) and Mixtral's (5)
    full = m.logits(toks)
    cache = m.new_cache()
    parts = [m.logits(toks[:6], 0, cache), m.logits(toks[6:10], 6, cache)]
    for pos in range(10, 14):
        parts.append(m.step(int(toks[pos]), pos, cache)[None])
    assert cache.n == 14 and cache.k[0].shape == (cfg["llm.n_kv_heads"], 14, cfg["llm.head_dim"])
    close(torch.cat(parts), full, 2e-6)


@pytest.mark.parametrize("case", ["qwen3moe", "mixtral_swa", "olmoe"])
def test_greedy_matches_generate(case):
    hf, cfg, w = tiny(case)
    toks = prompt(cfg["llm.vocab_size"], n=6, seed=11)
    with torch.no_grad():
        out = hf.generate(toks[None], max_new_tokens=8, do_sample=False, eos_token_id=None,
                          pad_token_id=0)[0, len(toks):].tolist()
    ours = MoeReference(cfg, w).greedy(toks, 8)
    assert ours == out and len(set(ours)) > 1


def test_float64_agrees_with_float32():
    _, cfg, w = tiny("smallthinker")
    toks = prompt(cfg["llm.vocab_size"])
    a = MoeReference(cfg, w, dtype=torch.float64).logits(toks)
    assert a.dtype == torch.float64
    close(MoeReference(cfg, w).logits(toks), a, 1e-5)


# ---------------------------------------------------------------------------------------------
# routing, by hand


def test_route_by_hand():
    l = torch.tensor([[0.5, 2.0, -1.0, 2.0, 1.5]])
    s = lambda v: 1 / (1 + math.exp(-v))                                  # noqa: E731
    idx, w = route(l, 3, "sigmoid", True)
    assert idx.tolist() == [[1, 3, 4]]                                    # tie 2.0/2.0: lower index first
    tot = 2 * s(2.0) + s(1.5)
    assert torch.allclose(w, torch.tensor([[s(2.0) / tot, s(2.0) / tot, s(1.5) / tot]]), atol=1e-7)
    idx, w = route(l, 3, "sigmoid", False)
    assert torch.allclose(w, torch.tensor([[s(2.0), s(2.0), s(1.5)]]), atol=1e-7)
    z = sum(math.exp(v) for v in l[0].tolist())                           # softmax over ALL experts
    idx, w = route(l, 3, "softmax", False)
    assert idx.tolist() == [[1, 3, 4]]
    assert torch.allclose(w, torch.tensor([[math.exp(2) / z, math.exp(2) / z, math.exp(1.5) / z]]), atol=1e-7)
    idx, w = route(l, 3, "softmax", True)                                 # == softmax of the k selected
    zk = 2 * math.exp(2) + math.exp(1.5)
    assert torch.allclose(w, torch.tensor([[math.exp(2) / zk, math.exp(2) / zk, math.exp(1.5) / zk]]), atol=1e-7)
    # many ties: all equal -> experts 0..k-1; selection ignores the gating
    idx, _ = route(torch.zeros(2, 8), 3, "softmax", True)
    assert idx.tolist() == [[0, 1, 2], [0, 1, 2]]
    idx, _ = route(torch.tensor([[-5.0, 1.0, 1.0, 1.0, 1.0]]), 2, "sigmoid", True)
    assert idx.tolist() == [[1, 2]]


@pytest.mark.parametrize("case", ["smallthinker", "smallthinker_softmax"])
def test_smallthinker_moe_layer_by_hand(case):
    """One token of the tiny SmallThinker, layer 2, recomputed from the weights in float64: router on the
    layer input x (before attn_norm), top-2 by raw logit, sigmoid (or softmax) renormalised, ReGLU experts
    relu(gate·h) * (up·h) on h = rmsnorm(x + attn) * ffn_norm."""
    _, cfg, w = tiny(case)
    m = MoeReference(cfg, w)
    toks = prompt(cfg["llm.vocab_size"])
    tr: dict = {}
    m.logits(toks, trace=tr)
    t, p = 9, "blk.2."
    W = {n: np.asarray(a, np.float64) for n, a in w.items() if n.startswith(p)}
    x = tr[p + "in"][t].double().numpy()
    logits = W[p + "ffn_router"] @ x
    top = sorted(range(8), key=lambda e: (-logits[e], e))[:2]
    if cfg["moe.gating"] == "sigmoid":
        g = [1 / (1 + math.exp(-logits[e])) for e in top]
    else:
        g = [math.exp(logits[e]) for e in top]
    g = [v / sum(g) for v in g]
    xa = x + tr[p + "attn_out"][t].double().numpy()
    h = xa / math.sqrt(np.mean(xa ** 2) + cfg["llm.rms_eps"]) * W[p + "ffn_norm"]
    f = sum(gj * (W[f"{p}exp.{e}.down"] @ (np.maximum(W[f"{p}exp.{e}.gate"] @ h, 0) * (W[f"{p}exp.{e}.up"] @ h)))
            for gj, e in zip(g, top))
    assert tr[p + "experts"][t].tolist() == top
    np.testing.assert_allclose(tr[p + "router_logits"][t].numpy(), logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(tr[p + "expert_weights"][t].numpy(), g, rtol=0, atol=1e-6)
    np.testing.assert_allclose(tr[p + "ffn_out"][t].numpy(), f, rtol=0, atol=1e-5 * np.abs(f).max())


def test_smallthinker_gating_modes_differ():
    _, c1, w = tiny("smallthinker")
    c2 = dict(c1, **{"moe.gating": "softmax"})
    toks = prompt(c1["llm.vocab_size"])
    r1, r2 = MoeReference(c1, w).routing(toks), MoeReference(c2, w).routing(toks)
    assert torch.equal(r1[0].experts, r2[0].experts)                 # selection is on raw logits either way
    assert not torch.allclose(r1[0].weights, r2[0].weights, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# SmallThinker: where the router reads, NoPE, sliding window


@pytest.mark.parametrize("router_input", ["residual", "ffn_norm"])
def test_router_reads_the_raw_residual(router_input):
    """Changing layer 2's attn_norm changes its attention; the routing of layer 2 moves only when the
    router reads the post-attention state (ffn_norm), never when it reads the raw residual."""
    _, cfg, w = tiny("smallthinker")
    cfg = dict(cfg, **{"moe.router_input": router_input})
    toks = prompt(cfg["llm.vocab_size"])
    w2 = dict(w, **{"blk.2.attn_norm": w["blk.2.attn_norm"] * 1.7 + 0.3})
    a, b = {}, {}
    MoeReference(cfg, w).logits(toks, trace=a)
    MoeReference(cfg, w2).logits(toks, trace=b)
    assert torch.equal(a["blk.2.in"], b["blk.2.in"])
    assert err_rel(a["blk.2.attn_out"], b["blk.2.attn_out"]) > 1e-2
    if router_input == "residual":
        assert torch.equal(a["blk.2.router_logits"], b["blk.2.router_logits"])
        assert torch.equal(a["blk.2.router_in"], a["blk.2.in"])
    else:
        assert err_rel(a["blk.2.router_logits"], b["blk.2.router_logits"]) > 1e-2


def _one_layer(rope: int, swa: int, window: int = 8):
    _, cfg, w = tiny("smallthinker")
    cfg = dict(cfg, **{"llm.n_layers": 1, "moe.layers": [1], "llm.rope_layers": [rope], "llm.swa_layers": [swa],
                       "llm.swa_window": window})
    return MoeReference(cfg, {n: a for n, a in w.items() if not n.startswith(("blk.1.", "blk.2.", "blk.3."))})


@pytest.mark.parametrize("rope", [0, 1])
def test_nope_layer_ignores_position(rope):
    """One NoPE layer: the last token attends to a set, so permuting the earlier tokens leaves its logits
    unchanged (to rounding); with RoPE the positions, hence the logits, change."""
    m = _one_layer(rope, 0)
    toks = prompt(m.shape.llm.vocab_size, n=9)
    perm = torch.cat([toks[:-1].flip(0), toks[-1:]])
    d = err_rel(m.logits(perm)[-1], m.logits(toks)[-1])
    assert (d < 1e-5) if rope == 0 else (d > 1e-3), d


def test_sliding_window_boundary():
    """Window W = 8: the token at p attends to p-7..p. One layer, last position p = 11: a change at 3 = p-W
    is invisible, a change at 4 is seen; with full attention a change at 3 is seen too."""
    swa, full = _one_layer(1, 1), _one_layer(1, 0)
    toks = prompt(swa.shape.llm.vocab_size, n=12)

    def moved(m, pos):
        t2 = toks.clone()
        t2[pos] = 3 + (int(t2[pos]) - 3 + 100) % (m.shape.llm.vocab_size - 3)
        return err_rel(m.logits(t2)[-1], m.logits(toks)[-1])

    assert moved(swa, 3) < 1e-6          # rounding only: experts run on batches of other sizes
    assert moved(swa, 4) > 1e-4
    assert moved(full, 3) > 1e-4
    # within the window the two agree exactly
    assert torch.equal(swa.logits(toks[:8]), full.logits(toks[:8]))


# ---------------------------------------------------------------------------------------------
# predictor, routing trace, lazy weights


def test_linear_predictor_equals_router_when_attention_is_silent():
    """moe.predictor = linear with the converter's default fold W_pred = W_router · diag(ffn_norm), b = 0 is
    exact when attention adds nothing (attn_o = 0): then the post-attention state is the layer input."""
    _, cfg, w = tiny("qwen3moe")
    cfg = dict(cfg, **{"moe.predictor": "linear"})
    w = dict(w)
    for i in (0, 2):
        w[f"blk.{i}.ffn_router_pred"] = w[f"blk.{i}.ffn_router"] * w[f"blk.{i}.ffn_norm"][None, :]
        w[f"blk.{i}.ffn_router_pred_b"] = np.zeros(8, np.float32)
    toks = prompt(cfg["llm.vocab_size"])
    r = MoeReference(cfg, w).routing(toks)
    assert [x.layer for x in r] == [0, 2]
    assert err_rel(r[1].pred_logits, r[1].logits) > 1e-2            # attention on: only an approximation
    w["blk.2.attn_o"] = np.zeros_like(w["blk.2.attn_o"])
    r = MoeReference(cfg, w).routing(toks)
    close(r[1].pred_logits, r[1].logits, 1e-5)
    assert torch.equal(r[1].x_attn, r[1].x)


def test_routing_trace_fields():
    _, cfg, w = tiny("smallthinker")
    toks = prompt(cfg["llm.vocab_size"])
    m = MoeReference(cfg, w)
    r = m.routing(toks)
    assert [x.layer for x in r] == [0, 1, 2, 3]
    for x in r:
        assert x.x.shape == x.x_attn.shape == (11, 64) and x.logits.shape == (11, 8)
        assert x.experts.shape == x.weights.shape == (11, 2) and x.experts.dtype == torch.long
        assert torch.equal(x.router_in, x.x) and x.pred_logits is None
        torch.testing.assert_close(x.weights.sum(-1), torch.ones(11))
    # chunked with a cache == one pass
    c = m.new_cache()
    a, b = m.routing(toks[:5], 0, c), m.routing(toks[5:], 5, c)
    for full, p1, p2 in zip(r, a, b):
        assert torch.equal(torch.cat([p1.experts, p2.experts]), full.experts)


@pytest.mark.parametrize("arch", ["qwen3moe", "mixtral", "olmoe", "smallthinker"])
def test_hf_folder_round_trip(tmp_path, arch):
    """The saved folder (what the converter reads) holds per-expert tensors and gives the same model,
    eagerly and lazily."""
    from safetensors import safe_open

    _, cfg, w = make_tiny(arch, seed=5, dir=tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        names = list(f.keys())
    assert not any("gate_up_proj" in n for n in names) and "blk.0.exp.7.down" in {
        moe_hf_to_ours(n, (), arch)[0][0] for n in names if moe_hf_to_ours(n, (), arch)}
    cfg2, w2 = load_hf_folder(tmp_path)
    assert cfg2 == cfg == hf_config_to_ours(json.loads((tmp_path / "config.json").read_text()))
    assert sorted(w2) == sorted(w)
    for n in w:
        assert np.array_equal(w2[n].numpy(), w[n]), n
    cfg3, lazy = load_hf_folder(tmp_path, lazy=True)
    toks = prompt(cfg["llm.vocab_size"])
    assert torch.equal(MoeReference(cfg3, lazy, lazy=True).logits(toks), MoeReference(cfg, w).logits(toks))
    from tokenizers import Tokenizer
    assert Tokenizer.from_file(str(tmp_path / "tokenizer.json")).get_vocab_size() == cfg["llm.vocab_size"]


# ---------------------------------------------------------------------------------------------
# hf_names: MoE tensor names and config keys


@pytest.mark.parametrize("case", ["qwen3moe", "mixtral", "olmoe"])
def test_fused_and_per_expert_names_agree(case):
    """transformers' in-memory fused experts and the per-expert names files hold map to the same tensors."""
    hf, cfg, w = tiny(case)
    arch = cfg["general.architecture"]
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in state)
    per_expert = {}
    for name, v in state.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            F = v.shape[1] // 2
            for e in range(v.shape[0]):
                per_expert[moe_ours_to_hf(f"blk.{name.split('.')[2]}.exp.{e}.gate", arch)] = v[e, :F]
                per_expert[moe_ours_to_hf(f"blk.{name.split('.')[2]}.exp.{e}.up", arch)] = v[e, F:]
        elif name.endswith("mlp.experts.down_proj"):
            for e in range(v.shape[0]):
                per_expert[moe_ours_to_hf(f"blk.{name.split('.')[2]}.exp.{e}.down", arch)] = v[e]
        elif name.endswith("mlp.gate.weight"):
            per_expert[moe_ours_to_hf(f"blk.{name.split('.')[2]}.ffn_router", arch)] = v
        else:
            per_expert[name] = v
    a, b = convert_moe_state_dict(state, cfg), convert_moe_state_dict(per_expert, cfg)
    assert sorted(a) == sorted(b) == sorted(w)
    for n in a:
        assert np.array_equal(a[n], b[n]), n
    for n in b:
        hf_name = moe_ours_to_hf(n, arch)
        assert moe_hf_to_ours(hf_name, (), arch) == [(n, ())]


def test_hf_folder_with_fused_experts(tmp_path):
    """A file in transformers' in-memory layout (fused 3-D experts) reads as the same weights, lazily too
    (the lazy mapping reads one expert's slice)."""
    from safetensors.torch import save_file

    hf, cfg, w = tiny("olmoe")
    hf.config.to_json_file(str(tmp_path / "config.json"))
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(tmp_path / "model.safetensors"))
    for lazy in (False, True):
        cfg2, w2 = load_hf_folder(tmp_path, lazy=lazy)
        assert cfg2 == cfg and sorted(w2) == sorted(w)
        for n in ("blk.1.exp.3.gate", "blk.1.exp.3.up", "blk.0.exp.7.down", "blk.0.ffn_router"):
            assert np.array_equal(w2[n].numpy(), w[n]), n


def test_moe_names_table():
    assert moe_ours_to_hf("blk.3.exp.5.gate", "mixtral") == "model.layers.3.block_sparse_moe.experts.5.w1.weight"
    assert moe_ours_to_hf("blk.3.exp.5.up", "mixtral") == "model.layers.3.block_sparse_moe.experts.5.w3.weight"
    assert moe_ours_to_hf("blk.3.ffn_router", "mixtral") == "model.layers.3.block_sparse_moe.gate.weight"
    assert moe_ours_to_hf("blk.0.exp.31.down", "smallthinker") == \
        "model.layers.0.block_sparse_moe.experts.31.down.weight"
    assert moe_ours_to_hf("blk.0.ffn_router", "smallthinker") == "model.layers.0.block_sparse_moe.primary_router.weight"
    assert moe_ours_to_hf("blk.1.exp.0.up", "qwen3moe") == "model.layers.1.mlp.experts.0.up_proj.weight"
    assert moe_ours_to_hf("blk.1.attn_q_norm", "olmoe") == "model.layers.1.self_attn.q_norm.weight"
    assert moe_hf_to_ours("model.layers.2.mlp.gate.weight", (8, 64), "mixtral") == [("blk.2.ffn_router", ())]
    assert moe_hf_to_ours("model.layers.2.mlp.experts.gate_up_proj", (2, 6, 4), "olmoe") == [
        ("blk.2.exp.0.gate", (0, slice(0, 3))), ("blk.2.exp.0.up", (0, slice(3, 6))),
        ("blk.2.exp.1.gate", (1, slice(0, 3))), ("blk.2.exp.1.up", (1, slice(3, 6)))]
    assert moe_hf_to_ours("model.layers.0.block_sparse_moe.experts.0.w1.weight", (), "qwen3moe") is None
    assert moe_hf_to_ours("model.layers.0.mlp.experts.gate_up_proj", (8, 6, 4), "smallthinker") is None
    with pytest.raises(ValueError, match="unknown"):
        convert_moe_state_dict({"model.layers.0.mlp.experts.0.w1.weight": np.zeros(1)},
                               {"general.architecture": "qwen3moe", "llm.tied_head": 1})


_SMALLTHINKER_4B = {   # PowerInfer/SmallThinker-4BA0.6B-Instruct config.json (the keys that matter)
    "architectures": ["SmallThinkerForCausalLM"], "model_type": "smallthinker", "head_dim": 128,
    "hidden_size": 1536, "max_position_embeddings": 32768, "moe_ffn_hidden_size": 768,
    "moe_num_active_primary_experts": 4, "moe_num_primary_experts": 32, "norm_topk_prob": True,
    "num_attention_heads": 12, "num_hidden_layers": 32, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_layout": [1] * 32, "rope_scaling": None, "rope_theta": 1.5e6, "sliding_window_size": 4096,
    "sliding_window_layout": [0] * 32, "tie_word_embeddings": True, "vocab_size": 151936}


def test_hf_config_mapping():
    st = hf_config_to_moe(_SMALLTHINKER_4B)
    assert st["general.architecture"] == "smallthinker" and st["llm.tied_head"] == 1
    assert (st["moe.n_experts"], st["moe.n_experts_used"], st["moe.d_expert"]) == (32, 4, 768)
    assert (st["moe.gating"], st["moe.norm_topk"], st["moe.act"], st["moe.router_input"]) == \
        ("sigmoid", 1, "relu", "residual")
    assert st["llm.rope_theta"] == 1.5e6 and st["llm.d_ff"] == 0 and "llm.swa_window" not in st
    assert st["llm.rope_layers"] == [1] * 32 and st["llm.swa_layers"] == [0] * 32 and st["llm.qk_norm"] == 0
    big = dict(_SMALLTHINKER_4B, num_hidden_layers=8, rope_layout=[int(i % 4 != 0) for i in range(8)],
               sliding_window_layout=[int(i % 4 != 0) for i in range(8)], moe_primary_router_apply_softmax=True)
    b = hf_config_to_moe(big)
    assert b["moe.gating"] == "softmax" and b["llm.swa_window"] == 4096 and b["llm.rope_layers"][:2] == [0, 1]
    q = hf_config_to_moe(dict(model_type="qwen3_moe", hidden_size=2048, num_hidden_layers=48, num_attention_heads=32,
                              num_key_value_heads=4, head_dim=128, intermediate_size=6144, moe_intermediate_size=768,
                              num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1,
                              mlp_only_layers=[], vocab_size=151936, rope_theta=1e6, rms_norm_eps=1e-6,
                              tie_word_embeddings=False, max_position_embeddings=40960))
    assert (q["moe.n_experts"], q["llm.head_dim"], q["llm.d_ff"], q["moe.norm_topk"]) == (128, 128, 0, 1)
    assert q["moe.layers"] == [1] * 48 and q["llm.qk_norm_scope"] == "head"
    q2 = hf_config_to_moe(dict(model_type="qwen3_moe", hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=96, moe_intermediate_size=32, num_local_experts=8,
                               num_experts_per_tok=2, decoder_sparse_step=2, vocab_size=320))
    assert q2["moe.layers"] == [0, 1, 0, 1] and q2["llm.d_ff"] == 96 and q2["llm.head_dim"] == 16
    olmoe_1b_7b = dict(model_type="olmoe", hidden_size=2048, num_hidden_layers=16, num_attention_heads=16,
                       num_key_value_heads=16, intermediate_size=1024, num_experts=64, num_experts_per_tok=8,
                       norm_topk_prob=False, clip_qkv=None, vocab_size=50304, rope_theta=10000.0,
                       rms_norm_eps=1e-5, max_position_embeddings=4096)
    o = hf_config_to_moe(olmoe_1b_7b)
    assert (o["moe.d_expert"], o["moe.norm_topk"], o["llm.qk_norm_scope"], o["llm.head_dim"]) == (1024, 0, "full", 128)
    mx = hf_config_to_moe(dict(model_type="mixtral", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                               num_key_value_heads=8, intermediate_size=14336, num_local_experts=8,
                               num_experts_per_tok=2, vocab_size=32000, rope_theta=1e6, sliding_window=None))
    assert (mx["moe.d_expert"], mx["moe.norm_topk"], mx["llm.swa_layers"], mx["llm.qk_norm"]) == (14336, 1, [0] * 32, 0)
    for bad in (dict(_SMALLTHINKER_4B, use_qk_norm=True), dict(_SMALLTHINKER_4B, moe_shared_primary_experts=1),
                dict(olmoe_1b_7b, clip_qkv=8.0), dict(_SMALLTHINKER_4B, model_type="deepseek_v3")):
        with pytest.raises(NotImplementedError):
            hf_config_to_moe(bad)
    with pytest.raises(NotImplementedError):        # the dense mapping still refuses MoE configs
        hf_config_to_llm(dict(_SMALLTHINKER_4B, model_type="qwen3_moe"))


def test_reference_rejects_bad_inputs():
    _, cfg, w = tiny("smallthinker")
    with pytest.raises(KeyError, match="blk.2.exp.5.up"):
        MoeReference(cfg, {k: v for k, v in w.items() if k != "blk.2.exp.5.up"})
    with pytest.raises(ValueError, match="does not use"):
        MoeReference(cfg, dict(w, **{"blk.0.exp.8.up": w["blk.0.exp.0.up"]}))
    with pytest.raises(ValueError, match="shape"):
        MoeReference(cfg, dict(w, **{"blk.0.ffn_router": np.zeros((7, 64), np.float32)}))
    with pytest.raises(ValueError, match="n_experts_used"):
        MoeReference(dict(cfg, **{"moe.n_experts_used": 9}), w)
    with pytest.raises(ValueError, match="swa_window"):
        MoeReference({k: v for k, v in cfg.items() if k != "llm.swa_window"}, w)
    with pytest.raises(ValueError, match="moe.gating"):
        MoeReference(dict(cfg, **{"moe.gating": "sparsemax"}), w)
    with pytest.raises(KeyError, match="moe.router_input"):
        MoeReference({k: v for k, v in cfg.items() if k != "moe.router_input"}, w)
    with pytest.raises(ValueError, match="llm.rope_layers"):
        MoeReference(dict(cfg, **{"llm.rope_layers": [1, 1]}), w)


# ---------------------------------------------------------------------------------------------
# models/random_moe.py


def _hot_share(dir):
    from models.random_moe import check
    return check(dir, n_tokens=48, n_new=6)


def test_random_moe_tiny_preset(tmp_path):
    from models.random_moe import main

    assert main(["--preset", "tiny", "-o", str(tmp_path / "plain"), "--seed", "3", "--json"]) == 0
    cfg, w = load_hf_folder(tmp_path / "plain", lazy=True)
    assert cfg["general.architecture"] == "smallthinker" and cfg["llm.tied_head"] == 1
    assert cfg["moe.gating"] == "sigmoid" and cfg["llm.rope_layers"] == [1] * 4 and cfg["llm.swa_layers"] == [0] * 4
    assert w["blk.0.exp.0.gate"].dtype == torch.bfloat16
    idx = json.loads((tmp_path / "plain" / "model.safetensors.index.json").read_text())
    assert len(set(idx["weight_map"].values())) == 5                     # embedding shard + one per layer
    c = _hot_share(tmp_path / "plain")
    assert c["finite"] and c["logits_std"] > 2.0
    assert len(set(c["greedy"])) > 1, "degenerate greedy run (a tied model repeating its input)"
    for layer in c["layers"]:
        assert 0.05 < layer["rms_in"] < 3.0 and 1.0 < layer["router_std"] < 4.0
        assert layer["distinct_experts"] >= 6
    # same arguments, same bytes
    main(["--preset", "tiny", "-o", str(tmp_path / "again"), "--seed", "3", "--json"])
    for f in sorted(set(idx["weight_map"].values())):
        assert (tmp_path / "plain" / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def test_random_moe_skew_concentrates_traffic(tmp_path):
    from models.random_moe import main

    main(["--preset", "tiny", "-o", str(tmp_path / "s"), "--skew", "2", "--json"])
    info = json.loads((tmp_path / "s" / "random_moe.json").read_text())
    assert len(info["hot_experts"]) == 4 and all(len(h) == 2 for h in info["hot_experts"])   # ceil(8/5)
    c = _hot_share(tmp_path / "s")
    shares = [layer["hot_share"] for layer in c["layers"]]
    # 2 hot experts of 8 with k = 2: 25% of the slots without skew (77% expected with S = 2)
    assert c["finite"] and min(shares) > 0.4 and sum(shares) / len(shares) > 0.55, shares
