"""GPTQ (Frantar et al. 2022, "Accurate Post-Training Quantization for Generative Pre-trained
Transformers") for the int4 block types: quantize W column by column and push each column's rounding
error onto the columns not yet quantized, so the matmul OUTPUT error, not the weight error, is small.

    gptq_quantize(w, dtype, h, damp=DAMP) -> uint8 [rows, row_bytes(dtype, cols)]
        w      float32 [rows, cols]   weight, W [out, in] (the matmul computes x @ W.T)
        dtype  int4_32/64/128, int4a_32/64/128 or nl4_32
        h      float [cols, cols]     input second moment H = XᵀX / N over calibration tokens (calib.py)
        The bytes are exactly quantize()'s layout (int4.pack_int4 / pack_int4a), so the runtime reads
        them unchanged; only the choice of codes and scales differs.
    output_error(w, w_hat, h) -> float    tr((W - Ŵ) H (W - Ŵ)ᵀ) = ‖(W - Ŵ) Xᵀ‖² / N

Objective: minimise Σ_rows (w - ŵ) H (w - ŵ)ᵀ, rows independent (so they are processed in chunks and
vectorised across a chunk). With U the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU), quantizing column j
with error e_j = (w_j - ŵ_j) / U_jj and updating every later column k by -e_j·U_jk is the optimal
(OBS) compensation for the columns still free. Details, as in the paper's reference code:
  * dampening: H + λI, λ = damp · mean(diag H) (inputs never active, diag 0, get H_jj = 1 first);
    if H is still not positive definite, λ is multiplied by 10 (up to 4 times). DAMP = 0.1, not the
    paper's 0.01: H of a 1536-wide input from 8192 calibration tokens is noisy, and the stronger
    ridge generalises better. Measured on the SmolLM2-135M float copy (int4 recipe, --calib stdlib,
    ppl on 8 chunks of 512 of bench/corpus.py, f16 11.95): 8192 tokens: damp 0.01 13.56, 0.1 13.21,
    0.3 13.25, 1.0 13.19; 24645 tokens: 0.01 13.19, 0.1 13.19 (chunks 8-15: 14.09 / 13.92 / 13.90).
  * act-order that keeps blocks whole (block_act_order, the default; order="natural" is the paper's plain
    order): quantization blocks are processed in descending Σ diag H, and the columns inside a block in
    descending diag H (GPTQ's act-order interleaves columns of different blocks; ours are contiguous runs
    of 32/64/128 columns sharing a scale). The block's scale search still sees it in natural order, so a
    diagonal H gives quantize()'s bytes either way. SmolLM2-135M int4 (session 21): output error
    tr(ΔW H ΔWᵀ) on the calibration H −3 % (ffn_gate) to −12 % (attn_o) per role; ppl on 8 chunks 13.398 ->
    13.189, on 32 chunks 13.876 -> 13.867 (f16 12.202).
  * lazy batch updates: within a batch of LAZY = 128 columns the errors of each quantization group reach
    the rest of the batch in one product, and the batch's errors reach the later columns in one product;
    inside a group each column's current value is computed when it is reached (left-looking: one
    matrix-vector product of the group's earlier errors), so a column step touches one column, not the
    rest of the group. Same algebra as the textbook per-column update in another summation order
    (tests/test_gptq_blocked.py checks it against that algorithm).
  * one BLAS thread (quant/_blas.py): the factorisations and products here are small; with two OpenBLAS
    threads on a busy 2-core machine they ran 10-50x slower. export.py runs groups of tensors in worker
    processes instead (gptq_jobs.py).
  * scales: at the start of each quantization block (B columns) the block's scale (int4: d; int4a:
    d and m) is chosen per row by int4.py's error-minimising search applied to the CURRENT weights
    of that block, i.e. with the updates from every earlier column already applied. The search
    weighs element j by `scale_weights[j]` (default diag H: the same imatrix weighting --calib gives
    plain quantization; in the setting above with 8192 tokens, unweighted gave 14.05 vs 13.56 at damp
    0.01, and GPTQ's own column weights 1/U_jj² 13.39 vs 13.21 at damp 0.1). Each column's codes are
    then the nearest for that fixed scale.
  * nl4_32 (the non-uniform table of nl4.py): the block's scale is nl4.nl4_scale's weighted search on the
    current weights, each column's code the nearest table value for it (nl4.nl4_nearest), ŵ = d·VALUES[q].
  * a diagonal H has nothing to feed forward: the result is then quantize(w, dtype, importance=diag H)
    byte for byte (tests/test_gptq.py).
Precision: float32 weights/updates (as the reference implementation), H⁻¹ and its factor in float64.
"""
from __future__ import annotations

import numpy as np

from . import int4, nl4
from ._blas import blas_threads
from ._blocks import f16_bytes, f16_from_bytes, f16_round, safe_div, unpack_nibbles
from .dtypes import dtype_info, row_bytes

__all__ = ["gptq_quantize", "inverse_factor", "output_error"]

DAMP = 0.1                # λ / mean(diag H), see above
LAZY = 128                # columns per lazy batch (a multiple of every int4 block size)
_ROW_CHUNK = 1 << 21      # ~elements per row chunk (W chunk of 2M float32 = 8 MB)
ORDER = "act"              # gptq_quantize's default column order: "act" (block_act_order) or "natural"
_REFINE_CHUNK = 1 << 22   # refine_scales: elements of its [nb, rows, cols] product per row chunk (16 MB)


def supported(dtype: str) -> bool:
    """Whether gptq_quantize handles dtype (the int4 families and nl4_32)."""
    return dtype.startswith("int4") or dtype == "nl4_32"


def inverse_factor(h: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """float [n, n] symmetric PSD H -> float64 upper-triangular U with (H + λI)⁻¹ = UᵀU.

    λ = damp · mean(diag H); zero diagonal entries are set to 1 first. ValueError if H is not square,
    not finite, or stays indefinite after raising λ 10⁴-fold."""
    h = np.array(h, dtype=np.float64)
    n = h.shape[0]
    if h.ndim != 2 or h.shape != (n, n) or n == 0:
        raise ValueError(f"gptq: H must be a square matrix, got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError("gptq: H contains NaN or infinity")
    if not (np.isfinite(damp) and damp >= 0):
        raise ValueError(f"gptq: damp must be a finite value >= 0, got {damp}")
    h = (h + h.T) / 2
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    lam = damp * float(np.mean(np.diag(h)))
    eye = np.eye(n)
    with blas_threads(1):  # small LAPACK steps: one thread (quant/_blas.py says why)
        for _ in range(5):
            try:
                # Reversed Cholesky: J(H + λI)J = L Lᵀ with J the reversal, so H + λI = R Rᵀ with
                # R = J L J upper; then (H + λI)⁻¹ = R⁻ᵀ R⁻¹ = UᵀU with U = R⁻¹ upper (one factorisation).
                lo = np.linalg.cholesky(np.ascontiguousarray((h + lam * eye)[::-1, ::-1]))
                return np.triu(_upper_inverse(np.ascontiguousarray(lo[::-1, ::-1])))
            except np.linalg.LinAlgError:
                lam = lam * 10 if lam > 0 else 1e-6
    raise ValueError("gptq: H + λI is not positive definite even with 10⁴× dampening")


def _upper_inverse(r: np.ndarray) -> np.ndarray:
    """Inverse of an upper-triangular matrix: LAPACK trtri through scipy when installed (n³/3 flops),
    else numpy's general solve (about 6x the work; 1536² takes ~1 s)."""
    try:
        from scipy.linalg.lapack import dtrtri
    except ImportError:
        return np.linalg.solve(r, np.eye(r.shape[0]))
    inv, info = dtrtri(r, lower=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"trtri info {info}")
    return inv


def output_error(w: np.ndarray, w_hat: np.ndarray, h: np.ndarray) -> float:
    """tr((W - Ŵ) H (W - Ŵ)ᵀ), float64: the mean squared matmul output error summed over outputs."""
    r = np.asarray(w, np.float64) - np.asarray(w_hat, np.float64)
    return float(np.einsum("ij,ij->", r @ np.asarray(h, np.float64), r))


def gptq_quantize(w: np.ndarray, dtype: str, h: np.ndarray, damp: float = DAMP,
                  scale_weights: np.ndarray | str | None = "hdiag", factor: np.ndarray | None = None,
                  refine: bool = False, order: str | None = None) -> np.ndarray:
    """GPTQ-quantize float32 [rows, cols] to `dtype`'s bytes, uint8 [rows, row_bytes(dtype, cols)].

    scale_weights: per-column weights of the per-block scale search: "hdiag" (diag H, default),
    None (unweighted), or an array of `cols` values >= 0. factor: inverse_factor(h, damp) when the
    caller already has it (used by order "natural" only). order: "act" (block_act_order) or "natural";
    None = ORDER. refine: then re-fit the block scales of
    int4_B / nl4_32 to the codes (refine_scales; a row keeps its scales where that is not better).
    ValueError on a non-int4 dtype, cols
    not a multiple of the block, non-finite w or H, or H of the wrong size."""
    t = dtype_info(dtype)
    if not supported(dtype):
        raise ValueError(f"gptq: only the int4 block types and nl4_32 are supported, not {dtype}")
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"gptq: expected a 2-D weight, got shape {w.shape}")
    rows, cols = w.shape
    if row_bytes(dtype, cols) == 0:
        raise ValueError(f"gptq: {dtype} needs cols to be a positive multiple of {t.block}, got {cols}")
    if np.shape(h) != (cols, cols):
        raise ValueError(f"gptq: H must be [{cols}, {cols}] for a weight of {cols} columns, got {np.shape(h)}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"gptq: {dtype} weights must be finite (found NaN or inf)")
    order = ORDER if order is None else order
    perm = None
    if order == "act":  # block-preserving act-order (block_act_order); factor is of the natural order
        perm = block_act_order(h, t.block)
        hp = np.asarray(h)[np.ix_(perm, perm)]
        u = inverse_factor(hp, damp).astype(np.float32)
        sw = _scale_weights(scale_weights, h, cols, t.block)  # natural order: _gptq_rows maps the blocks
    elif order == "natural":
        u = (inverse_factor(h, damp) if factor is None else np.asarray(factor)).astype(np.float32)
        sw = _scale_weights(scale_weights, h, cols, t.block)
    else:
        raise ValueError(f"gptq: order must be 'natural' or 'act', got {order!r}")
    out = np.empty((rows, row_bytes(dtype, cols)), dtype=np.uint8)
    step = max(1, _ROW_CHUNK // cols)
    hd = None
    if refine and not dtype.startswith("int4a"):
        hd = np.array(h, np.float64)
        hd[np.diag_indices(cols)] += damp * float(np.mean(np.diag(hd)))
        hd = hd.astype(np.float32)
    with np.errstate(over="ignore", under="ignore"), blas_threads(1):  # one BLAS thread: quant/_blas.py
        for r0 in range(0, rows, step):
            wc = w[r0:r0 + step] if perm is None else w[r0:r0 + step][:, perm]
            out[r0:r0 + step] = _gptq_rows(wc, dtype, t.block, u, sw, perm)
            if hd is not None:
                out[r0:r0 + step] = refine_scales(w[r0:r0 + step], out[r0:r0 + step], dtype, hd)
    return out


def refine_scales(w: np.ndarray, packed: np.ndarray, dtype: str, h: np.ndarray) -> np.ndarray:
    """Codes fixed, the per-block scales d of int4_B / nl4_32 rows re-fitted to GPTQ's own objective:
    per row, min over d of (w - ŵ) H (w - ŵ)ᵀ with ŵ_j = d_b(j) · v_j (v the code values) is the linear
    least-squares problem G d = c, G[b, b'] = Σ_{j∈b, k∈b'} v_j H_jk v_k, c[b] = Σ_{j∈b} v_j (H w)_j.
    The solution is rounded to f16; a row keeps its old scales unless its objective drops.
    w [r, cols], packed [r, row_bytes] -> packed with new scales.

    One product per row chunk: T[b, i, k] = Σ_{j∈b} v_ij H_jk ([nb, rows, cols], r · cols² flops). Then
    G[i, b, b'] = Σ_{k∈b'} T[b, i, k] v_ik, c[i, b] = Σ_k T[b, i, k] w_ik, and the change of the objective
    from d to d' = d + δ is (e' - e) H (e' + e)ᵀ = -Σ_k (Σ_b δ_b T[b, i, k]) (e' + e)_k (e = w - ŵ): a
    difference computed as such, not two large objectives subtracted."""
    r, cols = w.shape
    t = dtype_info(dtype)
    B, nb = t.block, cols // t.block
    blocks = packed.reshape(r, nb, -1)
    nibbles = unpack_nibbles(blocks[..., 2:])
    v = nl4.VALUES[nibbles] if dtype == "nl4_32" else nibbles.astype(np.float32) - np.float32(8)
    v = v.astype(np.float32)                                         # [r, nb, B]
    d_old = f16_from_bytes(blocks[..., 0:2])                        # [r, nb]
    hb = np.ascontiguousarray(h, dtype=np.float32).reshape(nb, B, cols)
    out = blocks.copy()
    step = max(1, _REFINE_CHUNK // (nb * cols))
    eye = np.eye(nb)
    for r0 in range(0, r, step):
        vv, ww, do = v[r0:r0 + step], w[r0:r0 + step], d_old[r0:r0 + step]
        n = vv.shape[0]
        tt = np.matmul(vv.transpose(1, 0, 2), hb)                    # [nb, n, cols]
        g = np.einsum("bicj,icj->ibc", tt.reshape(nb, n, nb, B), vv).astype(np.float64)
        c = np.einsum("bik,ik->ib", tt, ww).astype(np.float64)
        ridge = 1e-9 * np.maximum(np.einsum("ibb->i", g), 1e-30)[:, None, None] * eye
        d_new = f16_round(np.linalg.solve(g + ridge, c[..., None])[..., 0].astype(np.float32))
        ok = np.isfinite(d_new).all(axis=1)
        d_new = np.where(ok[:, None], d_new, do)
        what = np.einsum("ib,bik->ik", d_new - do, tt)                # (ŵ' - ŵ) H
        e_sum = (2 * ww - ((d_new + do)[:, :, None] * vv).reshape(n, cols))  # e' + e
        better = ok & (np.einsum("ik,ik->i", what, e_sum, dtype=np.float64) > 0)
        out[r0:r0 + step][better, :, 0:2] = f16_bytes(d_new[better])
    return out.reshape(r, -1)


def _scale_weights(sw, h, cols: int, block: int) -> np.ndarray | None:
    """Per-column search weights -> float32 [cols/block, block] normalised like quantize()'s importance."""
    if sw is None:
        return None
    v = np.diag(np.asarray(h, np.float64)).copy() if isinstance(sw, str) and sw == "hdiag" else \
        np.asarray(sw, np.float64).reshape(-1)
    if v.size != cols or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError(f"gptq: scale_weights must be {cols} finite values >= 0 (or 'hdiag' / None)")
    mean = v.mean()
    if mean == 0 or np.all(v == v[0]):
        return None
    return ((v + 0.01 * mean) / mean).astype(np.float32).reshape(cols // block, block)


def block_act_order(h: np.ndarray, block: int) -> np.ndarray:
    """GPTQ's act-order (most active inputs first) that keeps every quantization block contiguous: blocks in
    descending Σ diag H, and within a block columns in descending diag H (stable sorts: ties keep their
    order). int [cols], a permutation whose every run of `block` entries is one block of the natural order."""
    dg = np.diag(np.asarray(h, np.float64)).reshape(-1, block)
    blocks = np.argsort(-dg.sum(axis=1), kind="stable")
    inner = np.argsort(-dg, axis=1, kind="stable")
    return (blocks[:, None] * block + inner[blocks]).reshape(-1)


def _gptq_rows(w: np.ndarray, dtype: str, block: int, u: np.ndarray, sw: np.ndarray | None,
               perm: np.ndarray | None = None) -> np.ndarray:
    """GPTQ on a row chunk [r, cols] -> packed bytes [r, row_bytes]. perm: w's columns are those of the
    natural order permuted by perm (block_act_order; u in the same order, sw in the natural order); the
    bytes are packed in the natural order.

    Works on the transpose Wt [cols, r] so a column of W is a contiguous row of Wt; every step is vectorised
    over the r rows of W. Three levels, all the same algebra (column k's current value is its original minus
    Σ_{i<k} e_i U_ik over the columns i already quantized):
      within a quantization group (left-looking): column j's current value is computed when it is reached,
        Wt[j] - Σ_{g0<=i<j} U_ij e_i, one matrix-vector product; nothing else in the group is touched per column;
      after a group: the rest of its lazy batch gets the group's errors in one product (the next group's scale
        search needs its current weights);
      after a lazy batch of LAZY columns: every later column, in one product."""
    r, cols = w.shape
    asym = dtype.startswith("int4a")
    nl = dtype == "nl4_32"
    lo, hi = (0, 15) if asym else (-8, 7)
    Wt = np.array(w.T, dtype=np.float32, order="C")          # [cols, r], updated per group / batch
    ut = np.ascontiguousarray(u.T)                           # ut[j, i] = U_ij: the in-group coefficients, contiguous
    codes = np.empty((cols, r), np.float32)
    nb = cols // block
    d_all = np.empty((nb, r), np.float32)
    m_all = np.zeros((nb, r), np.float32)
    Et = np.empty((cols, r), np.float32)                     # scaled errors e_j = (w_j - ŵ_j) / U_jj
    col = np.empty(r, np.float32)
    q = np.empty(r, np.float32)
    for b0 in range(0, cols, LAZY):
        b1 = min(b0 + LAZY, cols)
        for g0 in range(b0, b1, block):
            g1 = g0 + block
            gi = g0 // block
            if perm is None:
                x = np.ascontiguousarray(Wt[g0:g1].T)[:, None, :]  # [r, 1, B]: current (updated) weights
                ob = gi
            else:  # the scale search sees the block in its natural order (so a diagonal H changes nothing)
                x = np.ascontiguousarray(Wt[g0:g1][np.argsort(perm[g0:g1])].T)[:, None, :]
                ob = perm[g0] // block
            wts = None if sw is None else sw[ob][None, :]
            if asym:
                d, m = int4.int4a_params(x, wts)
                m_all[gi] = m[:, 0]
            elif nl:
                d = nl4.nl4_scale(x, wts)
            else:
                d = int4.int4_scale(x, wts)
            d = d[:, 0]
            d_all[gi] = d
            m = m_all[gi]
            inv_d = safe_div(np.float32(1), d)               # as int4_codes / int4a_codes
            for j in range(g0, g1):
                if j > g0:
                    np.subtract(Wt[j], ut[j, g0:j] @ Et[g0:j], out=col)
                else:
                    col[:] = Wt[j]
                if nl:
                    qi = nl4.nl4_nearest(col, d)
                    codes[j] = qi
                    col_hat = d * nl4.VALUES[qi]
                else:
                    if asym:
                        np.subtract(col, m, out=q)
                        q *= inv_d
                    else:
                        np.multiply(col, inv_d, out=q)
                    np.rint(q, out=q)
                    np.clip(q, lo, hi, out=q)
                    codes[j] = q
                    col_hat = d * q
                    if asym:
                        col_hat += m
                e = Et[j]
                np.subtract(col, col_hat, out=e)
                e /= u[j, j]
            if g1 < b1:
                Wt[g1:b1] -= u[g0:g1, g1:b1].T @ Et[g0:g1]
        if b1 < cols:
            Wt[b1:] -= u[b0:b1, b1:].T @ Et[b0:b1]
    if perm is not None:  # back to the natural order: codes per column, scales per block
        c0, g = np.empty_like(codes), perm[::block] // block
        c0[perm] = codes
        codes, d0, m0 = c0, np.empty_like(d_all), np.empty_like(m_all)
        d0[g], m0[g] = d_all, m_all
        d_all, m_all = d0, m0
    cb = np.ascontiguousarray(codes.T).reshape(r, nb, block)
    if nl:
        return nl4.pack_nl4(d_all.T, cb.astype(np.uint8)).reshape(r, -1)
    if asym:
        return int4.pack_int4a(d_all.T, m_all.T, cb).reshape(r, -1)
    return int4.pack_int4(d_all.T, cb).reshape(r, -1)
