"""Exact import of already-quantized GGUF tensors (issue 11 §1): Q4_0 -> int4_32, Q4_1 -> int4a_32 and
Q8_0 -> q8_0 are copied block for block (rows un-permuted where llama.cpp permuted q/k for RoPE), never
dequantized and re-quantized. Tiny random models are written as GGUF with the gguf package; the .edge bytes
must equal gguf.quants.quantize's blocks, and edgerun's logits must equal the PyTorch reference (models/) on
gguf.quants.dequantize'd weights within the runtime's declared int-dot tolerance. The real SmolLM2 GGUF
(slow): every Q4_1 / Q8_0 tensor is kept exactly, the file is far smaller than the q8 copy, and the greedy
chat answer to 2+2 contains 4."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import edgerun
from edgeconv.archs import plan_tensors
from edgeconv.cli import main as edgeconv_main
from edgeconv.sources import open_source
from edgeconv.export import export, permute_rope_rows, stored_dtypes
from edgeconv.format import EdgeFile
from edgeconv.recipes import get_recipe
from edgeconv.sources.gguf import GGUF_EXACT
from models.llama import Reference
from models.tiny import make_tiny
from test_converter import needs_smollm2, smollm2_gguf, write_gguf
from test_runtime import TOKENS, TOL_INT_DOT, rel_err

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType
QTYPES = {"Q4_0": Q.Q4_0, "Q4_1": Q.Q4_1, "Q8_0": Q.Q8_0}
PERMUTED = {"blk.{i}.attn_q": "llm.n_heads", "blk.{i}.attn_k": "llm.n_kv_heads"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{arch: (folder, hf model, our llm.* config, our float32 weights)}; llama's GGUF rows are permuted."""
    out = {}
    for arch in ("llama", "qwen2"):
        d = tmp_path_factory.mktemp(arch)
        model, config, weights = make_tiny(arch, seed=3, dir=d)
        out[arch] = (str(d), model, config, weights)
    return out


def _quantizable(w: np.ndarray) -> bool:
    return w.ndim == 2 and w.shape[1] % 32 == 0  # what write_gguf stores quantized (the rest stays F32)


def _heads(name: str, config) -> int | None:
    for pat, key in PERMUTED.items():
        pre, post = pat.split("{i}")
        if name.startswith(pre) and name.endswith(post) and name[len(pre):-len(post)].isdigit():
            return config[key]
    return None


def test_gguf_block_layouts_are_edge_dtypes():
    """The premise: GGUF's block of each exact type has the .edge dtype's bytes (csrc/quant.h): dequantizing
    gguf's bytes with edgeconv's decoder (the C++ reference's twin, tests/test_quant.py) gives gguf's values."""
    from edgeconv.quant import DTYPES, dequantize

    w = np.random.default_rng(0).standard_normal((5, 96)).astype(np.float32)
    for qname, qt in QTYPES.items():
        dt = GGUF_EXACT[qname]
        blocks = gguf.quants.quantize(w, qt)
        assert gguf.GGML_QUANT_SIZES[qt] == (DTYPES[dt].block, DTYPES[dt].block_bytes), qname
        np.testing.assert_array_equal(dequantize(blocks, dt, w.shape), gguf.quants.dequantize(blocks, qt),
                                      err_msg=qname)


@pytest.mark.parametrize("qname", list(QTYPES))
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_keep_copies_blocks_and_matches_reference(tiny, tmp_path, arch, qname):
    folder, model, config, weights = tiny[arch]
    qt = QTYPES[qname]
    g = str(tmp_path / "m.gguf")
    write_gguf(folder, model, g, permute=(arch == "llama"), qtype=qt)
    out = tmp_path / "m.edge"
    res = export(g, out, recipe="keep")
    assert any("kept their stored blocks exactly" in n for n in res.notes), res.notes
    reader = gguf.GGUFReader(g)
    stored = {t.name: t for t in reader.tensors}
    src_name = _source_names(g)
    ref_w = {}
    n_exact = 0
    with EdgeFile(out) as f:
        assert f.metadata["quant.recipe"] == "keep"
        for name, w in weights.items():
            t = f.tensor(name)
            if w.ndim == 1:
                assert t.dtype == "f32", name  # norms / biases unchanged
                np.testing.assert_array_equal(f.array(name), w, err_msg=name)
                ref_w[name] = w
                continue
            if not _quantizable(w):  # stored F32 in the GGUF (112 columns): not quantized yet -> the
                assert t.dtype == "f16", name  # fallback q8_0, which does not fit 112 columns -> f16
                f16 = w.astype(np.float16).astype(np.float32)
                np.testing.assert_array_equal(f.array(name), f16, err_msg=name)
                ref_w[name] = f16
                continue
            assert t.dtype == GGUF_EXACT[qname], name
            ours = np.array(f.raw(name)).reshape(w.shape[0], -1)
            # byte for byte the blocks gguf writes for the (un-permuted) weight ...
            np.testing.assert_array_equal(ours, gguf.quants.quantize(w, qt), err_msg=name)
            # ... and the GGUF's own stored blocks, modulo llama.cpp's RoPE row permutation
            src = np.asarray(stored[src_name[name]].data).reshape(w.shape[0], -1)
            heads = _heads(name, config) if arch == "llama" else None
            np.testing.assert_array_equal(permute_rope_rows(ours, heads) if heads else ours, src, err_msg=name)
            if heads:
                assert not np.array_equal(ours, src), name  # the permutation really was undone
            n_exact += 1
            ref_w[name] = gguf.quants.dequantize(gguf.quants.quantize(w, qt), qt)
    assert n_exact >= 6
    got = edgerun.Model(str(out), threads=2).logits(TOKENS)
    ref = Reference(config, ref_w).logits(torch.tensor(TOKENS)).numpy()
    # Q4_0 / Q4_1 / Q8_0 are int-dot types: activations are quantized to int8 blocks (test_runtime.py)
    assert rel_err(got, ref) < TOL_INT_DOT


def _source_names(gguf_path) -> dict[str, str]:
    """{our tensor name: GGUF tensor name} from the architecture's tensor table."""
    with open_source(str(gguf_path)) as src:
        plan, _ = plan_tensors(src.arch, src.hparams, src.shapes, src.naming, src.tie_config)
    return {p.name: p.src for p in plan}


def test_other_recipes_copy_only_their_own_dtype(tiny, tmp_path):
    """q8 on a Q8_0 GGUF copies the blocks (re-quantizing on the same grid could only move values); int4 on a
    Q4_0 GGUF copies only the tensors it gives int4_32 (embedding/head) and re-quantizes the rest, saying so;
    keep:int4 keeps every Q4_0 tensor."""
    folder, model, config, weights = tiny["qwen2"]
    g8 = str(tmp_path / "q8.gguf")
    write_gguf(folder, model, g8, permute=False, qtype=Q.Q8_0)
    export(g8, tmp_path / "q8.edge", recipe="q8")
    with EdgeFile(tmp_path / "q8.edge") as f:
        for name, w in weights.items():
            if _quantizable(w):
                np.testing.assert_array_equal(np.array(f.raw(name)).reshape(w.shape[0], -1),
                                              gguf.quants.quantize(w, Q.Q8_0), err_msg=name)
    g4 = str(tmp_path / "q4.gguf")
    write_gguf(folder, model, g4, permute=False, qtype=Q.Q4_0)
    res = export(g4, tmp_path / "i4.edge", recipe="int4")
    assert any("dequantized and re-quantized" in n and "--quant keep" in n for n in res.notes), res.notes
    assert res.dtypes["tok_embd"] == "int4_32" and res.dtypes["blk.0.attn_q"] == "int4_64"
    with EdgeFile(tmp_path / "i4.edge") as f:
        np.testing.assert_array_equal(np.array(f.raw("tok_embd")).reshape(weights["tok_embd"].shape[0], -1),
                                      gguf.quants.quantize(weights["tok_embd"], Q.Q4_0))
    res = export(g4, tmp_path / "k4.edge", recipe="keep:int4")
    assert {res.dtypes[n] for n, w in weights.items() if _quantizable(w)} == {"int4_32"}
    assert res.dtypes["blk.0.ffn_down"] == "f16"  # stored F32 (112 columns): int4's choice, fitted to 112
    assert res.recipe == "keep:int4"


def test_keep_without_stored_blocks_is_the_fallback_recipe(tiny, tmp_path):
    """An HF float folder stores nothing in a block type: keep = q8 for every weight; a transposed tensor's
    blocks cannot be copied (stored_dtypes leaves it out, with a note)."""
    folder = tiny["qwen2"][0]
    a = export(folder, tmp_path / "a.edge", recipe="keep")
    b = export(folder, tmp_path / "b.edge", recipe="q8")
    assert a.dtypes == b.dtypes and any("fallback" in n for n in a.notes), a.notes
    with EdgeFile(tmp_path / "a.edge") as fa, EdgeFile(tmp_path / "b.edge") as fb:
        for t in fb.tensors:
            np.testing.assert_array_equal(fa.raw(t.name), fb.raw(t.name), err_msg=t.name)

    class Src:
        def stored_dtype(self, name):
            return "int4a_32"

    class P:
        def __init__(self, name, transpose):
            self.name, self.src, self.transpose, self.derived = name, name, transpose, False

    got, notes = stored_dtypes(Src(), [P("x", False), P("y", True)])
    assert got == {"x": "int4a_32"} and len(notes) == 1 and "y" in notes[0] and "transpose" in notes[0]
    with pytest.raises(ValueError, match="plain recipe"):
        get_recipe("keep:keep")
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("keep:q5")


def test_export_help_states_the_rule(capsys):
    with pytest.raises(SystemExit):
        edgeconv_main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "keep:RECIPE" in text and "Q4_1 -> int4a_32" in text and "double rounding" in text


@needs_smollm2
@pytest.mark.slow
def test_smollm2_keep_is_exact_and_answers(tmp_path):
    from edgerun.chat import template_for

    g = smollm2_gguf()
    keep, q8 = tmp_path / "smol.keep.edge", tmp_path / "smol.q8.edge"
    res = export(g, keep, recipe="keep")
    export(g, q8, recipe="q8")
    reader = gguf.GGUFReader(g)
    n = {"Q4_1": 0, "Q8_0": 0}
    ours_of = {v: k for k, v in _source_names(g).items()}
    with EdgeFile(keep) as f:
        hp = f.metadata
        for t in reader.tensors:
            kind = t.tensor_type.name
            if kind not in n:
                continue
            ours_name = ours_of[t.name]
            info = f.tensor(ours_name)
            assert info.dtype == GGUF_EXACT[kind], t.name
            ours = np.array(f.raw(ours_name)).reshape(info.shape[0], -1)
            heads = _heads(ours_name, hp)
            np.testing.assert_array_equal(permute_rope_rows(ours, heads) if heads else ours,
                                          np.asarray(t.data), err_msg=t.name)
            n[kind] += 1
        assert f.verify() == []
    assert n == {"Q4_1": 210, "Q8_0": 1}
    size_keep, size_q8 = os.path.getsize(keep), os.path.getsize(q8)
    print(f"keep {size_keep} bytes, q8 {size_q8} bytes, GGUF {os.path.getsize(g)} bytes")
    assert size_keep < 0.72 * size_q8 and size_keep <= os.path.getsize(g)
    assert res.bits_per_weight < 6.0
    m = edgerun.Model(str(keep), threads=2)
    prompt = template_for(m).render([{"role": "user", "content": "What is 2+2? Answer with a number."}])
    reply = "".join(m.generate(m.tokenize(prompt, add_bos=False), 32, temperature=0))
    print("reply:", repr(reply))
    assert "4" in reply
