"""What the exact-GGUF-import tests of the block dtypes the gguf package cannot quantize share (test_nl4.py:
IQ4_NL, test_kquant.py: Q5_0 / Q4_K / Q6_K):

  with_encoders(monkeypatch, {qtype: encode})   gguf.quants.quantize with encoders for those qtypes
                                                 (encode: float32 [rows, cols] -> uint8 blocks [rows, bytes])
  check_import(tmp_path, tiny, qtype, dtype, …)  a tiny HF model written as GGUF with its 2-D weights in
                                                 qtype, exported with `recipe`: every such tensor is `dtype`
                                                 and byte-equal to the GGUF's (llama.cpp's q/k RoPE rows
                                                 un-permuted), and edgerun's logits equal the PyTorch
                                                 reference (models/) on gguf.quants.dequantize'd weights
                                                 within the int-dot tolerance. Returns the exact tensors.
"""
from __future__ import annotations

import numpy as np
import torch

import edgerun
from edgeconv.export import export, permute_rope_rows
from edgeconv.format import EdgeFile
from models.llama import Reference
from test_converter import write_gguf
from test_gguf_exact import _heads, _quantizable, _source_names
from test_runtime import TOKENS, TOL_INT_DOT, rel_err


def with_encoders(monkeypatch, encoders) -> None:
    import gguf

    orig = gguf.quants.quantize

    def quantize(data, qtype):
        if qtype in encoders:
            a = np.asarray(data, np.float32)
            return encoders[qtype](a.reshape(a.shape[0], -1)).reshape(a.shape[0], -1)
        return orig(data, qtype)

    monkeypatch.setattr(gguf.quants, "quantize", quantize)


def check_import(tmp_path, tiny, qtype, dtype: str, recipe: str = "keep", permute: bool = True) -> int:
    """tiny = (HF folder, HF model, llm.* config, float32 weights); permute: llama.cpp's q/k row order."""
    import gguf

    folder, model, config, weights = tiny
    g = str(tmp_path / "m.gguf")
    write_gguf(folder, model, g, permute=permute, qtype=qtype)
    out = tmp_path / "m.edge"
    res = export(g, out, recipe=recipe)
    assert any("kept their stored blocks exactly" in n for n in res.notes), res.notes
    stored = {t.name: t for t in gguf.GGUFReader(g).tensors}
    src_name = _source_names(g)
    ref_w, n_exact = {}, 0
    with EdgeFile(out) as f:
        for name, w in weights.items():
            if w.ndim == 1 or not _quantizable(w):  # stored F32 in the GGUF: f32 / f16 as in test_gguf_exact
                ref_w[name] = f.array(name).astype(np.float32).reshape(w.shape)
                continue
            assert f.tensor(name).dtype == dtype, name
            ours = np.array(f.raw(name)).reshape(w.shape[0], -1)
            src = np.asarray(stored[src_name[name]].data).reshape(w.shape[0], -1)
            heads = _heads(name, config) if permute else None
            np.testing.assert_array_equal(permute_rope_rows(ours, heads) if heads else ours, src, err_msg=name)
            ref_w[name] = gguf.quants.dequantize(ours, qtype).reshape(w.shape)  # gguf's decoder, not ours
            n_exact += 1
    got = edgerun.Model(str(out), threads=2).logits(TOKENS)
    ref = Reference(config, ref_w).logits(torch.tensor(TOKENS)).numpy()
    assert rel_err(got, ref) < TOL_INT_DOT
    return n_exact
