// backward.h — the training kernels' contracts (the backward of the forward ops in kernels.h, and
// the optimizer). Same rules as kernels.h: pure, no allocation / state / throwing, no vector alignment
// required (W any byte alignment; the f32 arrays are float arrays, so 4-byte aligned), the scalar
// reference (csrc/kernels/ref/backward_ref.cpp, suffix _ref) is the spec, SIMD levels register what
// they have and keep the reference elsewhere. Threading is the caller's: every kernel is one piece of
// work; splits are chosen so no two threads write one output element.
//
// Notation: T tokens, n a row length, Dh a head dim. "+=" outputs accumulate (the caller zeroes them
// once per step), "=" outputs are overwritten. f32 everywhere except the stored weight W.
#pragma once

#include <cstdint>

namespace edge {

// Transposed product with a frozen stored weight (the input gradient of y = W·x):
//   dX[c·ldx + j] += Σ_{r < rows} W[r][j] · dY[c·ldy + r]       j < n, c < ncols
// W: rows × n of the table's dtype, row r at (const char*)W + r·w_stride bytes (any stored dtype,
// dequantized block by block on the fly, never as a whole matrix); n a multiple of the dtype's block
// size. A column range [j0, j0 + n') of a wider W is W + dtype_row_bytes(dtype, j0) with n = n'
// (j0 block-aligned), so callers split the work over column blocks. The reference sums r in
// ascending order in f32; SIMD bound: |Δ| ≤ 1e-5 · Σ_r |W[r][j] · dY[r]| + 1e-30.
typedef void (*gemm_t_fn)(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy,
                          int64_t ncols, float* dX, int64_t ldx);

// Weight gradient of an f32 product (LoRA's A and B, a bias-free outer product), summed over tokens:
//   C[i·ldc + j] += Σ_{t < T} A[t·lda + i] · B[t·ldb + j]        i < M, j < N
// Reference: t ascending in f32. SIMD bound |Δ| ≤ 1e-5 · Σ_t |A·B| + 1e-30.
typedef void (*gemm_tn_f32_fn)(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M,
                               int64_t N, float* C, int64_t ldc);

// RMSNorm backward of one row: y = x · inv · w, inv = 1 / sqrt(mean(x²) + eps) (w = nullptr: w = 1).
//   g = dy ⊙ w;  dx += inv · g − x · inv³ · (Σ g ⊙ x) / n;   dw += dy ⊙ x · inv   (dw may be nullptr)
// Reference: f32 sums in index order (mean(x²) exactly as the forward rmsnorm). SIMD bound:
// |Δdx| ≤ 1e-5 · (inv · |g| + |x| · inv³ · Σ|g ⊙ x| / n) + 1e-30, |Δdw| ≤ 1e-6 · |dy · x · inv| + 1e-30.
typedef void (*rmsnorm_bwd_fn)(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx,
                               float* dw);

// SwiGLU backward: y = silu(g) · u, s = σ(g) = 1 / (1 + e^-g):
//   dg[i] = dy[i] · u[i] · s · (1 + g[i] · (1 − s));   du[i] = dy[i] · g[i] · s        ("=", i < n)
// dg / du may alias g / u (each element is read before it is written). Reference: expf; SIMD
// variants the polynomial exp: |Δ| ≤ 1e-6 · (|dy · u| · (1 + |g|) + |dy · g|) + 1e-30.
typedef void (*silu_mul_bwd_fn)(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);

// Attention backward for one query row of one head (causal, probabilities recomputed):
//   p_j = softmax_j(scale · q·K_j), j in [p_begin, n_pos);  o = Σ p_j V_j  (recomputed too)
//   dq   = scale · Σ_j p_j (dout·V_j − dout·o) K_j                           ("=", Dh floats)
//   dK_j += scale · p_j (dout·V_j − dout·o) q;   dV_j += p_j · dout          (j in [p_begin, n_pos))
// K_j at k + j·k_stride, V_j at v + j·v_stride (plain rows, not the KV cache's tiles); dK / dV use the
// same strides. scale = 1 / sqrt(Dh) (passed). scratch: 2·n_pos floats. A caller runs all query rows
// of one head on one thread (dK / dV accumulate across them). Reference: f32, expf, j ascending.
// SIMD bound: |Δ| ≤ 1e-5 · (max_j ||V_j||_inf · ||dout||_1 · scale · max_j ||K_j||_inf · Dh + ||dout||_inf) + 1e-30
// per element (stated loosely: the softmax derivative sums products of the recomputed terms).
typedef void (*attention_bwd_fn)(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                                 int64_t p_begin, int64_t n_pos, int64_t Dh, float scale, const float* dout,
                                 float* scratch, float* dq, float* dk, float* dv);

// Cross-entropy over logits chunks (the head is applied chunk by chunk; the [T × vocab] logits never
// exist at once). Forward, an online log-sum-exp over one chunk l[0..n) of a row:
//   m' = max(m, max_i l_i);  s' = s · e^(m − m') + Σ_i e^(l_i − m')        (start: m = -inf, s = 0)
// so lse = m + log(s) after the last chunk. Backward, the gradient of scale · (lse − l_target):
//   dl[i] = scale · e^(l[i] − lse)   ("=", i < n; the caller subtracts scale at the target)
// Reference: expf, i ascending. SIMD: polynomial exp, |Δs| ≤ 1e-6 · s', |Δdl| ≤ 1e-6 · |dl| + 1e-30.
typedef void (*lse_update_fn)(const float* l, int64_t n, float* m, float* s);
typedef void (*xent_grad_fn)(const float* l, int64_t n, float lse, float scale, float* dl);

// AdamW (decoupled weight decay), one update of n parameters:
//   m = b1·m + (1−b1)·g;  v = b2·v + (1−b2)·g²;
//   p −= lr · ( (m / bc1) / (sqrt(v / bc2) + eps) + wd · p )       bc1 = 1 − b1^t, bc2 = 1 − b2^t
// Reference: f32, sqrtf. SIMD bound: |Δp| ≤ 1e-6 · lr · (|m/bc1| / (sqrt(v/bc2) + eps) + |wd · p|) + 1e-30.
struct AdamParams {
    float lr, b1, b2, eps, wd, bc1, bc2;
};
typedef void (*adamw_fn)(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a);

}  // namespace edge
