"""MoE import from GGUF (llama.cpp's qwen3moe / llama-with-experts = Mixtral / olmoe / smallthinker layouts,
experts fused in blk.i.ffn_{gate,up,down}_exps) and from .pt checkpoints (state dict + config,
weights_only=True): each tiny model gives the HF folder's .edge file, tensor for tensor and key for key.

The GGUF is written here with the `gguf` package the way convert_hf_to_gguf.py lays it out (Mixtral's q/k rows
permuted into llama.cpp's interleaved RoPE order). Cost: 4 tiny MoE models × 3 conversions, ~20 s on 2 cores.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

from edgeconv.export import export, permute_rope_rows  # noqa: E402
from edgeconv.format import EdgeFile  # noqa: E402
from edgeconv.sources.hf_tokenizer import read_hf_tokenizer  # noqa: E402

ARCHS = ("qwen3moe", "mixtral", "olmoe", "smallthinker")
GGUF_ARCH = {"qwen3moe": "qwen3moe", "mixtral": "llama", "olmoe": "olmoe", "smallthinker": "smallthinker"}
_PLAIN = {"attn_norm": "attn_norm", "attn_q": "attn_q", "attn_k": "attn_k", "attn_v": "attn_v",
          "attn_o": "attn_output", "attn_q_norm": "attn_q_norm", "attn_k_norm": "attn_k_norm", "ffn_norm": "ffn_norm",
          "ffn_router": "ffn_gate_inp", "ffn_gate": "ffn_gate", "ffn_up": "ffn_up", "ffn_down": "ffn_down"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from models.tiny import make_tiny

    root = tmp_path_factory.mktemp("moe_formats")
    cache = {}

    def get(arch):
        if arch not in cache:
            d = root / arch
            hf, config, weights = make_tiny(arch, seed=11, dir=d)
            ref = root / f"{arch}.hf.edge"
            export(str(d), ref, recipe="int4")
            cache[arch] = (str(d), hf, config, weights, str(ref))
        return cache[arch]

    return get


def write_gguf(path, hf_dir, config: dict, weights: dict, arch: str, skip_experts_of: int | None = None) -> None:
    """convert_hf_to_gguf's layout of a tiny MoE model (F32 tensors); skip_experts_of: leave out one block's
    fused expert tensors (a broken file)."""
    import json

    a = GGUF_ARCH[arch]
    L, E = config["llm.n_layers"], config["moe.n_experts"]
    w = gguf.GGUFWriter(str(path), a)
    w.add_uint32(f"{a}.block_count", L)
    w.add_uint32(f"{a}.context_length", config["llm.max_ctx"])
    w.add_uint32(f"{a}.embedding_length", config["llm.d_model"])
    w.add_uint32(f"{a}.feed_forward_length", config["llm.d_ff"] or config["moe.d_expert"])
    w.add_uint32(f"{a}.attention.head_count", config["llm.n_heads"])
    w.add_uint32(f"{a}.attention.head_count_kv", config["llm.n_kv_heads"])
    w.add_uint32(f"{a}.attention.key_length", config["llm.head_dim"])
    w.add_uint32(f"{a}.attention.value_length", config["llm.head_dim"])
    w.add_float32(f"{a}.rope.freq_base", config["llm.rope_theta"])
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", config["llm.rms_eps"])
    w.add_uint32(f"{a}.expert_count", E)
    w.add_uint32(f"{a}.expert_used_count", config["moe.n_experts_used"])
    w.add_uint32(f"{a}.vocab_size", config["llm.vocab_size"])
    if arch == "qwen3moe":
        w.add_uint32(f"{a}.expert_feed_forward_length", config["moe.d_expert"])
    if arch == "smallthinker":
        w.add_uint32(f"{a}.expert_gating_func", 1 if config["moe.gating"] == "softmax" else 2)
        if any(config.get("llm.swa_layers", [])):
            w.add_uint32(f"{a}.attention.sliding_window", config["llm.swa_window"])
    with open(os.path.join(hf_dir, "config.json")) as f:
        tok = read_hf_tokenizer(hf_dir, json.load(f), config["llm.vocab_size"])
    w.add_tokenizer_model(tok["tokenizer.model"])
    w.add_tokenizer_pre(tok["tokenizer.pre"])
    w.add_token_list(tok["tokenizer.tokens"])
    w.add_token_types(tok["tokenizer.token_type"])
    w.add_token_merges(tok["tokenizer.merges"])
    w.add_bos_token_id(tok["tokenizer.bos_id"])
    w.add_eos_token_id(tok["tokenizer.eos_id"])
    w.add_pad_token_id(tok["tokenizer.pad_id"])
    w.add_add_bos_token(bool(tok["tokenizer.add_bos"]))
    w.add_chat_template(tok["tokenizer.chat_template"])

    def put(name, arr):
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    put("token_embd.weight", weights["tok_embd"])
    for i in range(L):
        for ours, theirs in _PLAIN.items():
            t = weights.get(f"blk.{i}.{ours}")
            if t is None:
                continue
            if arch == "mixtral" and ours in ("attn_q", "attn_k"):  # LlamaModel.modify_tensors
                t = permute_rope_rows(t, config["llm.n_heads" if ours == "attn_q" else "llm.n_kv_heads"])
            put(f"blk.{i}.{theirs}.weight", t)
        if config["moe.layers"][i] and i != skip_experts_of:
            for m in ("gate", "up", "down"):
                put(f"blk.{i}.ffn_{m}_exps.weight", np.stack([weights[f"blk.{i}.exp.{e}.{m}"] for e in range(E)]))
    put("output_norm.weight", weights["output_norm"])
    if "output" in weights:
        put("output.weight", weights["output"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def assert_same_file(got, ref) -> None:
    with EdgeFile(got) as f, EdgeFile(ref) as r:
        assert [t.name for t in f.tensors] == [t.name for t in r.tensors]
        for t in r.tensors:
            assert f.tensor(t.name).dtype == t.dtype and tuple(f.tensor(t.name).shape) == tuple(t.shape), t.name
            np.testing.assert_array_equal(np.asarray(f.raw(t.name)), np.asarray(r.raw(t.name)), err_msg=t.name)
        for k, v in r.metadata.items():
            if k.startswith(("llm.", "moe.", "tokenizer.")) and k != "moe.recall":
                got_v = f.metadata[k]
                if isinstance(v, np.ndarray):
                    np.testing.assert_array_equal(got_v, v, err_msg=k)
                elif isinstance(v, float):
                    assert got_v == pytest.approx(v, rel=1e-6), k
                else:
                    assert got_v == v, k
        extra = {k for k in f.metadata if k.startswith(("llm.", "moe."))} - set(r.metadata)
        assert not extra


@pytest.mark.parametrize("arch", ARCHS)
def test_gguf_moe_equals_hf_path(tiny, tmp_path, arch):
    hf_dir, _, config, weights, ref = tiny(arch)
    path = tmp_path / f"{arch}.gguf"
    write_gguf(path, hf_dir, config, weights, arch)
    out = tmp_path / "m.edge"
    export(str(path), out, recipe="int4")
    assert_same_file(out, ref)


@pytest.mark.parametrize("arch", ARCHS)
def test_torch_moe_checkpoint_equals_hf_path(tiny, tmp_path, arch):
    """{"state_dict", "config"} saved with torch.save, read back with weights_only=True. The transformers
    families' state dicts are their in-memory ones (transformers 5: fused gate_up_proj / down_proj); SmallThinker
    has no transformers class, so its per-expert tensors come from the folder's safetensors."""
    import json

    from safetensors.torch import load_file

    hf_dir, hf, _, _, ref = tiny(arch)
    sd = hf.state_dict() if hf is not None else load_file(os.path.join(hf_dir, "model.safetensors"))
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    d = tmp_path / "pt"
    d.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(hf_dir, name), d)
    torch.save({"state_dict": dict(sd), "config": cfg}, d / "model.pt")
    out = tmp_path / "m.edge"
    export(str(d / "model.pt"), out, recipe="int4")
    assert_same_file(out, ref)


def test_gguf_moe_missing_experts_is_refused(tiny, tmp_path):
    hf_dir, _, config, weights, _ = tiny("qwen3moe")
    path = tmp_path / "broken.gguf"
    write_gguf(path, hf_dir, config, weights, "qwen3moe", skip_experts_of=2)
    with pytest.raises(ValueError, match=r"missing expert tensor: block 2, gate: 'blk.2.ffn_gate_exps.weight'"):
        export(str(path), tmp_path / "m.edge", recipe="int4")
    assert not os.path.exists(tmp_path / "m.edge")
