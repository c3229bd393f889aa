"""A Hugging Face SmallThinker folder -> a GGUF for llama.cpp's `smallthinker` architecture, streamed.

The llama.cpp side of bench/bench_moe_budget.py: the same folder edgeconv converts (the random
SmallThinker-4B-shaped model of models/random_moe.py) quantized to Q4_0 for llama.cpp.

    write_gguf(hf_dir, out_path, weights="q4_0") -> {"path", "n_params", "file_bytes", "bits_per_weight",
                                                    "hparams", "tensors": {...}}
    python bench/gguf_smallthinker.py HF_DIR OUT.gguf [--weights f32]
weights="f32" writes the matrices unquantized (a reference: llama.cpp's own quantizer can then make
the Q4_0 file, which is how the tests check that both give the same bytes).

Tensors (HF -> GGUF; GGUF shapes written numpy-style [rows, cols], i.e. ne reversed):
    model.embed_tokens.weight [V, H]                         -> token_embd.weight          Q4_0
    lm_head.weight [V, H] (untied only)                      -> output.weight              Q4_0
    model.norm.weight [H]                                    -> output_norm.weight         F32
    layers.i.input_layernorm / post_attention_layernorm      -> blk.i.attn_norm / ffn_norm F32
    layers.i.self_attn.{q,k,v,o}_proj                        -> blk.i.attn_{q,k,v,output}  Q4_0
    layers.i.block_sparse_moe.primary_router [E, H]          -> blk.i.ffn_gate_inp         F32
    layers.i.block_sparse_moe.experts.e.{up,gate} [F, H]     -> blk.i.ffn_{up,gate}_exps [E, F, H] Q4_0
    layers.i.block_sparse_moe.experts.e.down [H, F]          -> blk.i.ffn_down_exps [E, H, F]      Q4_0
No q/k permutation: llama.cpp runs SmallThinker with NeoX RoPE (rotate_half), as HF does.
Q4_0 is gguf.quants' numpy port of ggml's quantize_row_q4_0_ref (absmax block of 32, d = max/-8,
q = min(15, trunc(x/d + 8.5)), f16 d): the same bytes llama-quantize writes without an imatrix
(tests/test_bench_moe.py checks this against llama.cpp's own quantizer). Everything is read one
tensor (one expert matrix) at a time from the mmap-ed safetensors; only one layer's stacked expert
tensor (quantized: E·F·H·18/32 bytes, 21 MB for the 4B shape) is held in memory at once.

Hyperparameters (llama.cpp's smallthinker loader and convert_hf_to_gguf's SmallThinkerModel):
context_length, embedding_length, block_count, feed_forward_length = expert_feed_forward_length =
moe_ffn_hidden_size, head_count(_kv), key/value_length = head_dim, rope.freq_base, rms epsilon,
expert_count, expert_used_count, expert_gating_func (softmax if moe_primary_router_apply_softmax else
sigmoid; llama.cpp always renormalises the top-k weights, as HF does), attention.sliding_window when
any layer slides. llama.cpp cannot express arbitrary layouts: without SWA every layer uses RoPE; with
SWA, layers il % 4 == 0 are global NoPE layers and the others RoPE + sliding window. A folder whose
rope_layout / sliding_window_layout differ from that is refused (the GGUF would compute another model).
Tokenizer: edgeconv's reader of the folder's tokenizer files (edgeconv.sources.hf_tokenizer), so
llama.cpp gets the vocabulary, merges and special ids that edgerun gets.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
QK = 32          # Q4_0 block: 32 weights
Q4_0_BYTES = 18  # f16 d + 16 bytes of nibbles


def _tree_imports():
    """gguf, edgeconv's safetensors reader and tokenizer reader (from this tree, no _core needed)."""
    sys.path[:0] = [p for p in (os.path.join(REPO, "converter"),) if p not in sys.path]
    import gguf
    from edgeconv.sources.hf_tokenizer import read_hf_tokenizer
    from edgeconv.sources.safetensors_np import SafetensorsFile
    return gguf, read_hf_tokenizer, SafetensorsFile


class _Weights:
    """name -> float32 array, over one or several safetensors files (index json), loaded lazily."""

    def __init__(self, hf_dir: str, SafetensorsFile):
        idx = os.path.join(hf_dir, "model.safetensors.index.json")
        if os.path.exists(idx):
            with open(idx, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.files = [SafetensorsFile(os.path.join(hf_dir, fn)) for fn in files]
        self.where = {name: st for st in self.files for name in st.tensors}

    def names(self) -> set[str]:
        return set(self.where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.where[name].shape(name)

    def load(self, name: str) -> np.ndarray:
        return self.where[name].load(name)


def _cfg_int(cfg: dict, key: str) -> int:
    v = cfg[key]
    if isinstance(v, list):  # some SmallThinker configs give per-layer lists; llama.cpp takes one value
        if len(set(v)) != 1:
            raise ValueError(f"config {key}={v}: llama.cpp's smallthinker needs one value for all layers")
        v = v[0]
    return int(v)


def smallthinker_hparams(cfg: dict) -> dict:
    """The config values the GGUF needs, checked against what llama.cpp can run."""
    n_layers = int(cfg["num_hidden_layers"])
    n_head = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // n_head)
    rope = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta", rope.get("rope_theta", 10000.0))
    rope_layout = list(cfg.get("rope_layout") or [1] * n_layers)
    swa_layout = list(cfg.get("sliding_window_layout") or [0] * n_layers)
    swa = any(swa_layout)
    want_rope = [int(i % 4 != 0) for i in range(n_layers)] if swa else [1] * n_layers
    want_swa = [int(i % 4 != 0) for i in range(n_layers)] if swa else [0] * n_layers
    if [int(x) for x in rope_layout] != want_rope or [int(x) for x in swa_layout] != want_swa:
        raise ValueError(f"rope_layout {rope_layout} / sliding_window_layout {swa_layout}: llama.cpp's "
                         f"smallthinker runs rope {want_rope}, sliding {want_swa} for this model; the GGUF "
                         "would compute a different function")
    return {
        "n_layers": n_layers, "n_embd": int(cfg["hidden_size"]), "n_head": n_head,
        "n_head_kv": int(cfg.get("num_key_value_heads") or n_head), "head_dim": head_dim,
        "n_ctx_train": int(cfg.get("max_position_embeddings", 4096)), "rope_theta": float(theta),
        "rms_eps": float(cfg.get("rms_norm_eps", 1e-6)),
        "n_expert": _cfg_int(cfg, "moe_num_primary_experts"),
        "n_expert_used": _cfg_int(cfg, "moe_num_active_primary_experts"),
        "n_ff_exp": _cfg_int(cfg, "moe_ffn_hidden_size"),
        "softmax": bool(cfg.get("moe_primary_router_apply_softmax", False)),
        "sliding_window": int(cfg.get("sliding_window_size") or 0) if swa else 0,
        "tied": bool(cfg.get("tie_word_embeddings", False)),
        "vocab_size": int(cfg["vocab_size"]),
    }


def quantize_q4_0(x: np.ndarray) -> np.ndarray:
    """float32 [..., n] (n a multiple of 32) -> uint8 [..., n / 32 · 18], ggml's block_q4_0 rows."""
    import gguf

    if x.shape[-1] % QK:
        raise ValueError(f"Q4_0 needs rows that are a multiple of {QK}, got {x.shape[-1]}")
    return gguf.quants.quantize(np.ascontiguousarray(x, dtype=np.float32), gguf.GGMLQuantizationType.Q4_0)


def _tensor_plan(w: _Weights, hp: dict) -> list[tuple[str, str, tuple[int, ...], object]]:
    """(gguf name, 'q4_0'|'f32', float shape, source) in file order; source = an HF name or, for the
    stacked experts, a list of E HF names. Every HF tensor must be used exactly once."""
    L, E = hp["n_layers"], hp["n_expert"]
    plan = [("token_embd.weight", "q4_0", "model.embed_tokens.weight")]
    for i in range(L):
        p = f"model.layers.{i}."
        m = p + "block_sparse_moe."
        plan += [(f"blk.{i}.attn_norm.weight", "f32", p + "input_layernorm.weight"),
                 (f"blk.{i}.attn_q.weight", "q4_0", p + "self_attn.q_proj.weight"),
                 (f"blk.{i}.attn_k.weight", "q4_0", p + "self_attn.k_proj.weight"),
                 (f"blk.{i}.attn_v.weight", "q4_0", p + "self_attn.v_proj.weight"),
                 (f"blk.{i}.attn_output.weight", "q4_0", p + "self_attn.o_proj.weight"),
                 (f"blk.{i}.ffn_norm.weight", "f32", p + "post_attention_layernorm.weight"),
                 (f"blk.{i}.ffn_gate_inp.weight", "f32", m + "primary_router.weight")]
        for gg, hf in (("ffn_gate_exps", "gate"), ("ffn_up_exps", "up"), ("ffn_down_exps", "down")):
            plan.append((f"blk.{i}.{gg}.weight", "q4_0", [f"{m}experts.{e}.{hf}.weight" for e in range(E)]))
    plan.append(("output_norm.weight", "f32", "model.norm.weight"))
    if not hp["tied"]:
        plan.append(("output.weight", "q4_0", "lm_head.weight"))
    used = [s for _, _, src in plan for s in (src if isinstance(src, list) else [src])]
    missing = [s for s in used if s not in w.where]
    extra = sorted(w.names() - set(used) - ({"lm_head.weight"} if hp["tied"] else set()))
    if missing or extra:
        raise ValueError(f"tensors missing from the folder: {missing[:6]}; tensors this writer does not know: "
                         f"{extra[:6]}")
    out = []
    for name, kind, src in plan:
        shape = (len(src),) + w.shape(src[0]) if isinstance(src, list) else w.shape(src)
        out.append((name, kind, shape, src))
    return out


# edgeconv's tokenizer.pre names -> llama.cpp's (llama-vocab.cpp); they differ for two of them
LLAMA_PRE = {"gpt2": "gpt-2", "llama3": "llama-bpe", "smollm": "smollm", "qwen2": "qwen2", "default": "default"}


def _tokenizer_kv(gguf, writer, tok: dict) -> None:
    """edgeconv's tokenizer.* dict (docs/FORMAT.md) -> tokenizer.ggml.* keys."""
    writer.add_tokenizer_model(tok["tokenizer.model"])
    if tok["tokenizer.pre"] not in LLAMA_PRE:
        raise ValueError(f"pre-tokenizer {tok['tokenizer.pre']!r} has no known llama.cpp name")
    writer.add_tokenizer_pre(LLAMA_PRE[tok["tokenizer.pre"]])
    writer.add_token_list(tok["tokenizer.tokens"])
    writer.add_token_types([int(t) for t in tok["tokenizer.token_type"]])
    if "tokenizer.scores" in tok:
        writer.add_token_scores([float(s) for s in tok["tokenizer.scores"]])
    if tok.get("tokenizer.merges"):
        writer.add_token_merges(tok["tokenizer.merges"])
    for key, fn in (("bos_id", writer.add_bos_token_id), ("eos_id", writer.add_eos_token_id),
                    ("unk_id", writer.add_unk_token_id), ("pad_id", writer.add_pad_token_id)):
        if int(tok.get("tokenizer." + key, -1)) >= 0:
            fn(int(tok["tokenizer." + key]))
    writer.add_add_bos_token(bool(tok.get("tokenizer.add_bos", 0)))
    if tok.get("tokenizer.chat_template"):
        writer.add_chat_template(tok["tokenizer.chat_template"])


def write_gguf(hf_dir: str, out_path: str, weights: str = "q4_0", name: str | None = None) -> dict:
    if weights not in ("q4_0", "f32"):
        raise ValueError(f"weights must be q4_0 or f32, got {weights!r}")
    gguf, read_hf_tokenizer, SafetensorsFile = _tree_imports()
    with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or [""])[0]
    if arch != "SmallThinkerForCausalLM":
        raise ValueError(f"{hf_dir}: architecture {arch!r}, expected SmallThinkerForCausalLM")
    hp = smallthinker_hparams(cfg)
    w = _Weights(hf_dir, SafetensorsFile)
    plan = [(n, "f32" if weights == "f32" else k, sh, src) for n, k, sh, src in _tensor_plan(w, hp)]
    tok = read_hf_tokenizer(hf_dir, cfg, hp["vocab_size"])
    if not tok:
        raise ValueError(f"{hf_dir}: no tokenizer files")

    tmp = out_path + ".tmp"
    wr = gguf.GGUFWriter(tmp, "smallthinker")
    wr.add_name(name or os.path.basename(os.path.normpath(hf_dir)))
    wr.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0 if weights == "q4_0" else gguf.LlamaFileType.ALL_F32)
    wr.add_quantization_version(gguf.GGML_QUANT_VERSION)
    wr.add_context_length(hp["n_ctx_train"])
    wr.add_embedding_length(hp["n_embd"])
    wr.add_block_count(hp["n_layers"])
    wr.add_feed_forward_length(hp["n_ff_exp"])
    wr.add_head_count(hp["n_head"])
    wr.add_head_count_kv(hp["n_head_kv"])
    wr.add_key_length(hp["head_dim"])
    wr.add_value_length(hp["head_dim"])
    wr.add_rope_dimension_count(hp["head_dim"])
    wr.add_rope_freq_base(hp["rope_theta"])
    wr.add_layer_norm_rms_eps(hp["rms_eps"])
    wr.add_expert_count(hp["n_expert"])
    wr.add_expert_used_count(hp["n_expert_used"])
    wr.add_expert_feed_forward_length(hp["n_ff_exp"])
    wr.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX if hp["softmax"] else gguf.ExpertGatingFuncType.SIGMOID)
    if hp["sliding_window"]:
        wr.add_sliding_window(hp["sliding_window"])
    _tokenizer_kv(gguf, wr, tok)

    summary = {}
    for gname, kind, shape, _src in plan:
        if kind == "q4_0":
            if shape[-1] % QK:
                raise ValueError(f"{gname} {shape}: rows not a multiple of {QK}, Q4_0 impossible")
            bshape = shape[:-1] + (shape[-1] // QK * Q4_0_BYTES,)
            wr.add_tensor_info(gname, bshape, np.dtype(np.uint8), int(np.prod(bshape)),
                               raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        else:
            wr.add_tensor_info(gname, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
        summary[gname] = {"type": kind, "shape": list(shape)}
    try:
        wr.write_header_to_file()
        wr.write_kv_data_to_file()
        wr.write_ti_data_to_file()
        for gname, kind, shape, src in plan:
            if isinstance(src, list):  # stacked experts: quantize one expert matrix at a time
                q = kind == "q4_0"
                data = np.empty(shape[:-1] + (shape[-1] // QK * Q4_0_BYTES,) if q else shape, np.uint8 if q else np.float32)
                for e, s in enumerate(src):
                    data[e] = quantize_q4_0(w.load(s)) if q else w.load(s)
            elif kind == "q4_0":
                data = quantize_q4_0(w.load(src))
            else:
                data = np.ascontiguousarray(w.load(src), dtype=np.float32)
            wr.write_tensor_data(data)
            del data
        wr.close()
        os.replace(tmp, out_path)
    except BaseException:
        wr.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    n_params = sum(int(np.prod(v["shape"])) for v in summary.values())
    size = os.path.getsize(out_path)
    return {"path": out_path, "n_params": n_params, "file_bytes": size, "bits_per_weight": size * 8 / n_params,
            "hparams": hp, "tensors": summary}


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="HF SmallThinker folder -> Q4_0 GGUF for llama.cpp (see module doc)")
    ap.add_argument("hf_dir")
    ap.add_argument("out")
    ap.add_argument("--weights", default="q4_0", choices=["q4_0", "f32"])
    a = ap.parse_args(argv)
    res = write_gguf(a.hf_dir, a.out, a.weights)
    print(f"{a.out}: {res['n_params'] / 1e6:.1f} M params, {res['file_bytes'] / 1e6:.1f} MB, "
          f"{res['bits_per_weight']:.3f} bits/weight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
