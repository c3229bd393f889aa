// train_head.cpp — output norm, head and cross-entropy of a training step (train_layer.h), the vocabulary in
// chunks of Vc rows of the head so the [T × V] logits never exist at once:
//   xnf = rmsnorm(xf)·output_norm;  per chunk: l = W_c·xnf (backend matmul: inference numerics)
//   pass 1: lse per scored row (kt.lse_update), l[target] picked from its chunk
//   loss_sum = Σ_scored (lse − l_target)   (double, rows in order)
//   pass 2 (grads): the chunk again, dl = softmax − onehot (kt.xent_grad), d xnf += W_cᵀ·dl (kt.gemm_t),
//   then d xf = rmsnorm_bwd(d xnf).
#include <cmath>
#include <limits>

#include "train_layer.h"

namespace edge {

void train_head(Trainer::Impl& I, const float* xf, bool grads, double* loss_sum, int64_t* n_scored, float* dxf) {
    const TrainDims& d = I.d;
    CpuBackend& be = *I.be;
    TrainBuffers& b = I.b;
    const Matrix& W = I.model->output();
    const int64_t T = I.T, D = d.D, V = d.V, Vc = d.Vc;
    be.rmsnorm(xf, I.model->output_norm(), I.eps(), T, D, b.xnf);
    for (int64_t t = 0; t < T; ++t) {
        b.lse_m[t] = -std::numeric_limits<float>::infinity();
        b.lse_s[t] = 0.f;
        b.ltgt[t] = 0.f;
    }
    auto chunk = [&](int64_t c0, Matrix* wc) {
        *wc = W;
        wc->data = W.data + (size_t)c0 * W.row_bytes;
        wc->rows = std::min(Vc, V - c0);
        const Matrix* pw = wc;
        be.matmul(&pw, &b.lc, 1, b.xnf, T);
    };
    const lse_update_fn lse = I.kt->lse_update.fn;
    for (int64_t c0 = 0; c0 < V; c0 += Vc) {
        Matrix wc;
        chunk(c0, &wc);
        const int64_t nc = wc.rows;
        be.pool().run(T, [&](int64_t lo, int64_t hi, int) {
            for (int64_t t = lo; t < hi; ++t) {
                const int32_t y = b.tgt[t];
                if (y < 0) continue;
                lse(b.lc + t * nc, nc, &b.lse_m[t], &b.lse_s[t]);
                if (y >= c0 && y < c0 + nc) b.ltgt[t] = b.lc[t * nc + (y - c0)];
            }
        }, 8);
    }
    double loss = 0;
    int64_t n = 0;
    for (int64_t t = 0; t < T; ++t) {
        if (b.tgt[t] < 0) continue;
        b.lse_m[t] = b.lse_m[t] + std::log(b.lse_s[t]);  // now the log-sum-exp
        loss += (double)b.lse_m[t] - (double)b.ltgt[t];
        ++n;
    }
    *loss_sum = loss;
    *n_scored = n;
    if (!grads) return;
    train_zero(b.dxn, T * D);
    const xent_grad_fn xg = I.kt->xent_grad.fn;
    for (int64_t c0 = 0; c0 < V; c0 += Vc) {
        Matrix wc;
        chunk(c0, &wc);
        const int64_t nc = wc.rows;
        be.pool().run(T, [&](int64_t lo, int64_t hi, int) {
            for (int64_t t = lo; t < hi; ++t) {
                const int32_t y = b.tgt[t];
                float* dl = b.dl + t * nc;
                if (y < 0) {
                    for (int64_t i = 0; i < nc; ++i) dl[i] = 0.f;
                    continue;
                }
                xg(b.lc + t * nc, nc, b.lse_m[t], 1.0f, dl);
                if (y >= c0 && y < c0 + nc) dl[y - c0] -= 1.0f;
            }
        }, 8);
        train_gemm_t(I, wc, b.dl, T, b.dxn);
    }
    train_zero(dxf, T * D);
    train_rmsnorm_bwd(I, xf, I.model->output_norm(), T, D, b.dxn, dxf);
}

}  // namespace edge
