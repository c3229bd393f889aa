"""q5_0 / q4_k / q6_k: GGML's Q5_0 / Q4_K / Q6_K blocks as .edge dtypes (issue 11 §1), imported exactly.

* The blocks are GGML's byte for byte: the gguf package's decoder (gguf.quants, the independent oracle),
  edgeconv's numpy dequantizer and the C++ reference agree bit for bit on random blocks (every field
  random, f16 fields finite), with hand-built blocks pinning where each element lives.
* The reference gemm (int-dot against block_q8x) is within its declared bound of the float64 product of
  the dequantized weights and activations, rows × K at awkward sizes; gemm_t likewise (test_backward_kernels).
* A tiny llama GGUF whose 2-D weights are Q5_0 / Q4_K / Q6_K imports under --quant keep with every such
  tensor byte-equal (un-permuted q/k rows included) and edgerun's logits equal the PyTorch reference on
  gguf.quants.dequantize'd weights within the int-dot tolerance.
* Import-only: edgeconv refuses to quantize floats to them, naming the dtypes that it can quantize to.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgerun import _core
from edgeconv import quant as Q
from edgeconv.quant import _blocks, kquant
from edgeconv.sources.gguf import GGUF_EXACT
from models.tiny import make_tiny
from gguf_import_check import check_import, with_encoders

gguf = pytest.importorskip("gguf")
QT = gguf.GGMLQuantizationType
TYPES = {"q5_0": QT.Q5_0, "q4_k": QT.Q4_K, "q6_k": QT.Q6_K}
F16_AT = {"q5_0": (0,), "q4_k": (0, 2), "q6_k": (208,)}  # offsets of the f16 fields in a block
U = 2.0**-24


def random_blocks(rng, dtype, rows, nb, scale=1.0):
    """uint8 [rows, nb * block_bytes]: random bytes, finite f16 fields (some zero) of magnitude ~scale."""
    bb = Q.DTYPES[dtype].block_bytes
    blk = rng.integers(0, 256, (rows, nb, bb), dtype=np.uint8)
    for off in F16_AT[dtype]:
        d = (rng.standard_normal((rows, nb)) * scale * np.exp2(rng.integers(-14, 4, (rows, nb)))).astype(np.float16)
        d[rng.random((rows, nb)) < 0.1] = 0
        blk[:, :, off:off + 2] = d.view(np.uint8).reshape(rows, nb, 2)
    return blk.reshape(rows, nb * bb)


@pytest.mark.parametrize("dtype", list(TYPES))
def test_block_is_ggml(dtype):
    t = Q.DTYPES[dtype]
    assert GGUF_EXACT[TYPES[dtype].name] == dtype
    assert gguf.GGML_QUANT_SIZES[TYPES[dtype]] == (t.block, t.block_bytes)
    assert tuple(_core.DTYPES[dtype]) == (t.id, t.block, t.block_bytes, True)
    rng = np.random.default_rng(t.id)
    for cols in {t.block, 3 * t.block, 1280, 2816} - {1280 if t.block == 256 else 0}:
        b = random_blocks(rng, dtype, 5, cols // t.block)
        theirs = gguf.quants.dequantize(b, TYPES[dtype]).reshape(5, cols)
        ours = Q.dequantize(b, dtype, (5, cols))
        np.testing.assert_array_equal(ours.view(np.uint32), theirs.astype(np.float32).view(np.uint32))
        for r in range(5):
            cpp = _core.dequantize(t.id, b[r].tobytes(), cols, level="ref")
            np.testing.assert_array_equal(cpp.view(np.uint32), ours[r].view(np.uint32))
    # every f16 pattern of the first f16 field that is finite, random rest of the block
    h = np.arange(65536, dtype=np.uint16)
    h = h[np.isfinite(h.view(np.float16))]
    b = rng.integers(0, 256, (h.size, t.block_bytes), dtype=np.uint8)
    for off in F16_AT[dtype]:
        b[:, off:off + 2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    b[:, F16_AT[dtype][0]:F16_AT[dtype][0] + 2] = h.view(np.uint8).reshape(-1, 2)
    theirs = gguf.quants.dequantize(b, TYPES[dtype]).astype(np.float32).reshape(-1)
    cpp = _core.dequantize(t.id, b.tobytes(), h.size * t.block, level="ref")
    np.testing.assert_array_equal(cpp.view(np.uint32), theirs.view(np.uint32))


def test_element_positions():
    """Hand-built blocks: where element i of each layout lives (quant.h)."""
    one = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    # q5_0: element j < 16 = low nibble of qs[j] | bit j of qh << 4; element j + 16 = high nibble | bit j + 16
    blk = np.zeros(22, np.uint8)
    blk[0:2] = one
    lo, hi = np.arange(16) % 16, (np.arange(16) * 7) % 16
    blk[6:] = lo | hi << 4
    qh = 0b1010_0000_0000_0001_1000_0000_0000_0011
    blk[2:6] = np.frombuffer(np.uint32(qh).tobytes(), np.uint8)
    bits = (qh >> np.arange(32)) & 1
    want = np.concatenate([lo, hi]) + 16 * bits - 16
    np.testing.assert_array_equal(_core.dequantize(Q.DTYPES["q5_0"].id, blk.tobytes(), 32, level="ref"), want)
    # q4_k: d = 1, dmin = 1, sub-block j has sc = j + 1 and m = 2j (j >= 4 through the packed high bits)
    sc, m = np.arange(1, 9), 2 * np.arange(8) + 40
    blk = np.zeros(144, np.uint8)
    blk[0:2] = blk[2:4] = one
    s = np.zeros(12, np.int64)
    s[0:4] = sc[:4] | (sc[4:] >> 4) << 6
    s[4:8] = m[:4] | (m[4:] >> 4) << 6
    s[8:12] = (sc[4:] & 15) | (m[4:] & 15) << 4
    blk[4:16] = s
    q = np.arange(256) % 16
    qs = q.reshape(4, 2, 32)
    blk[16:] = (qs[:, 0] | qs[:, 1] << 4).reshape(-1)
    want = np.repeat(sc, 32) * q - np.repeat(m, 32)
    np.testing.assert_array_equal(_core.dequantize(Q.DTYPES["q4_k"].id, blk.tobytes(), 256, level="ref"), want)
    # q6_k: d = 1, scale of sub-block j (16 values) = j - 8, codes q = element index % 64
    blk = np.zeros(210, np.uint8)
    blk[208:210] = one
    blk[192:208] = (np.arange(16) - 8).astype(np.int8).view(np.uint8)
    q = np.arange(256) % 64
    qq = q.reshape(2, 4, 32)  # (half, group g, l)
    ql = np.zeros((2, 64), np.int64)
    ql[:, :32] = (qq[:, 0] & 15) | (qq[:, 2] & 15) << 4
    ql[:, 32:] = (qq[:, 1] & 15) | (qq[:, 3] & 15) << 4
    qh = sum((qq[:, g] >> 4) << (2 * g) for g in range(4))
    blk[0:128], blk[128:192] = ql.reshape(-1), qh.reshape(-1)
    want = np.repeat(np.arange(16) - 8, 16) * (q - 32)
    np.testing.assert_array_equal(_core.dequantize(Q.DTYPES["q6_k"].id, blk.tobytes(), 256, level="ref"), want)


def _q8x(x):
    rec = np.frombuffer(Q.quantize_q8x(x), np.dtype([("d", "<f4"), ("s", "<f4"), ("q", "i1", 32)])).reshape(x.shape[0], -1)
    return rec["d"].astype(np.float64), rec["s"].astype(np.float64), rec["q"].astype(np.float64)


@pytest.mark.parametrize("dtype", list(TYPES))
def test_gemm_ref_within_bound(dtype):
    """Y = W·X over block_q8x activations vs float64: Σ_k sw·x.d·isum (− dmin·m·x.s for q4_k), the bound of
    gemm_int_ref.cpp: (n/32 + 4)·2^-24·Σ|block terms|."""
    t = Q.DTYPES[dtype]
    rng = np.random.default_rng(300 + t.id)
    for rows, n, ncols in ((1, t.block, 1), (7, 2 * t.block, 2), (13, 3 * t.block, 3), (5, 2304, 5), (3, 4352, 9)):
        if n % t.block:
            continue
        wb = random_blocks(rng, dtype, rows, n // t.block, scale=0.01)
        x = rng.standard_normal((ncols, n)).astype(np.float32)
        x[0, 32:64] = 0
        y = _core.gemm(t.id, wb.tobytes(), rows, n, x, level="ref", misalign=rows % 4)
        wd = Q.dequantize(wb, dtype, (rows, n)).astype(np.float64).reshape(rows, n // 32, 32)
        xd, xs, xq = _q8x(x)
        nb = n // 32
        xq = xq.reshape(ncols, nb, 32)
        if dtype == "q4_k":  # split each block term into the scale part and the min part (x.s)
            blk = wb.reshape(rows, n // 256, 144)
            dmin = _blocks.f16_from_bytes(blk[..., 2:4]).astype(np.float64)
            _, m = kquant.q4_k_scale_min(blk[..., 4:16])
            off = (-dmin[..., None] * m).reshape(rows, nb)  # the per-sub-block offset of each value
            scale_part = np.einsum("rki,cki->crk", wd - off[..., None], xq) * xd[:, None, :]
            min_part = off[None] * xs[:, None, :]
            terms, absterms = scale_part + min_part, np.abs(scale_part) + np.abs(min_part)
        else:
            terms = np.einsum("rki,cki->crk", wd, xq) * xd[:, None, :]
            absterms = np.abs(terms)
        ref = terms.sum(-1)
        bound = (nb + 4) * U * absterms.sum(-1)
        err = np.abs(y.astype(np.float64) - ref)
        assert np.all(err <= bound + 1e-30), f"{dtype} {rows}x{n}x{ncols}: excess {np.max(err - bound)}"


def test_import_only():
    for dtype in TYPES:
        with pytest.raises(ValueError, match="import-only"):
            Q.quantize(np.ones((2, 256), np.float32), dtype)


# ---------------------------------------------------------------- a tiny GGUF of these block types

def _q4_k_blocks(x):
    """A plain (no search) Q4_K encoder for the test GGUF: x [nb, 256] -> uint8 [nb, 144]."""
    xs = x.reshape(-1, 8, 32).astype(np.float32)
    lo, hi = np.minimum(xs.min(-1), 0), xs.max(-1)
    scale, mins = (hi - lo) / 15, -lo
    d = (scale.max(-1) / 63).astype(np.float16).astype(np.float32)
    dmin = (mins.max(-1) / 63).astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(scale / np.where(d > 0, d, 1)[:, None]), 0, 63).astype(np.int64)
    m = np.clip(np.round(mins / np.where(dmin > 0, dmin, 1)[:, None]), 0, 63).astype(np.int64)
    d1, m1 = d[:, None] * sc, dmin[:, None] * m
    q = np.clip(np.round((xs + m1[..., None]) / np.where(d1 > 0, d1, 1)[..., None]), 0, 15).astype(np.int64)
    out = np.zeros((xs.shape[0], 144), np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dmin.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = sc[:, :4] | (sc[:, 4:] >> 4) << 6
    out[:, 8:12] = m[:, :4] | (m[:, 4:] >> 4) << 6
    out[:, 12:16] = (sc[:, 4:] & 15) | (m[:, 4:] & 15) << 4
    qq = q.reshape(-1, 4, 2, 32)
    out[:, 16:] = (qq[:, :, 0] | qq[:, :, 1] << 4).reshape(-1, 128)
    return out


def _q6_k_blocks(x):
    """A plain Q6_K encoder for the test GGUF: x [nb, 256] -> uint8 [nb, 210]."""
    xs = x.reshape(-1, 16, 16).astype(np.float32)
    s = np.abs(xs).max(-1) / 31
    d = (s.max(-1) / 127).astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(s / np.where(d > 0, d, 1)[:, None]), -128, 127).astype(np.int64)
    step = d[:, None] * sc
    q = (np.clip(np.round(xs / np.where(step > 0, step, 1)[..., None]), -32, 31) + 32).astype(np.int64)
    qq = q.reshape(-1, 2, 4, 32)
    out = np.zeros((xs.shape[0], 210), np.uint8)
    ql = np.zeros((xs.shape[0], 2, 64), np.int64)
    ql[..., :32] = (qq[:, :, 0] & 15) | (qq[:, :, 2] & 15) << 4
    ql[..., 32:] = (qq[:, :, 1] & 15) | (qq[:, :, 3] & 15) << 4
    out[:, 0:128] = ql.reshape(-1, 128)
    out[:, 128:192] = sum((qq[:, :, g] >> 4) << (2 * g) for g in range(4)).reshape(-1, 64)
    out[:, 192:208] = sc.astype(np.int8).view(np.uint8)
    out[:, 208:210] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    return out


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama256")
    # every matmul's K a multiple of 256 (Q4_K / Q6_K rows), 4 heads of 64
    model, config, weights = make_tiny("llama", seed=11, dir=d, hidden_size=256, intermediate_size=512, head_dim=64)
    return str(d), model, config, weights


@pytest.mark.parametrize("dtype", list(TYPES))
def test_gguf_imports_bit_exact(tiny256, tmp_path, monkeypatch, dtype):
    # gguf.quants cannot quantize Q4_K / Q6_K: the plain encoders above
    with_encoders(monkeypatch, {QT.Q4_K: _q4_k_blocks, QT.Q6_K: _q6_k_blocks})
    n_exact = check_import(tmp_path, tiny256, TYPES[dtype], dtype)
    assert n_exact == 2 + 7 * tiny256[2]["llm.n_layers"]  # tok_embd, output, 7 matrices a block
