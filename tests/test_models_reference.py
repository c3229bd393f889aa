"""models/: the reference decoder against Hugging Face transformers on tiny random models.

Tolerances are relative to the logit scale s = max|logits| (about 14-22 here):
  * float32 reference vs transformers float32: 1e-5·s. Both compute the same float32 ops; they differ
    only in op order (measured: 0 for Llama/Qwen2, ~1e-5 absolute for Qwen3).
  * float64 reference vs transformers float64: 1e-6·s. transformers keeps RMSNorm and RoPE angles in
    float32 even for a float64 model (measured ~2e-7·s), so it cannot be tighter than that.
  * float32 reference vs float64 reference: 1e-5·s (float32 rounding over 2-3 blocks, measured ~6e-7·s).
"""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from models import Reference                                   # noqa: E402
from models.hf_names import (convert_state_dict, hf_config_to_llm, hf_to_ours,  # noqa: E402
                             ours_to_hf)
from models.tiny import make_tiny, make_tokenizer               # noqa: E402

CASES = {
    "llama": ("llama", {}),
    "llama_tied": ("llama", {"tie_word_embeddings": True}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "llama_mha": ("llama", {"num_key_value_heads": 4, "num_hidden_layers": 1}),
}
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


def close(a, b, rel):
    a, b = a.double(), b.double()
    scale = float(b.abs().max())
    err = float((a - b).abs().max())
    assert err <= rel * scale, f"max abs diff {err:.3g} > {rel:g} x scale {scale:.3g}"


def test_cases_cover_the_features():
    cfgs = {c: tiny(c)[1] for c in CASES}
    assert cfgs["llama"]["llm.n_kv_heads"] < cfgs["llama"]["llm.n_heads"]          # GQA
    assert cfgs["llama_mha"]["llm.n_kv_heads"] == cfgs["llama_mha"]["llm.n_heads"]
    assert cfgs["llama_tied"]["llm.tied_head"] == 1 and "output" not in tiny("llama_tied")[2]
    assert cfgs["llama"]["llm.tied_head"] == 0 and "output" in tiny("llama")[2]
    assert cfgs["qwen2"]["llm.qkv_bias"] == 1 and "blk.0.attn_q_bias" in tiny("qwen2")[2]
    assert cfgs["qwen3"]["llm.qk_norm"] == 1 and "blk.1.attn_k_norm" in tiny("qwen3")[2]
    # head_dim is not d_model / n_heads for Qwen3 here (24 vs 16): the reference must not assume it.
    assert cfgs["qwen3"]["llm.head_dim"] * cfgs["qwen3"]["llm.n_heads"] != cfgs["qwen3"]["llm.d_model"]


@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers_f32(case):
    hf, cfg, w = tiny(case)
    toks = prompt(cfg["llm.vocab_size"])
    ours = Reference(cfg, w).logits(toks)
    theirs = hf_logits(hf, toks)
    assert ours.dtype == torch.float32 and ours.shape == (len(toks), cfg["llm.vocab_size"])
    assert float(theirs.std()) > 1.0, "logits nearly flat: the tiny model's init is too small"
    close(ours, theirs, 1e-5)


@pytest.mark.parametrize("case", ["llama", "qwen2", "qwen3"])
def test_logits_f64(case):
    hf, cfg, w = tiny(case)
    toks = prompt(cfg["llm.vocab_size"])
    ours64 = Reference(cfg, w, dtype=torch.float64).logits(toks)
    assert ours64.dtype == torch.float64
    close(Reference(cfg, w).logits(toks), ours64, 1e-5)
    hf64 = hf.to(torch.float64)
    try:
        close(ours64, hf_logits(hf64, toks), 1e-6)
    finally:
        hf.to(torch.float32)


@pytest.mark.parametrize("case", ["llama", "llama_tied", "qwen2", "qwen3"])
def test_prefill_then_decode_equals_full_forward(case):
    _, cfg, w = tiny(case)
    m = Reference(cfg, w)
    toks = prompt(cfg["llm.vocab_size"], n=13)
    full = m.logits(toks)
    cache = m.new_cache()
    parts = [m.logits(toks[:7], 0, cache)]                       # prefill
    parts.append(m.logits(toks[7:10], 7, cache))                 # a chunk of 3
    for pos in range(10, 13):                                    # single-token steps
        parts.append(m.step(int(toks[pos]), pos, cache)[None])
    assert cache.n == 13 and cache.k[0].shape == (cfg["llm.n_kv_heads"], 13, cfg["llm.head_dim"])
    close(torch.cat(parts), full, 2e-6)


@pytest.mark.parametrize("case", ["llama", "llama_tied", "qwen2", "qwen3", "llama_mha"])
def test_greedy_matches_generate(case):
    hf, cfg, w = tiny(case)
    toks = prompt(cfg["llm.vocab_size"], n=6, seed=11)
    with torch.no_grad():
        out = hf.generate(toks[None], max_new_tokens=8, do_sample=False, eos_token_id=None,
                          pad_token_id=0)[0, len(toks):].tolist()
    assert len(out) == 8
    ours = Reference(cfg, w).greedy(toks, 8)
    assert ours == out
    if not cfg["llm.tied_head"]:
        # A random tied model falls into a fixed point at once (the head reads back the input token's
        # own embedding), so only untied runs are required to vary.
        assert len(set(ours)) > 1, "degenerate greedy run: every step picked the same token"
    # eos stops generation right after it is produced
    assert Reference(cfg, w).greedy(toks, 8, eos_id=ours[2]) == ours[:ours.index(ours[2]) + 1]


def test_hf_folder_loads_into_reference(tmp_path):
    """The saved folder (what the converter reads) gives the same model: safetensors + config.json."""
    from safetensors.numpy import load_file

    hf, cfg, _ = make_tiny("qwen2", seed=5, dir=tmp_path)
    with open(tmp_path / "config.json") as f:
        cfg2 = hf_config_to_llm(json.load(f))
    assert cfg2 == cfg and cfg2["llm.tied_head"] == 1
    state = load_file(str(tmp_path / "model.safetensors"))
    weights = convert_state_dict(state, tied_head=True)
    toks = prompt(cfg["llm.vocab_size"])
    close(Reference(cfg2, weights).logits(toks), hf_logits(hf, toks), 1e-5)

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tok.get_vocab_size() == cfg["llm.vocab_size"]
    assert [tok.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [0, 1, 2]
    text = "Hello world! Edge devices run models."
    assert tok.decode(tok.encode(text).ids) == text
    tc = json.loads((tmp_path / "tokenizer_config.json").read_text())
    import jinja2
    rendered = jinja2.Template(tc["chat_template"]).render(
        messages=[{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_vocab_sizes():
    assert make_tokenizer(260).get_vocab_size() == 260
    assert make_tokenizer(512).get_vocab_size() == 512
    with pytest.raises(ValueError, match="vocab_size"):
        make_tokenizer(100000)


def test_name_mapping_round_trips():
    hf, cfg, w = tiny("qwen2")
    for hf_name in hf.state_dict():
        ours = hf_to_ours(hf_name)
        assert ours is not None, hf_name
        assert ours_to_hf(ours) == hf_name
    assert hf_to_ours("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    assert ours_to_hf("blk.3.attn_k_norm") == "model.layers.3.self_attn.k_norm.weight"
    with pytest.raises(ValueError, match="unknown"):
        convert_state_dict({"model.layers.0.mlp.experts.0.w1.weight": 0}, tied_head=True)
    with pytest.raises(ValueError, match="lm_head"):
        convert_state_dict({"model.embed_tokens.weight": 0}, tied_head=False)


def test_hf_config_mapping():
    base = dict(model_type="llama", hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                intermediate_size=1536, num_hidden_layers=30, vocab_size=49152, rms_norm_eps=1e-5,
                rope_theta=100000, tie_word_embeddings=True, max_position_embeddings=8192)
    c = hf_config_to_llm(base)                        # transformers 4.x style (SmolLM2-135M)
    assert c["llm.head_dim"] == 64 and c["llm.rope_theta"] == 100000.0 and c["llm.tied_head"] == 1
    assert c["llm.qkv_bias"] == 0 and c["llm.qk_norm"] == 0 and c["llm.max_ctx"] == 8192
    v5 = dict(base, rope_parameters={"rope_type": "default", "rope_theta": 5e5})
    del v5["rope_theta"]
    assert hf_config_to_llm(v5)["llm.rope_theta"] == 5e5
    assert hf_config_to_llm(dict(base, model_type="qwen2"))["llm.qkv_bias"] == 1
    q3 = hf_config_to_llm(dict(base, model_type="qwen3", head_dim=128))
    assert q3["llm.qk_norm"] == 1 and q3["llm.head_dim"] == 128 and q3["general.architecture"] == "qwen3"
    assert hf_config_to_llm(dict(base, num_key_value_heads=None))["llm.n_kv_heads"] == 9
    for bad in (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), dict(attention_bias=True),
                dict(model_type="mistral"), dict(hidden_act="gelu")):
        with pytest.raises(NotImplementedError):
            hf_config_to_llm(dict(base, **bad))


def test_reference_rejects_bad_inputs():
    _, cfg, w = tiny("llama")
    missing = {k: v for k, v in w.items() if k != "blk.1.ffn_up"}
    with pytest.raises(KeyError, match="blk.1.ffn_up"):
        Reference(cfg, missing)
    with pytest.raises(ValueError, match="shape"):
        Reference(cfg, dict(w, **{"blk.0.attn_k": np.zeros((16, 64), np.float32)}))
    with pytest.raises(ValueError, match="does not use"):
        Reference(cfg, dict(w, **{"blk.0.attn_q_bias": np.zeros(64, np.float32)}))
    with pytest.raises(KeyError, match="llm.rope_theta"):
        Reference({k: v for k, v in cfg.items() if k != "llm.rope_theta"}, w)
    m = Reference(cfg, w)
    cache = m.new_cache()
    m.logits([5, 6, 7], 0, cache)
    with pytest.raises(ValueError, match="cache holds 3"):
        m.logits([8], 2, cache)
    with pytest.raises(ValueError, match="out of range"):
        m.logits([cfg["llm.vocab_size"]])



def test_reference_reads_the_layout_keys():
    """llm.norm / llm.ffn_act / llm.rope_type: absent (files before them) = the one layout implemented; any
    other value is refused, naming the key, as the runtime does."""
    _, cfg, w = tiny("llama")
    assert (cfg["llm.norm"], cfg["llm.ffn_act"], cfg["llm.rope_type"]) == ("rms", "silu", "rotate_half")
    old = {k: v for k, v in cfg.items() if k not in ("llm.norm", "llm.ffn_act", "llm.rope_type")}
    toks = prompt(cfg["llm.vocab_size"])
    assert torch.equal(Reference(old, w).logits(toks), Reference(cfg, w).logits(toks))
    for key, value in (("llm.norm", "layer"), ("llm.ffn_act", "gelu_erf"), ("llm.rope_type", "interleaved")):
        with pytest.raises(ValueError, match=key):
            Reference(dict(cfg, **{key: value}), w)


# ---------------------------------------------------------------------------------------------
# models/edge_loader.py: .edge file -> Reference over dequantized weights


def _edge_api():
    from models.edge_loader import _edgeconv_format
    fmt = _edgeconv_format()
    from edgeconv import quant
    return fmt, quant


def _write_edge(path, cfg, weights, dtype_of=lambda name, w: "f32", drop=()):
    fmt, quant = _edge_api()
    with fmt.EdgeWriter(path) as wr:
        for k, v in cfg.items():
            wr.add_metadata(k, v)
        for name, w in weights.items():
            if name not in drop:
                wr.declare(name, dtype_of(name, w), w.shape)
        wr.begin()
        for name, w in weights.items():
            if name not in drop:
                wr.write_tensor(name, quant.quantize(w, dtype_of(name, w)))


def test_edge_f32_file_is_the_same_model(tmp_path):
    from models.edge_loader import load_edge_reference
    _, cfg, w = tiny("qwen2")
    _write_edge(tmp_path / "m.edge", cfg, w)
    m = load_edge_reference(tmp_path / "m.edge")
    assert m.shape.qkv_bias and m.shape.tied_head
    toks = prompt(cfg["llm.vocab_size"])
    assert torch.equal(m.logits(toks), Reference(cfg, w).logits(toks))


@pytest.mark.parametrize("dtype,min_corr", [("q8_0", 0.999), ("int4_32", 0.93), ("mxfp4", 0.85)])
def test_edge_quantized_file_is_dequantized(tmp_path, dtype, min_corr):
    from models.edge_loader import load_edge_reference
    _, quant = _edge_api()
    _, cfg, w = tiny("qwen3")
    pick = lambda name, a: dtype if a.ndim == 2 else "f32"          # norms stay f32  # noqa: E731
    _write_edge(tmp_path / "m.edge", cfg, w, pick)
    m = load_edge_reference(tmp_path / "m.edge")
    toks = prompt(cfg["llm.vocab_size"])
    got = m.logits(toks)
    # exactly the model over quant.dequantize(quant.quantize(w)) ...
    deq = {n: quant.dequantize(quant.quantize(a, pick(n, a)), pick(n, a), a.shape) for n, a in w.items()}
    assert torch.equal(got, Reference(cfg, deq).logits(toks))
    # ... which is a perturbation of the float model, not the float model itself nor garbage.
    # Measured correlations with the float logits: q8_0 0.9999, int4_32 0.961, mxfp4 0.911 (weight
    # rms errors 0.5%, 8%, 11%); an unrelated model of the same shape: 0.02.
    exact = Reference(cfg, w).logits(toks)
    assert not torch.equal(got, exact)
    corr = np.corrcoef(got.flatten().numpy(), exact.flatten().numpy())[0, 1]
    assert corr > min_corr, f"{dtype}: logits correlation {corr:.4f} with the float model"


def test_edge_export_end_to_end(tmp_path):
    """HF folder -> edgeconv.export -> .edge -> Reference matches transformers (f32 recipe)."""
    from models.edge_loader import load_edge_reference
    _edge_api()
    from edgeconv.export import export

    hf, cfg, _ = make_tiny("llama", seed=9, dir=tmp_path / "hf")
    export(str(tmp_path / "hf"), str(tmp_path / "m.edge"), recipe="f32")
    m = load_edge_reference(tmp_path / "m.edge")
    toks = prompt(cfg["llm.vocab_size"])
    close(m.logits(toks), hf_logits(hf, toks), 1e-5)


def test_edge_loader_rejects_mismatches(tmp_path):
    from models.edge_loader import load_edge_reference
    _, cfg, w = tiny("llama")
    _write_edge(tmp_path / "missing.edge", cfg, w, drop=("blk.1.attn_v",))
    with pytest.raises(KeyError, match="blk.1.attn_v"):
        load_edge_reference(tmp_path / "missing.edge")
    _write_edge(tmp_path / "arch.edge", dict(cfg, **{"general.architecture": "smallthinker"}), w)
    with pytest.raises(ValueError, match="smallthinker"):
        load_edge_reference(tmp_path / "arch.edge")
    (tmp_path / "junk.edge").write_bytes(b"EDGEFILE" + bytes(200))
    with pytest.raises(ValueError):
        load_edge_reference(tmp_path / "junk.edge")
