// train_ops.cpp — threaded wrappers of the backward kernels (train_layer.h). Every split writes disjoint
// outputs (column blocks of dX, rows of dB, columns of dA, elements of a bias), and each output element
// is one kernel call over the same rows in the same order whatever the split, so the results do not
// depend on the thread count.
#include <algorithm>
#include <cstring>

#include "train_layer.h"

namespace edge {

LowRank Trainer::Impl::lora(int64_t il, int t) const {
    const TargetSlots& s = slot(il, t);
    LowRank r;
    if (s.a < 0) return r;
    r.a = theta + s.a;
    r.b = theta + s.b;
    r.rank = d.R;
    r.scale = lora_scale;
    return r;
}

const float* Trainer::Impl::bias(int64_t il, int t) const {
    const TargetSlots& s = slot(il, t);
    return s.bias < 0 ? nullptr : theta + s.bias;
}

void train_zero(float* p, int64_t n) { std::memset(p, 0, (size_t)n * sizeof(float)); }

void train_gemm_t(Trainer::Impl& I, const Matrix& W, const float* dY, int64_t T, float* dX) {
    const gemm_t_fn fn = I.kt->gemm_t[W.dtype].fn;
    const int64_t bs = dtype_traits(W.dtype).block, nb = W.cols / bs;
    const int64_t grain = std::max<int64_t>(1, 16 / bs);
    I.be->pool().run(nb, [&](int64_t b, int64_t e, int) {
        fn(W.data + dtype_row_bytes(W.dtype, b * bs), (int64_t)W.row_bytes, W.rows, (e - b) * bs, dY, W.rows, T,
           dX + b * bs, W.cols);
    }, grain);
}

namespace {

// C[M, N] += Aᵀ·B over T rows (kt.gemm_tn_f32), split over the larger of M and N.
void gemm_tn(Trainer::Impl& I, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M,
             int64_t N, float* C, int64_t ldc) {
    const gemm_tn_f32_fn fn = I.kt->gemm_tn_f32.fn;
    if (M >= N) {
        I.be->pool().run(M, [&](int64_t b, int64_t e, int) { fn(A + b, lda, B, ldb, T, e - b, N, C + b * ldc, ldc); }, 4);
    } else {
        I.be->pool().run(N, [&](int64_t b, int64_t e, int) { fn(A, lda, B + b, ldb, T, M, e - b, C + b, ldc); }, 16);
    }
}

// dX[T, n] += Wᵀ·dY for an f32 W [rows, n] (a LoRA factor), split over columns.
void gemm_t_f32(Trainer::Impl& I, const float* W, int64_t rows, int64_t n, const float* dY, int64_t T, float* dX) {
    const gemm_t_fn fn = I.kt->gemm_t[EDGE_DTYPE_F32].fn;
    I.be->pool().run(n, [&](int64_t b, int64_t e, int) {
        fn(W + b, n * (int64_t)sizeof(float), rows, e - b, dY, rows, T, dX + b, n);
    }, 16);
}

}  // namespace

void train_linear_bwd(Trainer::Impl& I, int64_t il, int t, const Matrix& W, const float* x, const float* dY, float* dX) {
    const int64_t T = I.T, rows = W.rows, n = W.cols;
    if (dX) train_gemm_t(I, W, dY, T, dX);
    const TargetSlots& s = I.slot(il, t);
    if (s.bias >= 0 && I.grad) {
        float* gb = I.grad + s.bias;
        I.be->pool().run(rows, [&](int64_t b, int64_t e, int) {
            for (int64_t tt = 0; tt < T; ++tt) {
                const float* dy = dY + tt * rows;
                for (int64_t i = b; i < e; ++i) gb[i] += dy[i];
            }
        }, 16);
    }
    if (s.a < 0) return;
    const int64_t R = I.d.R;
    const float sc = I.lora_scale;
    const float *A = I.theta + s.a, *Bm = I.theta + s.b;
    float *u = I.b.lr_u, *du = I.b.lr_du;
    // u = s·(A·x) [T, R]
    I.kt->gemm[EDGE_DTYPE_F32].fn(A, n * (int64_t)sizeof(float), R, n, x, n, T, u, R);
    for (int64_t i = 0; i < T * R; ++i) u[i] *= sc;
    // du = s·(Bᵀ·dY) [T, R]
    train_zero(du, T * R);
    I.kt->gemm_t[EDGE_DTYPE_F32].fn(Bm, R * (int64_t)sizeof(float), rows, R, dY, rows, T, du, R);
    for (int64_t i = 0; i < T * R; ++i) du[i] *= sc;
    if (I.grad) {
        gemm_tn(I, dY, rows, u, R, T, rows, R, I.grad + s.b, R);  // dB [rows, R] += dYᵀ·u
        gemm_tn(I, du, R, x, n, T, R, n, I.grad + s.a, n);        // dA [R, n] += duᵀ·x
    }
    if (dX) gemm_t_f32(I, A, R, n, du, T, dX);  // dX += Aᵀ·du
}

void train_rmsnorm_bwd(Trainer::Impl& I, const float* x, const float* w, int64_t rows, int64_t n, const float* dy, float* dx) {
    const rmsnorm_bwd_fn fn = I.kt->rmsnorm_bwd.fn;
    const float eps = I.eps();
    I.be->pool().run(rows, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) fn(x + r * n, w, eps, n, dy + r * n, dx + r * n, nullptr);
    }, 4);
}

}  // namespace edge
