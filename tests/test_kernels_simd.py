"""x86 SIMD kernels (csrc/kernels/x86/) against the scalar reference and a float64 numpy decode.

Every level the host runs above "ref" is tested, for every slot that level fills itself (slots it
inherits are tested at the level that fills them):
  * quantize_q8x: bytes identical to the reference;
  * dequant: floats identical (bit for bit) to the reference;
  * gemm, integer-dot dtypes: |simd - ref| <= 1e-5 * sum|block terms| + 1e-30 (kernels.h), where a block
    term is sw*x.d*isum (+ |m*x.s| for int4a), computed here in float64 from the bytes; the reference
    itself is checked against the float64 value with the same bound;
  * gemm, float dtypes: |simd - ref| <= (n + 32) * 2^-24 * sum|w_i x_i| (see gemm_float_*.cpp).
Shapes break every tail: n not a multiple of 64 or 128 where the block allows it, odd rows and
columns, pointers misaligned by 1..3 bytes, zero blocks, tiny and huge magnitudes.
"""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from edgerun import _core

LEVELS = [lv for lv in _core.kernel_levels() if lv != "ref"]
DT = {name: v[0] for name, v in _core.DTYPES.items()}
BLOCK = {name: v[1] for name, v in _core.DTYPES.items()}
INT_DOT = {name: v[3] for name, v in _core.DTYPES.items()}
GEMM_DTYPES = [d for d in _core.DTYPES if d != "i32"]

N_SIZES = [32, 64, 96, 128, 160, 576, 1056, 2112 + 64]  # 2176 spans two 2048-element k-chunks
ROWS = [1, 2, 3, 5, 7, 8, 15, 17, 33]
NCOLS = [1, 2, 3, 4, 5, 9]


def filled(level, kind):
    """dtypes (or the single quantize slot) whose implementation is this level's own."""
    t = _core.kernel_table(level)
    if kind == "quantize_q8x":
        return t["quantize_q8x"] == level
    return [d for d, impl in t[kind].items() if impl == level]


# ---------------------------------------------------------------- float64 decoders (FORMAT.md)

E2M1X2 = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.int64)
NL4 = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.int64)  # quant.h kNl4Values


def e2m3_x8(c):
    c = np.asarray(c, np.int64)
    e, m = (c >> 3) & 3, c & 7
    v = np.where(e == 0, m, (8 + m) << np.maximum(e - 1, 0))
    return np.where(c & 0x20, -v, v)


def e4m3(c):
    c = np.asarray(c, np.int64)
    e, m = (c >> 3) & 15, c & 7
    v = np.where(e == 0, m * 2.0**-9, (1 + m / 8.0) * 2.0 ** (e - 7.0))
    return np.where(c & 0x80, -v, v)


def e8m0(e):
    return 2.0 ** (np.asarray(e, np.float64) - 127)


def f16(u16):
    return np.asarray(u16, np.uint16).view(np.float16).astype(np.float64)


def decode_int(dtype, wbytes, rows, n):
    """-> (codes[rows, n] int64, sw[rows, n/32] f64, m[rows, n/32] f64 or None): x = sw*code (+ m)."""
    B, bb = BLOCK[dtype], _core.DTYPES[dtype][2]
    nb = n // B
    blk = np.frombuffer(wbytes, np.uint8).reshape(rows, nb, bb)
    m = None
    if dtype == "q8_0":
        sw, codes = f16(blk[:, :, 0:2].copy().view(np.uint16)[..., 0]), blk[:, :, 2:].view(np.int8).astype(np.int64)
    elif dtype.startswith("int4"):
        off = 4 if dtype.startswith("int4a") else 2
        sw = f16(blk[:, :, 0:2].copy().view(np.uint16)[..., 0])
        if off == 4:
            m = f16(blk[:, :, 2:4].copy().view(np.uint16)[..., 0])
        qs = blk[:, :, off:].astype(np.int64)
        codes = np.concatenate([qs & 15, qs >> 4], axis=2)
        if off == 2:
            codes = codes - 8
    elif dtype == "nl4_32":
        sw = f16(blk[:, :, 0:2].copy().view(np.uint16)[..., 0])
        qs = blk[:, :, 2:].astype(np.int64)
        codes = NL4[np.concatenate([qs & 15, qs >> 4], axis=2)]
    elif dtype == "q5_0":  # GGML Q5_0: nibbles (split-half) | bit i of the u32 qh << 4, minus 16
        sw = f16(blk[:, :, 0:2].copy().view(np.uint16)[..., 0])
        qh = blk[:, :, 2:6].copy().view("<u4")[..., 0].astype(np.int64)
        qs = blk[:, :, 6:].astype(np.int64)
        codes = np.concatenate([qs & 15, qs >> 4], axis=2) + 16 * ((qh[..., None] >> np.arange(32)) & 1) - 16
    elif dtype == "q4_k":  # GGML Q4_K: per 32-element sub-block j, scale d·sc_j and offset -dmin·m_j
        d, dmin = f16(blk[:, :, 0:2].copy().view(np.uint16)[..., 0]), f16(blk[:, :, 2:4].copy().view(np.uint16)[..., 0])
        s = blk[:, :, 4:16].astype(np.int64)
        sc = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 15) | (s[..., 0:4] >> 6) << 4], axis=-1)
        mn = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | (s[..., 4:8] >> 6) << 4], axis=-1)
        qs = blk[:, :, 16:].astype(np.int64).reshape(rows, nb, 4, 1, 32)
        codes = np.concatenate([qs & 15, qs >> 4], axis=3)
        sw = (d[..., None] * sc).reshape(rows, -1)
        return codes.reshape(rows, n), sw, (-dmin[..., None] * mn).reshape(rows, -1)
    elif dtype == "q6_k":  # GGML Q6_K: code sc·(q - 32) (sc per 16 elements), block scale d
        d = f16(blk[:, :, 208:210].copy().view(np.uint16)[..., 0])
        ql = blk[:, :, 0:128].astype(np.int64).reshape(rows, nb, 2, 1, 64)
        qh = blk[:, :, 128:192].astype(np.int64).reshape(rows, nb, 2, 1, 32)
        lo = ((ql >> np.array([0, 4]).reshape(2, 1)) & 15).reshape(rows, nb, 2, 4, 32)
        hi = ((qh >> np.array([0, 2, 4, 6]).reshape(4, 1)) & 3).reshape(rows, nb, 2, 4, 32)
        sc = blk[:, :, 192:208].view(np.int8).astype(np.int64)
        codes = ((lo | hi << 4) - 32).reshape(rows, nb, 16, 16) * sc[..., None]
        return codes.reshape(rows, n), np.repeat(d, 8, axis=1), None
    elif dtype == "mxint8":
        sw, codes = e8m0(blk[:, :, 0]) / 64, blk[:, :, 1:].view(np.int8).astype(np.int64)
    elif dtype == "mxfp4":
        qs = blk[:, :, 1:].astype(np.int64)
        sw, codes = e8m0(blk[:, :, 0]) / 2, E2M1X2[np.concatenate([qs & 15, qs >> 4], axis=2)]
    elif dtype == "mxfp6":
        q = blk[:, :, 1:].astype(np.int64).reshape(rows, nb, 8, 3)
        v = q[..., 0] | q[..., 1] << 8 | q[..., 2] << 16
        c = np.stack([(v >> (6 * i)) & 63 for i in range(4)], axis=-1).reshape(rows, nb, 32)
        sw, codes = e8m0(blk[:, :, 0]) / 8, e2m3_x8(c)
    else:
        raise ValueError(dtype)
    rep = B // 32
    sw = np.repeat(sw, rep, axis=1)
    if m is not None:
        m = np.repeat(m, rep, axis=1)
    return codes.reshape(rows, n), sw, m


def decode_float(dtype, wbytes, rows, n):
    """-> W[rows, n] float64 (exact)."""
    if dtype == "f32":
        return np.frombuffer(wbytes, np.float32).reshape(rows, n).astype(np.float64)
    if dtype == "f16":
        return f16(np.frombuffer(wbytes, np.uint16)).reshape(rows, n)
    if dtype == "bf16":
        u = np.frombuffer(wbytes, np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).reshape(rows, n).astype(np.float64)
    if dtype == "mxfp8":
        blk = np.frombuffer(wbytes, np.uint8).reshape(rows, n // 32, 33)
        return (e8m0(blk[:, :, :1]) * e4m3(blk[:, :, 1:])).reshape(rows, n)
    raise ValueError(dtype)


def decode_q8x(qbytes, ncols, n):
    """block_q8x rows -> (d[ncols, n/32], s[ncols, n/32], q[ncols, n])."""
    rec = np.frombuffer(qbytes, np.dtype([("d", "<f4"), ("s", "<f4"), ("q", "i1", 32)])).reshape(ncols, n // 32)
    return rec["d"].astype(np.float64), rec["s"].astype(np.float64), rec["q"].reshape(ncols, n).astype(np.int64)


# ---------------------------------------------------------------- random data


def rand_f16_scales(rng, shape):
    """f16 scales from 2^-20 (subnormal) to 2^3 with random sign and some exact zeros."""
    v = np.exp2(rng.uniform(-20, 3, shape)) * rng.choice([-1.0, 1.0], shape)
    v[rng.random(shape) < 0.05] = 0.0
    return v.astype(np.float16).view(np.uint16)


def rand_e8m0(rng, shape):
    e = rng.integers(100, 150, shape)
    e[rng.random(shape) < 0.05] = 0  # 2^-127, a float32 denormal
    e[rng.random(shape) < 0.05] = 1
    return e.astype(np.uint8)


def rand_weights(rng, dtype, rows, n):
    B, bb = BLOCK[dtype], _core.DTYPES[dtype][2]
    nb = n // B
    if dtype == "f32":
        w = rng.standard_normal((rows, n)) * np.exp2(rng.integers(-20, 20, (rows, 1)))
        return w.astype(np.float32).tobytes()
    if dtype == "f16":
        return (rng.standard_normal((rows, n)) * 4).astype(np.float16).tobytes()
    if dtype == "bf16":
        w = (rng.standard_normal((rows, n)) * np.exp2(rng.integers(-30, 30, (rows, 1)))).astype(np.float32)
        return (w.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    blk = rng.integers(0, 256, (rows, nb, bb), dtype=np.uint8)
    if dtype in ("q8_0", "nl4_32", "q5_0", "q4_k") or dtype.startswith("int4"):
        blk[:, :, 0:2] = rand_f16_scales(rng, (rows, nb)).view(np.uint8).reshape(rows, nb, 2)
        if dtype.startswith("int4a") or dtype == "q4_k":  # int4a's m, q4_k's dmin
            blk[:, :, 2:4] = rand_f16_scales(rng, (rows, nb)).view(np.uint8).reshape(rows, nb, 2)
    elif dtype == "q6_k":  # d is the last field
        blk[:, :, 208:210] = rand_f16_scales(rng, (rows, nb)).view(np.uint8).reshape(rows, nb, 2)
    else:
        blk[:, :, 0] = rand_e8m0(rng, (rows, nb))
        if dtype == "mxfp8":  # 0x7F / 0xFF are NaN codes, never written
            q = blk[:, :, 1:]
            q[(q & 0x7F) == 0x7F] &= 0xFE
    return blk.tobytes()


def rand_acts(rng, ncols, n):
    """Activations per 32-block at scales 2^-30..2^30, some blocks all zero."""
    x = rng.standard_normal((ncols, n // 32, 32)) * np.exp2(rng.integers(-30, 30, (ncols, n // 32, 1)))
    x[rng.random((ncols, n // 32)) < 0.1] = 0.0
    return x.reshape(ncols, n).astype(np.float32)


# ---------------------------------------------------------------- tests


def test_ref_is_pinned_by_env():
    code = "from edgerun import _core; print(_core.kernel_default_level())"
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(_core.__file__)))  # the edgerun imported here
    env = dict(os.environ, EDGE_KERNELS="ref", PYTHONPATH=pkg_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ref"


def test_levels_fill_their_slots():
    """The x86 levels are nested and each one this host runs registers its own quantize_q8x."""
    assert _core.kernel_levels()[0] == "ref"
    for lv in LEVELS:
        t = _core.kernel_table(lv)
        assert t["level"] == lv
        if lv in ("avx2", "avx512"):
            assert t["quantize_q8x"] == lv


@pytest.mark.parametrize("level", LEVELS)
def test_quantize_q8x_bit_exact(level):
    if not filled(level, "quantize_q8x"):
        pytest.skip("level inherits quantize_q8x")
    rng = np.random.default_rng(1)
    cases = [rand_acts(rng, 1, n)[0] for n in (32, 64, 96, 576, 1056)]
    # Ties of x*id (round half to even), exact 127 hits, a single non-zero, tiny and huge blocks.
    cases.append((np.arange(-64, 64) / 2.0).astype(np.float32))
    cases.append(np.array([127.0, -63.5, 0.5, -0.5, 1.5, 2.5] + [0.0] * 26, np.float32))
    cases.append(np.r_[np.float32(3e-36), np.zeros(31, np.float32)])
    cases.append((rng.standard_normal(320) * 1e37).astype(np.float32))
    cases.append((rng.standard_normal(320) * 2.0**-100).astype(np.float32))
    cases.append(np.zeros(64, np.float32))
    for x in cases:
        assert _core.quantize_q8x(x, level) == _core.quantize_q8x(x, "ref"), x[:4]


def float_bound(w, x):
    n = w.shape[1]
    return (n + 32) * 2.0**-24 * (np.abs(x) @ np.abs(w).T) + 1e-30


def check_gemm(level, dtype, rows, n, ncols, misalign, rng):
    wb = rand_weights(rng, dtype, rows, n)
    x = rand_acts(rng, ncols, n)
    got = _core.gemm(DT[dtype], wb, rows, n, x, level, misalign)
    ref = _core.gemm(DT[dtype], wb, rows, n, x, "ref", 0)
    assert got.shape == (ncols, rows)
    if INT_DOT[dtype]:
        d, s, q = decode_q8x(_core.quantize_q8x(x.reshape(-1), "ref"), ncols, n)
        codes, sw, m = decode_int(dtype, wb, rows, n)
        isum = np.einsum("rki,cki->ckr", codes.reshape(rows, n // 32, 32), q.reshape(ncols, n // 32, 32))
        terms = sw.T[None] * d[:, :, None] * isum  # [c, k, r]
        absterms = np.abs(terms)
        if m is not None:
            terms = terms + m.T[None] * s[:, :, None]
            absterms = absterms + np.abs(m.T[None] * s[:, :, None])
        exact = terms.sum(axis=1)
        bound = 1e-5 * absterms.sum(axis=1) + 1e-30
    else:
        w = decode_float(dtype, wb, rows, n)
        exact = x.astype(np.float64) @ w.T
        bound = float_bound(w, x.astype(np.float64))
    tag = f"{level} {dtype} rows={rows} n={n} ncols={ncols} misalign={misalign}"
    assert np.all(np.abs(ref - exact) <= bound), tag + " (reference vs float64)"
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= bound), f"{tag}: max excess {np.max(err - bound)}"


def gemm_cases(dtype):
    """(rows, n, ncols, misalign): every n the block allows; rows and ncols cycle through all values."""
    ns = [n for n in N_SIZES if n % BLOCK[dtype] == 0 and n % 32 == 0]
    if BLOCK[dtype] == 256:  # q4_k / q6_k super-blocks: 1, 3 and 9 of them (9: past one 2048-element k-chunk)
        ns = [256, 768, 2304]
    combos = list(itertools.product(ROWS, NCOLS))
    out = []
    for i, n in enumerate(ns):
        pick = combos[i * 7 % len(combos)::5] if n < 1000 else combos[i::17]
        for j, (r, c) in enumerate(pick):
            out.append((r, n, c, (i + j) % 4))
    return out


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", GEMM_DTYPES)
def test_gemm(level, dtype):
    if dtype not in filled(level, "gemm"):
        pytest.skip(f"{level} does not fill gemm[{dtype}]")
    rng = np.random.default_rng(DT[dtype] * 10 + LEVELS.index(level))
    for rows, n, ncols, mis in gemm_cases(dtype):
        check_gemm(level, dtype, rows, n, ncols, mis, rng)


def dequant_rows(rng, dtype):
    """Rows for the dequant test: random blocks at several lengths, plus every code / bit pattern."""
    rows = [(n, rand_weights(rng, dtype, 1, n)) for n in N_SIZES + [BLOCK[dtype] * 3] if n % BLOCK[dtype] == 0]
    if dtype in ("f16", "bf16"):  # all 65536 halves: subnormals, inf, quiet and signaling NaNs
        rows.append((65536, np.arange(65536, dtype=np.uint16).tobytes()))
    elif dtype in ("mxint8", "mxfp8", "mxfp6", "mxfp4"):  # every E8M0 scale 0..254 with random codes
        bb = _core.DTYPES[dtype][2]
        blk = rng.integers(0, 256, (255, bb), dtype=np.uint8)
        blk[:, 0] = np.arange(255)
        if dtype == "mxfp8":  # every E4M3 code, NaN codes included, under a few scales
            blk[:8, 1:] = np.arange(256, dtype=np.uint8).reshape(8, 32)
        rows.append((255 * 32, blk.tobytes()))
    elif dtype != "f32":  # every f16 scale pattern of the block formats' d (and m)
        bb = _core.DTYPES[dtype][2]
        nb = 65536
        blk = rng.integers(0, 256, (nb, bb), dtype=np.uint8)
        blk[:, 0:2] = np.arange(nb, dtype=np.uint16).view(np.uint8).reshape(nb, 2)
        rows.append((nb * BLOCK[dtype], blk.tobytes()))
    return rows


ROW_BLOCK_BYTES = 512 << 10  # the multi-column drivers' L2 row block (gemm_q8x_*.h, gemm_float_*.cpp)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", GEMM_DTYPES)
def test_gemm_row_blocks(level, dtype):
    """Several columns groups over more rows than one L2 row block (and a partial last block)."""
    if dtype not in filled(level, "gemm"):
        pytest.skip(f"{level} does not fill gemm[{dtype}]")
    n = {128: 1152, 256: 1280}.get(BLOCK[dtype], 1088)
    rows = ROW_BLOCK_BYTES // (n // BLOCK[dtype] * _core.DTYPES[dtype][2]) + 13
    check_gemm(level, dtype, rows, n, 6, 2, np.random.default_rng(3))
    # Two k-chunks (2048 elements) with two full column groups and a partial one.
    check_gemm(level, dtype, 7, 2176 if BLOCK[dtype] < 128 else 2304, 9, 1, np.random.default_rng(4))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", GEMM_DTYPES)
def test_dequant_bit_exact(level, dtype):
    if dtype not in filled(level, "dequant"):
        pytest.skip(f"{level} does not fill dequant[{dtype}]")
    rng = np.random.default_rng(7)
    for n, wb in dequant_rows(rng, dtype):
        got = _core.dequantize(DT[dtype], wb, n, level)
        ref = _core.dequantize(DT[dtype], wb, n, "ref")
        bad = np.nonzero(got.view(np.uint32) != ref.view(np.uint32))[0]
        assert bad.size == 0, f"{level} {dtype} n={n}: element {bad[0]} {got[bad[0]]!r} != {ref[bad[0]]!r}"
