"""nl4_32, the non-uniform 4-bit dtype (issue 11 §2): 16-entry fixed table (GGML IQ4_NL's), f16 scale per 32.

* The block is GGML IQ4_NL byte for byte: gguf's own decoder, edgeconv's and the C++ reference agree on
  random blocks, so a GGUF IQ4_NL tensor is copied, not re-quantized.
* A GGUF with IQ4_NL tensors (written with the gguf package; gguf.quants cannot quantize IQ4_NL, so the
  blocks come from edgeconv's quantizer) imports bit for bit under "keep" and "nl4", and edgerun's logits
  equal the PyTorch reference on gguf.quants.dequantize'd weights within the int-dot tolerance.
* The converter round trip (float model -> nl4 -> logits) and the int4nl recipe's per-tensor choice: the
  chosen dtype's measured error is the lower one, and the file has the size of the all-nl4 file.
The kernels themselves are tested with every other dtype (tests/test_kernels_simd.py, csrc/tests)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import edgerun
from edgerun import _core
from edgeconv import quant as Q
from edgeconv.export import export
from edgeconv.format import EdgeFile
from edgeconv.quant import nl4
from edgeconv.quant.choose import choose_dtype
from edgeconv.sources.gguf import GGUF_EXACT
from models.llama import Reference
from models.tiny import make_tiny
from gguf_import_check import check_import, with_encoders
from test_runtime import TOKENS, TOL_INT_DOT, rel_err

gguf = pytest.importorskip("gguf")
IQ4_NL = gguf.GGMLQuantizationType.IQ4_NL


def _random_blocks(rng, rows, nb):
    blk = rng.integers(0, 256, (rows, nb, 18), dtype=np.uint8)
    d = (rng.standard_normal((rows, nb)) * np.exp2(rng.integers(-14, 4, (rows, nb)))).astype(np.float16)
    d[rng.random((rows, nb)) < 0.1] = 0
    blk[:, :, 0:2] = d.view(np.uint8).reshape(rows, nb, 2)
    return blk.reshape(rows, nb * 18)


def test_iq4nl_block_is_nl4_32():
    assert GGUF_EXACT["IQ4_NL"] == "nl4_32"
    assert gguf.GGML_QUANT_SIZES[IQ4_NL] == (Q.DTYPES["nl4_32"].block, Q.DTYPES["nl4_32"].block_bytes)
    rng = np.random.default_rng(0)
    b = _random_blocks(rng, 7, 5)
    theirs = gguf.quants.dequantize(b, IQ4_NL)
    ours = Q.dequantize(b, "nl4_32", (7, 160))
    np.testing.assert_array_equal(ours, theirs)
    for r in range(7):
        np.testing.assert_array_equal(_core.dequantize(Q.DTYPES["nl4_32"].id, b[r].tobytes(), 160, level="ref"),
                                      ours[r])
    # the table, one code at a time (d = 1): code c of element j sits in byte j % 16, nibble j // 16
    blk = np.zeros(18, np.uint8)
    blk[0:2] = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    blk[2:] = np.arange(16, dtype=np.uint8) | (np.arange(16, dtype=np.uint8)[::-1] << 4)
    y = _core.dequantize(Q.DTYPES["nl4_32"].id, blk.tobytes(), 32, level="ref")
    np.testing.assert_array_equal(y, np.concatenate([nl4.VALUES, nl4.VALUES[::-1]]))


def test_nl4_beats_int4_32_on_gaussian_at_equal_size():
    w = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    assert Q.row_bytes("nl4_32", 512) == Q.row_bytes("int4_32", 512)
    dt, errs = choose_dtype(w, ("int4_32", "nl4_32"))
    assert dt == "nl4_32" and errs["nl4_32"] < 0.9 * errs["int4_32"], errs
    # values exactly on an int4_32 grid: int4_32 reconstructs them exactly and wins
    g = (np.random.default_rng(2).integers(-8, 8, (8, 256)) * np.float32(0.25)).astype(np.float32)
    g[:, ::32] = -2.0  # every block reaches code -8
    dt, errs = choose_dtype(g, ("nl4_32", "int4_32"))
    assert dt == "int4_32" and errs["int4_32"] == 0.0 < errs["nl4_32"], errs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = {}
    for arch in ("llama", "qwen2"):
        d = tmp_path_factory.mktemp(arch)
        model, config, weights = make_tiny(arch, seed=5, dir=d)
        out[arch] = (str(d), model, config, weights)
    return out


@pytest.mark.parametrize("recipe", ["keep", "nl4"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_iq4nl_gguf_imports_bit_exact(tiny, tmp_path, monkeypatch, arch, recipe):
    with_encoders(monkeypatch, {IQ4_NL: lambda w: Q.quantize(w, "nl4_32")})  # edgeconv's nl4_32 blocks
    assert check_import(tmp_path, tiny[arch], IQ4_NL, "nl4_32", recipe=recipe, permute=(arch == "llama")) >= 6


def test_float_model_round_trip_and_int4nl_choice(tiny, tmp_path):
    folder, model, config, weights = tiny["llama"]
    out_nl4, out_mix = tmp_path / "nl4.edge", tmp_path / "mix.edge"
    r_nl4 = export(folder, out_nl4, recipe="nl4")
    r_mix = export(folder, out_mix, recipe="int4nl")
    assert r_mix.file_size == r_nl4.file_size  # equal-size candidates: the choice never changes the size
    assert any(n.startswith("chosen by measured error") for n in r_mix.notes), r_mix.notes
    for out in (out_nl4, out_mix):
        ref_w = {}
        with EdgeFile(out) as f:
            for name, w in weights.items():
                t = f.tensor(name)
                ref_w[name] = Q.dequantize(np.asarray(f.raw(name)), t.dtype, w.shape) if t.dtype != "f32" else w
                if out == out_nl4 and w.ndim == 2 and w.shape[1] % 32 == 0:
                    assert t.dtype == "nl4_32", name
                if out == out_mix and w.ndim == 2 and w.shape[1] % 32 == 0:
                    assert t.dtype in ("nl4_32", "int4_32"), name
                    want, _ = choose_dtype(w, ("nl4_32", "int4_32"))
                    assert t.dtype == want, name
        got = edgerun.Model(str(out), threads=2).logits(TOKENS)
        ref = Reference(config, ref_w).logits(torch.tensor(TOKENS)).numpy()
        assert rel_err(got, ref) < TOL_INT_DOT
