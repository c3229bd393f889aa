"""The training kernels (csrc/kernels/backward.h) on every level this host runs.

Two checks per kernel, at sizes that break every tail and with pointers off vector alignment:
  * the reference (level "ref") against an independent float64 computation — torch autograd where the
    kernel is a gradient (rmsnorm, SwiGLU, attention, cross-entropy over chunks), torch.optim.AdamW for
    the optimizer, numpy on the dequantized weights (edgeconv.quant.dequantize, bit-exact with the C++
    dequant) for gemm_t — within the f32 rounding of the reference's stated summation order;
  * every other level against the reference within the bound declared in backward.h (plus, for the
    "+=" outputs, one rounding of the accumulator's start value |acc0| · 2^-23).
"""
import numpy as np
import pytest
import torch

from edgeconv.quant import dequantize
from edgerun import _core

LEVELS = _core.kernel_levels()
SIMD = [lv for lv in LEVELS if lv != "ref"]
DT = {name: v[0] for name, v in _core.DTYPES.items()}
BLOCK = {name: v[1] for name, v in _core.DTYPES.items()}
BLOCK_BYTES = {name: v[2] for name, v in _core.DTYPES.items()}
GEMM_T_DTYPES = [d for d in _core.DTYPES if d not in ("i32", "blob")]
U = 2.0**-24
TINY = 1e-30


def f64(a):
    return np.asarray(a, np.float64)


def assert_within(got, want, bound, what):
    err = np.abs(f64(got) - f64(want))
    bad = ~(err <= bound)  # NaN counts as bad
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} beyond bound; worst err "
                           f"{err.max():.3g} vs bound {np.min(bound):.3g} at {np.argwhere(bad)[:4].tolist()}")


# ---------------------------------------------------------------- inputs

def rand_weights(rng, dtype, rows, n):
    """Stored bytes of a rows × n weight: every code, f16 / E8M0 scales over a wide range, zero blocks."""
    nb = n // BLOCK[dtype]
    if dtype == "f32":
        return (rng.standard_normal((rows, n)) * np.exp2(rng.integers(-12, 12, (rows, 1)))).astype(np.float32).tobytes()
    if dtype == "f16":
        return (rng.standard_normal((rows, n)) * 4).astype(np.float16).tobytes()
    if dtype == "bf16":
        w = (rng.standard_normal((rows, n)) * np.exp2(rng.integers(-12, 12, (rows, 1)))).astype(np.float32)
        return (w.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    blk = rng.integers(0, 256, (rows, nb, BLOCK_BYTES[dtype]), dtype=np.uint8)
    if dtype in ("q8_0", "nl4_32", "q5_0", "q4_k", "q6_k") or dtype.startswith("int4"):
        # offsets of the f16 fields: d (q4_k: d, dmin; q6_k's d is last)
        offs = {"q4_k": (0, 2), "q6_k": (208,)}.get(dtype, (0, 2) if dtype.startswith("int4a") else (0,))
        for off in offs:
            d = np.exp2(rng.uniform(-16, 2, (rows, nb))) * rng.choice([-1.0, 1.0], (rows, nb))
            d[rng.random((rows, nb)) < 0.1] = 0.0  # zero blocks
            blk[:, :, off:off + 2] = d.astype(np.float16).view(np.uint8).reshape(rows, nb, 2)
    else:
        e = rng.integers(110, 140, (rows, nb))
        e[rng.random((rows, nb)) < 0.05] = 0  # 2^-127: a denormal scale
        blk[:, :, 0] = e.astype(np.uint8)
        if dtype == "mxfp8":  # 0x7F / 0xFF are NaN codes, never written
            q = blk[:, :, 1:]
            q[(q & 0x7F) == 0x7F] &= 0xFE
    return blk.tobytes()


def rand_f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- gemm_t

def gemm_t_cases(dtype):
    B = BLOCK[dtype]
    ns = sorted({B, 3 * B, 256 if B <= 128 else B} | ({1, 3, 31, 33, 1023} if B == 1 else {32 * 33 if B == 32 else 8 * B}))
    rows = [1, 3, 31, 33]
    cases = [(r, n, c) for r in rows for n in ns for c in (1, 3)]
    cases += [(1023, B * (4 if B > 1 else 33), 2), (17, ns[-1], 9)]
    return cases


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", GEMM_T_DTYPES)
def test_gemm_t(level, dtype):
    rng = np.random.default_rng(DT[dtype] * 101 + len(level))
    for i, (rows, n, ncols) in enumerate(gemm_t_cases(dtype)):
        wb = rand_weights(rng, dtype, rows, n)
        W = f64(dequantize(wb, dtype, (rows, n)))
        dy = rand_f32(rng, ncols, rows) * np.exp2(rng.integers(-8, 8, (ncols, 1))).astype(np.float32)
        dy[:, rng.random(rows) < 0.1] = 0.0
        dx0 = rand_f32(rng, ncols, n) if i % 2 else np.zeros((ncols, n), np.float32)
        got = _core.gemm_t(DT[dtype], wb, rows, n, dy, dx0, level, misalign=i)
        terms = np.abs(f64(dy)) @ np.abs(W)
        what = f"gemm_t {dtype} {level} rows={rows} n={n} ncols={ncols}"
        if level == "ref":
            assert_within(got, f64(dx0) + f64(dy) @ W, (rows + 2) * U * (terms + np.abs(dx0)) + TINY, what)
        else:
            ref = _core.gemm_t(DT[dtype], wb, rows, n, dy, dx0, "ref", misalign=0)
            assert_within(got, ref, 1e-5 * terms + 2 * U * np.abs(ref) + TINY, what)


def test_gemm_t_column_split():
    """A column range of a wider W (W + row_bytes(j0), n = n') gives those columns of the whole product."""
    rng = np.random.default_rng(7)
    rows, n = 5, 256
    for dtype in ("int4_32", "q8_0", "int4a_128", "f16"):
        wb = np.frombuffer(rand_weights(rng, dtype, rows, n), np.uint8).reshape(rows, -1)
        dy = rand_f32(rng, 3, rows)
        whole = _core.gemm_t(DT[dtype], wb.tobytes(), rows, n, dy, np.zeros((3, n), np.float32))
        j0, n2 = 128, 128
        b0 = j0 // BLOCK[dtype] * BLOCK_BYTES[dtype]
        part = wb[:, b0:b0 + n2 // BLOCK[dtype] * BLOCK_BYTES[dtype]].tobytes()
        got = _core.gemm_t(DT[dtype], part, rows, n2, dy, np.zeros((3, n2), np.float32))
        assert np.array_equal(got, whole[:, j0:j0 + n2]), dtype


def test_gemm_t_bad_input_raises():
    with pytest.raises(ValueError):
        _core.gemm_t(DT["int4_32"], b"\0" * 18, 1, 31, np.zeros((1, 1), np.float32), np.zeros((1, 31), np.float32))


# ---------------------------------------------------------------- gemm_tn_f32

@pytest.mark.parametrize("level", LEVELS)
def test_gemm_tn_f32(level):
    rng = np.random.default_rng(11 + len(level))
    shapes = [(1, 1, 1), (3, 1, 33), (17, 31, 3), (100, 8, 1023), (2, 33, 64), (64, 16, 576), (5, 1, 1)]
    for i, (T, M, N) in enumerate(shapes):
        a, b = rand_f32(rng, T, M), rand_f32(rng, T, N, scale=3.0)
        a[rng.random(T) < 0.2] = 0.0
        c0 = rand_f32(rng, M, N) if i % 2 else np.zeros((M, N), np.float32)
        got = _core.gemm_tn_f32(a, b, c0, level, misalign=i)
        terms = np.abs(f64(a)).T @ np.abs(f64(b))
        what = f"gemm_tn_f32 {level} T={T} M={M} N={N}"
        if level == "ref":
            assert_within(got, f64(c0) + f64(a).T @ f64(b), (T + 2) * U * (terms + np.abs(c0)) + TINY, what)
        else:
            ref = _core.gemm_tn_f32(a, b, c0, "ref")
            assert_within(got, ref, 1e-5 * terms + 2 * U * np.abs(ref) + TINY, what)


# ---------------------------------------------------------------- rmsnorm_bwd

def rmsnorm_grads(x, w, eps, dy):
    """torch autograd of y = x / sqrt(mean(x²) + eps) · w in float64 -> (dx, dw or None)."""
    xt = torch.tensor(f64(x), requires_grad=True)
    wt = torch.tensor(f64(w), requires_grad=True) if w is not None else None
    y = xt * torch.rsqrt((xt * xt).mean() + eps)
    if wt is not None:
        y = y * wt
    y.backward(torch.tensor(f64(dy)))
    return xt.grad.numpy(), (wt.grad.numpy() if wt is not None else None)


@pytest.mark.parametrize("level", LEVELS)
def test_rmsnorm_bwd(level):
    rng = np.random.default_rng(21 + len(level))
    for i, n in enumerate([1, 3, 31, 33, 64, 576, 1023]):
        for with_w in (True, False):
            x = rand_f32(rng, n, scale=2.0)
            w = rand_f32(rng, n) if with_w else None
            dy, eps = rand_f32(rng, n), 1e-5
            dx0, dw0 = rand_f32(rng, n), rand_f32(rng, n)
            dx, dw = _core.rmsnorm_bwd(x, w, eps, dy, dx0, dw0 if with_w else None, level, misalign=i)
            assert (dw is None) == (not with_w)
            inv = 1.0 / np.sqrt(np.mean(f64(x) ** 2) + eps)
            g = f64(dy) * (f64(w) if with_w else 1.0)
            bdx = inv * np.abs(g) + np.abs(x) * inv**3 * np.sum(np.abs(g * x)) / n
            bdw = np.abs(f64(dy) * x * inv)
            what = f"rmsnorm_bwd {level} n={n} w={with_w}"
            if level == "ref":
                ex, ew = rmsnorm_grads(x, w, eps, dy)
                assert_within(dx, dx0 + ex, (2 * n + 10) * U * bdx + 2 * U * np.abs(dx0) + TINY, what + " dx")
                if with_w:
                    assert_within(dw, dw0 + ew, (n + 10) * U * bdw + 2 * U * np.abs(dw0) + TINY, what + " dw")
            else:
                rx, rw = _core.rmsnorm_bwd(x, w, eps, dy, dx0, dw0 if with_w else None, "ref")
                assert_within(dx, rx, 1e-5 * bdx + 2 * U * np.abs(rx) + TINY, what + " dx")
                if with_w:
                    assert_within(dw, rw, 1e-6 * bdw + 2 * U * np.abs(rw) + TINY, what + " dw")


# ---------------------------------------------------------------- silu_mul_bwd

@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("alias", [False, True])
def test_silu_mul_bwd(level, alias):
    rng = np.random.default_rng(31 + len(level))
    for i, n in enumerate([1, 3, 7, 31, 33, 1023, 4099]):
        g = rand_f32(rng, n, scale=4.0)
        g[: min(n, 4)] = [-90.0, 90.0, 0.0, -17.5][: min(n, 4)]  # saturated sigmoid both ways, zero
        u, dy = rand_f32(rng, n, scale=2.0), rand_f32(rng, n)
        dg, du = _core.silu_mul_bwd(g, u, dy, level, misalign=i, alias=alias)
        bound = 1e-6 * (np.abs(f64(dy) * u) * (1 + np.abs(g)) + np.abs(f64(dy) * g)) + TINY
        what = f"silu_mul_bwd {level} n={n} alias={alias}"
        if level == "ref":
            gt, ut = torch.tensor(f64(g), requires_grad=True), torch.tensor(f64(u), requires_grad=True)
            (torch.nn.functional.silu(gt) * ut).backward(torch.tensor(f64(dy)))
            assert_within(dg, gt.grad.numpy(), bound, what + " dg")
            assert_within(du, ut.grad.numpy(), bound, what + " du")
        else:
            rg, ru = _core.silu_mul_bwd(g, u, dy, "ref")
            assert_within(dg, rg, bound, what + " dg")
            assert_within(du, ru, bound, what + " du")


# ---------------------------------------------------------------- attention_bwd

def attention_grads(q, k, v, p_begin, scale, dout):
    """torch autograd of o = softmax(scale · K[p_begin:] q) · V[p_begin:] in float64 -> (dq, dk, dv)."""
    qt, kt, vt = (torch.tensor(f64(a), requires_grad=True) for a in (q, k, v))
    p = torch.softmax(scale * (kt[p_begin:] @ qt), dim=0)
    (p @ vt[p_begin:]).backward(torch.tensor(f64(dout)))
    return qt.grad.numpy(), kt.grad.numpy(), vt.grad.numpy()


@pytest.mark.parametrize("level", LEVELS)
def test_attention_bwd(level):
    rng = np.random.default_rng(41 + len(level))
    cases = [(1, 1, 0), (2, 3, 0), (17, 64, 0), (100, 64, 37), (33, 31, 32), (100, 17, 99), (5, 128, 2)]
    for i, (n_pos, dh, p_begin) in enumerate(cases):
        q, k, v = rand_f32(rng, dh, scale=2.0), rand_f32(rng, n_pos, dh, scale=2.0), rand_f32(rng, n_pos, dh)
        dout = rand_f32(rng, dh)
        dk0, dv0 = rand_f32(rng, n_pos, dh), rand_f32(rng, n_pos, dh)
        scale = float(1.0 / np.sqrt(dh))
        dq, dk, dv = _core.attention_bwd(q, k, v, p_begin, scale, dout, dk0, dv0, level, misalign=i)
        base = (np.abs(v).max() * np.abs(dout).sum() * scale * np.abs(k).max() * dh + np.abs(dout).max())
        what = f"attention_bwd {level} n_pos={n_pos} Dh={dh} p_begin={p_begin}"
        if level == "ref":
            want = attention_grads(q, k, v, p_begin, scale, dout)
            want = (want[0], dk0 + want[1], dv0 + want[2])
        else:
            want = _core.attention_bwd(q, k, v, p_begin, scale, dout, dk0, dv0, "ref")
        for name, got, w, acc0 in (("dq", dq, want[0], 0.0), ("dk", dk, want[1], dk0), ("dv", dv, want[2], dv0)):
            assert_within(got, w, 1e-5 * base + 2 * U * np.abs(acc0) + TINY, f"{what} {name}")
        # rows before p_begin are outside the window: untouched
        assert np.array_equal(dk[:p_begin], dk0[:p_begin]) and np.array_equal(dv[:p_begin], dv0[:p_begin]), what


# ---------------------------------------------------------------- lse_update / xent_grad

def chunked_lse(level, logits, chunk, misalign=0):
    m, s = -np.inf, 0.0
    for j in range(0, logits.size, chunk):
        m, s = _core.lse_update(logits[j:j + chunk], m, s, level, misalign=misalign + j)
    return m, s


@pytest.mark.parametrize("level", LEVELS)
def test_lse_update(level):
    rng = np.random.default_rng(51 + len(level))
    for i, (n, chunk) in enumerate([(1, 1), (3, 2), (31, 31), (1023, 100), (4099, 1023), (100, 17)]):
        l = rand_f32(rng, n, scale=8.0)
        l[rng.random(n) < 0.05] = -np.inf  # masked logits
        if n > 2:
            l[: n // 3] -= 50.0  # the first chunks' maximum is not the row's: the rescale runs
        m, s = chunked_lse(level, l, chunk, i)
        assert m == np.max(l)
        exact = np.sum(np.exp(f64(l) - m))
        what = f"lse_update {level} n={n} chunk={chunk}"
        if level == "ref":
            assert abs(s - exact) <= (n + 4) * 2 * U * exact, what
            lse = m + np.log(s)
            assert abs(lse - torch.logsumexp(torch.tensor(f64(l)), 0).item()) <= 1e-6 * max(1.0, abs(lse)), what
        else:
            rm, rs = chunked_lse("ref", l, chunk)
            assert m == rm and abs(s - rs) <= 1e-6 * rs * (n // chunk + 1), what  # 1e-6 per chunk
    # a chunk of only -inf leaves the state as it was
    assert _core.lse_update(np.full(5, -np.inf, np.float32), -np.inf, 0.0, level) == (-np.inf, 0.0)


@pytest.mark.parametrize("level", LEVELS)
def test_xent_grad_vs_cross_entropy(level):
    """Chunked lse + xent_grad − scale at the target = autograd of F.cross_entropy (mean over rows)."""
    rng = np.random.default_rng(61 + len(level))
    T, V, chunk = 5, 1023, 97
    logits = rand_f32(rng, T, V, scale=4.0)
    targets = rng.integers(0, V, T)
    scale = 1.0 / T
    grad = np.empty((T, V), np.float32)
    for t in range(T):
        m, s = chunked_lse(level, logits[t], chunk)
        lse = np.float32(m + np.log(np.float32(s)))
        for j in range(0, V, chunk):
            grad[t, j:j + chunk] = _core.xent_grad(logits[t, j:j + chunk], lse, scale, level, misalign=j)
        grad[t, targets[t]] -= scale
    lt = torch.tensor(f64(logits), requires_grad=True)
    torch.nn.functional.cross_entropy(lt, torch.tensor(targets)).backward()
    want = lt.grad.numpy()
    # the f32 lse carries ~ (chunks + |lse|) ulps: relative error of every dl ≈ |Δlse|
    assert_within(grad, want, 1e-5 * np.abs(want) + 1e-6 * scale + TINY, f"xent {level}")
    if level != "ref":
        l = logits[0]
        got, ref = _core.xent_grad(l, 3.0, 0.25, level), _core.xent_grad(l, 3.0, 0.25, "ref")
        assert_within(got, ref, 1e-6 * np.abs(ref) + TINY, f"xent_grad {level} vs ref")


# ---------------------------------------------------------------- adamw

@pytest.mark.parametrize("level", LEVELS)
def test_adamw_vs_torch(level):
    rng = np.random.default_rng(71 + len(level))
    # hyper-parameters as f32 values, so torch (float64) and the kernel (f32) use the same 1 - b2 etc.
    lr, b1, b2, eps, wd = (float(np.float32(v)) for v in (1e-2, 0.9, 0.999, 1e-8, 0.1))
    for i, n in enumerate([1, 3, 31, 33, 1023]):
        p0 = rand_f32(rng, n)
        p, m, v = p0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
        pt = torch.tensor(f64(p0), requires_grad=True)
        opt = torch.optim.AdamW([pt], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        for step in range(1, 4):
            g = rand_f32(rng, n, scale=10.0 ** rng.integers(-3, 2))
            if step == 2:
                g[: n // 2] = 0.0
            pr, mr, vr = p, m, v
            bc1, bc2 = 1 - b1**step, 1 - b2**step
            p, m, v = _core.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2, level, misalign=i + step)
            pt.grad = torch.tensor(f64(g))
            opt.step()
            what = f"adamw {level} n={n} step={step}"
            if level == "ref":
                st = opt.state[pt]
                assert_within(m, st["exp_avg"].numpy(), 1e-6 * np.abs(st["exp_avg"].numpy()) + 1e-6 * np.abs(g).max() + TINY, what + " m")
                assert_within(p, pt.detach().numpy(), 1e-5 * lr + 4 * U * np.abs(p), what + " p")
            else:
                rp, rm, rv = _core.adamw(pr, g, mr, vr, lr, b1, b2, eps, wd, bc1, bc2, "ref")
                # m, v: two roundings of their two terms (FMA or not)
                assert_within(m, rm, 4 * U * (np.abs(b1 * f64(mr)) + np.abs((1 - b1) * f64(g))) + TINY, what + " m")
                assert_within(v, rv, 4 * U * (np.abs(b2 * f64(vr)) + (1 - b2) * f64(g) ** 2) + TINY, what + " v")
                upd = np.abs(rm / bc1) / (np.sqrt(rv / bc2) + eps) + np.abs(wd * f64(pr))
                assert_within(p, rp, 1e-6 * lr * upd + 2 * U * np.abs(rp) + TINY, what + " p")
                p, m, v = rp, rm, rv  # continue both from the reference state
                pt.data = torch.tensor(f64(p))
