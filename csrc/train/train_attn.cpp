// train_attn.cpp — the attention half of a decoder layer for training (train_layer.h):
//   xn1 = rmsnorm(x_in)·attn_norm;  q,k,v = W·xn1 (+ LoRA) (+ bias, + trainable bias)   (qp/kp before q/k norm)
//   q,k = qk_norm(q,k) (per head, or over the whole projection);  RoPE on layers that have it
//   att = causal (sliding-window) attention per sequence;  x2 = x_in + W_o·att (+ LoRA, + bias)
// The forward runs the backend's ops (inference numerics). The backward recomputes the probabilities
// (kt.attention_bwd), undoes RoPE by rotating with −sin, and the norms with kt.rmsnorm_bwd.
// attention_bwd accumulates dK / dV over the query rows of one kv head: one task per (sequence, kv head)
// runs its query heads in order, so no two threads write one element.
#include <cmath>
#include <cstring>

#include "train_layer.h"

namespace edge {

namespace {

void matmul_target(Trainer::Impl& I, int64_t il, int t, const Matrix& W, const float* x, float* y) {
    const LowRank lr = I.lora(il, t);
    const LowRank* ad = &lr;
    const Matrix* w = &W;
    I.be->matmul(&w, &y, 1, x, I.T, lr.rank > 0 ? &ad : nullptr);
    if (const float* b = I.bias(il, t)) I.be->add_bias(y, b, I.T, W.rows);
}

}  // namespace

void train_attn_fwd(Trainer::Impl& I, int64_t il, const float* x_in) {
    const TrainDims& d = I.d;
    const Model::LayerWeights& w = I.w(il);
    const LlmConfig& c = I.model->config();
    CpuBackend& be = *I.be;
    TrainBuffers& b = I.b;
    const int64_t T = I.T, S = I.S;
    const float eps = I.eps();
    be.rmsnorm(x_in, w.attn_norm, eps, T, d.D, b.xn1);
    float* yq = d.qk_norm ? b.qp : b.q;
    float* yk = d.qk_norm ? b.kp : b.k;
    {
        const LowRank lq = I.lora(il, TGT_Q), lk = I.lora(il, TGT_K), lv = I.lora(il, TGT_V);
        const LowRank* ad[3] = {&lq, &lk, &lv};
        const Matrix* ws[3] = {&w.q, &w.k, &w.v};
        float* ys[3] = {yq, yk, b.v};
        be.matmul(ws, ys, 3, b.xn1, T, ad);
    }
    if (w.q_bias) {
        be.add_bias(yq, w.q_bias, T, d.Dq);
        be.add_bias(yk, w.k_bias, T, d.Dkv);
        be.add_bias(b.v, w.v_bias, T, d.Dkv);
    }
    if (const float* p = I.bias(il, TGT_Q)) be.add_bias(yq, p, T, d.Dq);
    if (const float* p = I.bias(il, TGT_K)) be.add_bias(yk, p, T, d.Dkv);
    if (const float* p = I.bias(il, TGT_V)) be.add_bias(b.v, p, T, d.Dkv);
    if (d.qk_norm && c.qk_norm_full) {
        be.rmsnorm(b.qp, w.q_norm, eps, T, d.Dq, b.q);
        be.rmsnorm(b.kp, w.k_norm, eps, T, d.Dkv, b.k);
    } else if (d.qk_norm) {
        be.rmsnorm(b.qp, w.q_norm, eps, T * d.H, d.Dh, b.q);
        be.rmsnorm(b.kp, w.k_norm, eps, T * d.Hkv, d.Dh, b.k);
    }
    const bool rope = I.model->layer_has_rope(il);
    const int64_t window = I.model->layer_is_swa(il) ? c.swa_window : 0;
    for (int64_t s = 0; s < I.B; ++s) {
        float *q = b.q + s * S * d.Dq, *k = b.k + s * S * d.Dkv, *v = b.v + s * S * d.Dkv;
        if (rope) {
            be.rope(q, S, d.H, d.Dh, b.cos, b.sin);
            be.rope(k, S, d.Hkv, d.Dh, b.cos, b.sin);
        }
        be.kv_append(b.kv, k, v, S, 0, d.Hkv, d.Dh);
        be.attention(q, b.kv, S, 0, d.H, d.Hkv, d.Dh, window, b.att + s * S * d.Dq);
    }
    matmul_target(I, il, TGT_O, w.o, b.att, b.x2);
    be.add(b.x2, x_in, T * d.D);
}

void train_attn_bwd(Trainer::Impl& I, int64_t il, const float* x_in, const float* dx2, bool need_dx, float* dx) {
    const TrainDims& d = I.d;
    const Model::LayerWeights& w = I.w(il);
    const LlmConfig& c = I.model->config();
    CpuBackend& be = *I.be;
    TrainBuffers& b = I.b;
    const int64_t T = I.T, S = I.S, Dh = d.Dh, Dq = d.Dq, Dkv = d.Dkv, group = d.H / d.Hkv;
    // through W_o
    train_zero(b.datt, T * Dq);
    train_linear_bwd(I, il, TGT_O, w.o, b.att, dx2, b.datt);
    // attention: dq "=", dk / dv accumulate
    train_zero(b.dk, T * Dkv);
    train_zero(b.dv, T * Dkv);
    const int64_t window = I.model->layer_is_swa(il) ? c.swa_window : 0;
    const float scale = 1.0f / std::sqrt((float)Dh);
    const attention_bwd_fn fn = I.kt->attention_bwd.fn;
    be.pool().run(I.B * d.Hkv, [&](int64_t lo, int64_t hi, int tid) {
        float* scratch = b.att_scratch + (int64_t)tid * 2 * d.S;
        for (int64_t task = lo; task < hi; ++task) {
            const int64_t s = task / d.Hkv, kvh = task % d.Hkv, r0 = s * S;
            const float* k = b.k + r0 * Dkv + kvh * Dh;
            const float* v = b.v + r0 * Dkv + kvh * Dh;
            float* dk = b.dk + r0 * Dkv + kvh * Dh;
            float* dv = b.dv + r0 * Dkv + kvh * Dh;
            for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
                for (int64_t t = 0; t < S; ++t) {
                    const int64_t p_begin = window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
                    const int64_t row = (r0 + t) * Dq + h * Dh;
                    fn(b.q + row, k, Dkv, v, Dkv, p_begin, t + 1, Dh, scale, b.datt + row, scratch, b.dq + row, dk, dv);
                }
        }
    });
    if (I.model->layer_has_rope(il))
        for (int64_t s = 0; s < I.B; ++s) {  // the transpose of a rotation: rotate by −angle
            be.rope(b.dq + s * S * Dq, S, d.H, Dh, b.cos, b.nsin);
            be.rope(b.dk + s * S * Dkv, S, d.Hkv, Dh, b.cos, b.nsin);
        }
    const float *dq = b.dq, *dk = b.dk;
    if (d.qk_norm) {
        train_zero(b.dqp, T * Dq);
        train_zero(b.dkp, T * Dkv);
        if (c.qk_norm_full) {
            train_rmsnorm_bwd(I, b.qp, w.q_norm, T, Dq, b.dq, b.dqp);
            train_rmsnorm_bwd(I, b.kp, w.k_norm, T, Dkv, b.dk, b.dkp);
        } else {
            train_rmsnorm_bwd(I, b.qp, w.q_norm, T * d.H, Dh, b.dq, b.dqp);
            train_rmsnorm_bwd(I, b.kp, w.k_norm, T * d.Hkv, Dh, b.dk, b.dkp);
        }
        dq = b.dqp, dk = b.dkp;
    }
    float* dxn = need_dx ? b.dxn : nullptr;
    if (dxn) train_zero(dxn, T * d.D);
    train_linear_bwd(I, il, TGT_Q, w.q, b.xn1, dq, dxn);
    train_linear_bwd(I, il, TGT_K, w.k, b.xn1, dk, dxn);
    train_linear_bwd(I, il, TGT_V, w.v, b.xn1, b.dv, dxn);
    if (!need_dx) return;
    if (dx != dx2) std::memcpy(dx, dx2, (size_t)(T * d.D) * sizeof(float));
    train_rmsnorm_bwd(I, x_in, w.attn_norm, T, d.D, b.dxn, dx);
}

}  // namespace edge
