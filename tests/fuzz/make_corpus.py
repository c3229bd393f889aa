"""Writes the fuzz seed corpora (tests/fuzz/corpus/<target>/) and the tokenizer files of fuzz_tokenizer
(tests/fuzz/data/), all tiny and deterministic. Run from the repository root after a developer build:

    python tests/fuzz/make_corpus.py

The committed files are its output; re-running rewrites the seeds (regress-* inputs, the crashes found
and fixed, are left alone). Each seed is a small *valid* input of its format, so the fuzzers start
from files that get past the magic and the first checks:
  edge_file/   a dense model (q8_0, tied head), a MoE model (concat:q8_0 experts), a tokenizer-only file
  tokenizer/   texts for each mode of csrc/fuzz/fuzz_tokenizer.cpp
  blob_decode/ one input per layout kind for csrc/fuzz/fuzz_blob_decode.cpp
  gguf/        the tiny llama as GGUF (Q8_0 and Q4_0 matrices, f32 norms)
  pt/          its state dict + config as a torch.save zip (f16)
  safetensors/ its model.safetensors (f16)
  hf_config/   its config.json, and a qwen3 one
  onnx/        a two-node ONNX graph (MatMul + Add) with f32 initializers
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "converter"), ROOT, os.path.join(ROOT, "tests")]

# The smallest model the runtime accepts (d_model >= 32) with the smallest tiny tokenizer (3 specials + 256 bytes).
TINY = dict(hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, vocab_size=264, max_position_embeddings=64,
            tie_word_embeddings=True)


def _clear(target: str) -> str:
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for p in glob.glob(os.path.join(d, "*")):
        if not os.path.basename(p).startswith("regress-"):
            os.remove(p)
    return d


def _put(target: str, name: str, data: bytes) -> None:
    with open(os.path.join(FUZZ, "corpus", target, name), "wb") as f:
        f.write(data)


def tokenizer_files(tmp: str) -> None:
    """tok_gpt2.edge (the tiny byte-level BPE) and tok_spm.edge (SentencePiece-style, byte fallback)."""
    from edgeconv.sources.hf_tokenizer import read_hf_tokenizer
    from edgeconv.writer import EdgeWriter
    from models.tiny_tokenizer import make_tokenizer, write_tokenizer

    data = os.path.join(FUZZ, "data")
    os.makedirs(data, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    write_tokenizer(make_tokenizer(300), tmp)
    keys = read_hf_tokenizer(tmp, {"bos_token_id": 0, "eos_token_id": 2}, 300)
    keys.pop("tokenizer.chat_template", None)
    with EdgeWriter(os.path.join(data, "tok_gpt2.edge"), bits_per_weight_key=None) as w:
        for k, v in keys.items():
            w.add_metadata(k, v)
        w.begin()
    pieces = ["\u2581the", "\u2581a", "th", "he", "in", "\u2581t", "er", "an", "\u2581of", "on", "\u2581\u2581"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces + list("abcdefghinorst")
    types = [2, 3, 3] + [6] * 256 + [1] * (len(pieces) + 14)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces) + 14)]
    with EdgeWriter(os.path.join(data, "tok_spm.edge"), bits_per_weight_key=None) as w:
        w.add_metadata("tokenizer.model", "llama")
        w.add_metadata("tokenizer.tokens", tokens)
        w.add_metadata("tokenizer.token_type", types)
        w.add_metadata("tokenizer.scores", np.asarray(scores, np.float32))
        w.add_metadata("tokenizer.bos_id", 1)
        w.add_metadata("tokenizer.eos_id", 2)
        w.add_metadata("tokenizer.unk_id", 0)
        w.add_metadata("tokenizer.add_bos", 1)
        w.begin()


def model_seeds(tmp: str) -> None:
    from test_converter import write_gguf

    from edgeconv.export import export
    from models.tiny import make_tiny

    hf = os.path.join(tmp, "hf")
    model, _, _ = make_tiny("llama", seed=5, dir=hf, **TINY)
    # edge/
    _clear("edge_file")
    export(hf, os.path.join(tmp, "dense.edge"), recipe="q8", progress=False, log=lambda m: None)
    _put("edge_file", "dense_q8.edge", open(os.path.join(tmp, "dense.edge"), "rb").read())
    _put("edge_file", "tokenizer_only.edge", open(os.path.join(FUZZ, "data", "tok_gpt2.edge"), "rb").read())
    moe = os.path.join(tmp, "moe")
    make_tiny("qwen3moe", seed=5, dir=moe, hidden_size=32, intermediate_size=32, moe_intermediate_size=32,
              num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16, vocab_size=264,
              num_experts=4, num_experts_per_tok=2, mlp_only_layers=[], max_position_embeddings=64,
              tie_word_embeddings=True)
    export(moe, os.path.join(tmp, "moe.edge"), recipe="q8", expert_variants="q8_0", progress=False, log=lambda m: None)
    _put("edge_file", "moe_q8.edge", open(os.path.join(tmp, "moe.edge"), "rb").read())
    # gguf/
    import gguf

    _clear("gguf")
    for qt, name in ((gguf.GGMLQuantizationType.Q8_0, "tiny_q8_0.gguf"), (gguf.GGMLQuantizationType.Q4_0, "tiny_q4_0.gguf")):
        p = os.path.join(tmp, name)
        write_gguf(hf, model, p, permute=True, qtype=qt)
        _put("gguf", name, open(p, "rb").read())
    # pt/, safetensors/, hf_config/
    import torch

    cfg = json.load(open(os.path.join(hf, "config.json")))
    sd = {k: v.to(torch.float16) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    _clear("pt")
    torch.save({"state_dict": sd, "config": cfg}, os.path.join(tmp, "m.pt"))
    _put("pt", "tiny_f16.pt", open(os.path.join(tmp, "m.pt"), "rb").read())
    from safetensors.torch import save_file

    _clear("safetensors")
    save_file(sd, os.path.join(tmp, "m.safetensors"))
    _put("safetensors", "tiny_f16.safetensors", open(os.path.join(tmp, "m.safetensors"), "rb").read())
    _clear("hf_config")
    _put("hf_config", "llama.json", json.dumps(cfg, indent=1).encode())
    q3 = dict(cfg, model_type="qwen3", architectures=["Qwen3ForCausalLM"], rope_theta=1000000.0)
    _put("hf_config", "qwen3.json", json.dumps(q3).encode())
    # the fixed parts of the HF folder the safetensors / hf_config targets complete
    fixed = os.path.join(FUZZ, "data", "hf_tiny")
    shutil.rmtree(fixed, ignore_errors=True)
    os.makedirs(fixed)
    for n in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(hf, n), fixed)
    shutil.copy(os.path.join(tmp, "m.safetensors"), os.path.join(fixed, "model.safetensors"))


def onnx_seed() -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    _clear("onnx")
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "b")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
                          "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgerun-fuzz")
    onnx.checker.check_model(m)
    _put("onnx", "matmul_add.onnx", m.SerializeToString())


def small_seeds() -> None:
    _clear("tokenizer")
    texts = [b"Hello world! How are you today?", "caf\u00e9 \u2014 na\u00efve \u65e5\u672c\u8a9e 123456".encode(),
             b"<|im_start|>user\nhi<|im_end|>\n", b"\xff\xfe bad \xc3 utf8 \xe2\x82", b"   spaces\t\ttabs\r\n\n 1.5"]
    for i, t in enumerate(texts):
        for mode in (0, 1, 4 + i % 4, 8):  # gpt2, spm, a pre-tokenizer, gpt2 with special parsing
            _put("tokenizer", f"text{i}_mode{mode}", bytes([mode]) + t)
    _put("tokenizer", "ids", bytes([2]) + struct.pack("<8i", 0, 1, 2, 3, 258, 299, -1, 1 << 30))
    spec = b"\x06\x00\x02\xff\xff" + b"3<|end|>\n" + b"".join(b"1" + bytes([c]) + b"\n" for c in b"abc ") + b"1ab\nMa b\n\nabc cab"
    _put("tokenizer", "spec_gpt2", bytes([3]) + spec)
    _put("tokenizer", "spec_llama", bytes([3]) + b"\x01\x00\x01\x02\xff" + b"2<unk>\n3<s>\n6<0x41>\n1\xe2\x96\x81a\n1a\n\nA a")
    _clear("blob_decode")
    rng = np.random.default_rng(1)
    f16 = lambda n: rng.standard_normal(n).astype(np.float16).tobytes()
    for pick, name in ((0, "planes4"), (1, "planes4_msb"), (3, "concat0"), (5, "concat2"), (9, "concat6")):
        _put("blob_decode", name, bytes([pick, 3, 3]) + f16(256) + rng.bytes(512))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_files(os.path.join(tmp, "tok"))
        model_seeds(tmp)
    onnx_seed()
    small_seeds()
    for d in sorted(glob.glob(os.path.join(FUZZ, "corpus", "*"))):
        files = glob.glob(os.path.join(d, "*"))
        print(f"{os.path.relpath(d, ROOT)}: {len(files)} files, {sum(os.path.getsize(p) for p in files)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
