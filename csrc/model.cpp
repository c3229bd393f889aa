// model.cpp — the forward pass: embedding, per-layer attention (RoPE/NoPE, full or sliding window),
// dense or MoE FFN (moe.h), head. Loading is in model_load.cpp.
#include "model.h"

#include <algorithm>
#include <cmath>

#include "ops.h"

namespace edge {

ExpertStats Model::moe_stats() const { return store_ ? store_->stats() : ExpertStats(); }

void Model::moe_reset_stats() {
    if (store_) store_->reset_stats();
}

Status Model::truncate(int64_t n) {
    if (n < 0 || n > n_past_) return status_error(Code::INVALID_ARGUMENT, "truncate: position out of range");
    n_past_ = n;
    return Status::ok();
}

Status Model::eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits) {
    if (n <= 0) return status_error(Code::INVALID_ARGUMENT, "eval: no tokens");
    if (n_past_ + n > ctx_)
        return status_error(Code::INVALID_ARGUMENT, strfmt("context is full: %lld cached + %lld new tokens > ctx %lld (use a larger ctx or reset)",
                                                           (long long)n_past_, (long long)n, (long long)ctx_));
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
            return status_error(Code::INVALID_ARGUMENT, strfmt("token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)cfg_.vocab));
    for (int64_t i = 0; i < n; i += batch_) {
        int64_t T = std::min(batch_, n - i);
        bool last = i + T == n;
        float* out = nullptr;
        if (logits) out = all_logits ? logits + i * cfg_.vocab : (last ? logits : nullptr);
        EDGE_TRY(step(tokens + i, T, all_logits, out));
    }
    return Status::ok();
}

void Model::head(const float* x, int64_t T, float* logits) {
    const Matrix* w = &output_;
    float* y = logits;
    matmul(mm(), &w, &y, 1, x, T);
}

// x += o(attention(q, k, v)) for layer il over the T tokens at positions n_past_.. (xn_ is scratch).
void Model::attention(int64_t il, int64_t T) {
    const LlmConfig& c = cfg_;
    Layer& L = layers_[(size_t)il];
    const int64_t D = c.d_model, Dh = c.head_dim, H = c.n_heads, Hkv = c.n_kv_heads;
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh, group = H / Hkv, half = Dh / 2;
    const float eps = (float)c.rms_eps;
    const int64_t pos0 = n_past_;
    for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, L.attn_norm, eps, D, xn_.data() + t * D);
    {
        const Matrix* ws[3] = {&L.q, &L.k, &L.v};
        float* ys[3] = {q_.data(), k_.data(), v_.data()};
        matmul(mm(), ws, ys, 3, xn_.data(), T);
    }
    for (int64_t t = 0; t < T; ++t) {
        float* q = q_.data() + t * Dq;
        float* k = k_.data() + t * Dkv;
        float* v = v_.data() + t * Dkv;
        if (L.q_bias) {
            for (int64_t i = 0; i < Dq; ++i) q[i] += L.q_bias[i];
            for (int64_t i = 0; i < Dkv; ++i) k[i] += L.k_bias[i];
            for (int64_t i = 0; i < Dkv; ++i) v[i] += L.v_bias[i];
        }
        if (L.q_norm && c.qk_norm_full) {  // one norm over the whole projection (OLMoE)
            rmsnorm(q, L.q_norm, eps, Dq, q);
            rmsnorm(k, L.k_norm, eps, Dkv, k);
        }
        const float* cs = rope_cos_.data() + t * half;
        const float* sn = rope_sin_.data() + t * half;
        for (int64_t h = 0; h < H; ++h) {
            if (L.q_norm && !c.qk_norm_full) rmsnorm(q + h * Dh, L.q_norm, eps, Dh, q + h * Dh);
            if (L.rope) rope_rotate_half(q + h * Dh, Dh, cs, sn);
        }
        for (int64_t h = 0; h < Hkv; ++h) {
            if (L.k_norm && !c.qk_norm_full) rmsnorm(k + h * Dh, L.k_norm, eps, Dh, k + h * Dh);
            if (L.rope) rope_rotate_half(k + h * Dh, Dh, cs, sn);
        }
        // K is cached in transposed tiles of kKTile positions per kv head (see attention_fn)
        const int64_t pos = pos0 + t;
        for (int64_t h = 0; h < Hkv; ++h) {
            float* tile = L.k_cache.get() + h * ktile_head_ + (pos / kKTile) * kKTile * Dh + pos % kKTile;
            for (int64_t i = 0; i < Dh; ++i) tile[i * kKTile] = k[h * Dh + i];
        }
        std::copy(v, v + Dkv, L.v_cache.get() + pos * Dkv);
    }
    // one task per (token, head); a sliding-window layer sees positions p - W < p' <= p
    const int64_t window = L.swa ? c.swa_window : 0;
    pool_->run(T * H, [&](int64_t b, int64_t e, int tid) {
        float* scratch = scores_.data() + (size_t)tid * ctx_;
        for (int64_t i = b; i < e; ++i) {
            int64_t t = i / H, h = i % H, kvh = h / group, pos = pos0 + t;
            int64_t p_begin = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
            kt_->attention(q_.data() + t * Dq + h * Dh, L.k_cache.get() + kvh * ktile_head_, L.v_cache.get() + kvh * Dh,
                           Dkv, p_begin, pos + 1, Dh, scratch, att_.data() + t * Dq + h * Dh);
        }
    });
    const Matrix* w = &L.o;
    float* y = xn_.data();
    matmul(mm(), &w, &y, 1, att_.data(), T);
    for (int64_t i = 0; i < T * D; ++i) x_[(size_t)i] += xn_[(size_t)i];
}

// Before attention: the experts each token will probably use, whose reads start now. With
// router_input = residual the true router logits are computed here too (they read the layer input).
Status Model::moe_predict(int64_t il, int64_t T) {
    const Layer& L = layers_[(size_t)il];
    const int64_t D = cfg_.d_model, E = moe_.n_experts, k = moe_.n_used;
    if (moe_.router_on_residual) {
        const Matrix* w = &L.router;
        float* y = logits_.data();
        matmul(mm(), &w, &y, 1, x_.data(), T);
    }
    if (moe_.predictor_linear) {
        // u = x / sqrt(mean(x²) + eps) (no weight); predicted logits = W_pred·u + b
        const float eps = (float)cfg_.rms_eps;
        for (int64_t t = 0; t < T; ++t) {
            const float* x = x_.data() + t * D;
            float* u = xn_.data() + t * D;
            float ss = 0.f;
            for (int64_t i = 0; i < D; ++i) ss += x[i] * x[i];
            const float scale = 1.0f / std::sqrt(ss / (float)D + eps);
            for (int64_t i = 0; i < D; ++i) u[i] = x[i] * scale;
        }
        const Matrix* w = &L.pred;
        float* y = pred_logits_.data();
        matmul(mm(), &w, &y, 1, xn_.data(), T);
        for (int64_t t = 0; t < T; ++t) {
            float* l = pred_logits_.data() + t * E;
            for (int64_t e = 0; e < E; ++e) l[e] += L.pred_b[e];
            moe_topk(l, E, k, pred_idx_.data() + t * k);
        }
    } else {
        for (int64_t t = 0; t < T; ++t) moe_topk(logits_.data() + t * E, E, k, pred_idx_.data() + t * k);
    }
    // the union over the T tokens, in token then rank order
    std::fill(seen_.begin(), seen_.end(), 0);
    int n = 0;
    for (int64_t r = 0; r < T * k; ++r) {
        const int32_t e = pred_idx_[(size_t)r];
        if (!seen_[(size_t)e]) {
            seen_[(size_t)e] = 1;
            union_[(size_t)n++] = e;
        }
    }
    store_->begin_layer((int)il);
    store_->prefetch((int)il, union_.data(), n);
    return Status::ok();
}

// After attention and ffn_norm (xn_ = n2 x): the true routing, then x += Σ_j w_j expert_j(xn_).
Status Model::moe_forward(int64_t il, int64_t T) {
    const Layer& L = layers_[(size_t)il];
    const int64_t E = moe_.n_experts, k = moe_.n_used;
    if (!moe_.router_on_residual) {
        const Matrix* w = &L.router;
        float* y = logits_.data();
        matmul(mm(), &w, &y, 1, xn_.data(), T);
    }
    for (int64_t t = 0; t < T; ++t) moe_route(moe_, logits_.data() + t * E, route_idx_.data() + t * k, route_w_.data() + t * k);
    store_->note_prediction(T * k, moe_overlap(route_idx_.data(), pred_idx_.data(), T, k));
    return moe_ffn(moe_, store_.get(), mm(), (int)il, xn_.data(), route_idx_.data(), route_w_.data(), T, cfg_.d_model,
                   &moe_buf_, x_.data());
}

Status Model::step(const int32_t* tokens, int64_t T, bool all_logits, float* logits) {
    const LlmConfig& c = cfg_;
    const int64_t D = c.d_model, half = c.head_dim / 2;
    const float eps = (float)c.rms_eps;

    for (int64_t t = 0; t < T; ++t)
        kt_->dequant[tok_embd_.dtype](tok_embd_.data + (size_t)tokens[t] * tok_embd_.row_bytes, x_.data() + t * D, D);
    for (int64_t t = 0; t < T; ++t)
        rope_angles(n_past_ + t, inv_freq_.data(), half, rope_cos_.data() + t * half, rope_sin_.data() + t * half);

    for (int64_t il = 0; il < c.n_layers; ++il) {
        Layer& L = layers_[(size_t)il];
        if (L.moe) EDGE_TRY(moe_predict(il, T));
        attention(il, T);
        for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, L.ffn_norm, eps, D, xn_.data() + t * D);
        if (L.moe) {
            EDGE_TRY(moe_forward(il, T));
            continue;
        }
        {
            const Matrix* ws[2] = {&L.gate, &L.up};
            float* ys[2] = {gate_.data(), up_.data()};
            matmul(mm(), ws, ys, 2, xn_.data(), T);
        }
        kt_->silu_mul(gate_.data(), up_.data(), T * c.d_ff, gate_.data());
        {
            const Matrix* w = &L.down;
            float* y = xn_.data();
            matmul(mm(), &w, &y, 1, gate_.data(), T);
            for (int64_t i = 0; i < T * D; ++i) x_[(size_t)i] += xn_[(size_t)i];
        }
    }
    n_past_ += T;
    if (!logits) return Status::ok();
    if (all_logits) {
        for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, output_norm_, eps, D, xn_.data() + t * D);
        head(xn_.data(), T, logits);
    } else {
        rmsnorm(x_.data() + (T - 1) * D, output_norm_, eps, D, xn_.data());
        head(xn_.data(), 1, logits);
    }
    return Status::ok();
}

}  // namespace edge
