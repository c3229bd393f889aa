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

Model::LayerWeights Model::LayerWeights::rebased(const uint8_t* origin, const uint8_t* base) const {
    auto f = [&](const float* p) { return p ? reinterpret_cast<const float*>(base + (reinterpret_cast<const uint8_t*>(p) - origin)) : nullptr; };
    auto m = [&](Matrix x) {
        if (x.data) x.data = base + (x.data - origin);
        return x;
    };
    LayerWeights r = *this;
    r.attn_norm = f(attn_norm), r.ffn_norm = f(ffn_norm);
    r.q_bias = f(q_bias), r.k_bias = f(k_bias), r.v_bias = f(v_bias), r.q_norm = f(q_norm), r.k_norm = f(k_norm);
    r.pred_b = f(pred_b);
    r.q = m(q), r.k = m(k), r.v = m(v), r.o = m(o), r.gate = m(gate), r.up = m(up), r.down = m(down);
    r.router = m(router), r.pred = m(pred);
    return r;
}

// x += o(attention(q, k, v)) for layer L over the T tokens at positions n_past_.. (xn_ is scratch).
void Model::attention(Layer& L, const LayerWeights& w, int64_t T) {
    const LlmConfig& c = cfg_;
    const int64_t D = c.d_model, Dh = c.head_dim, H = c.n_heads, Hkv = c.n_kv_heads;
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh, group = H / Hkv, half = Dh / 2;
    const float eps = (float)c.rms_eps;
    const int64_t pos0 = n_past_;
    for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, w.attn_norm, eps, D, xn_.data() + t * D);
    {
        const Matrix* ws[3] = {&w.q, &w.k, &w.v};
        float* ys[3] = {q_.data(), k_.data(), v_.data()};
        matmul(mm(), ws, ys, 3, xn_.data(), T);
    }
    for (int64_t t = 0; t < T; ++t) {
        float* q = q_.data() + t * Dq;
        float* k = k_.data() + t * Dkv;
        float* v = v_.data() + t * Dkv;
        if (w.q_bias) {
            for (int64_t i = 0; i < Dq; ++i) q[i] += w.q_bias[i];
            for (int64_t i = 0; i < Dkv; ++i) k[i] += w.k_bias[i];
            for (int64_t i = 0; i < Dkv; ++i) v[i] += w.v_bias[i];
        }
        if (w.q_norm && c.qk_norm_full) {  // one norm over the whole projection (OLMoE)
            rmsnorm(q, w.q_norm, eps, Dq, q);
            rmsnorm(k, w.k_norm, eps, Dkv, k);
        }
        const float* cs = rope_cos_.data() + t * half;
        const float* sn = rope_sin_.data() + t * half;
        for (int64_t h = 0; h < H; ++h) {
            if (w.q_norm && !c.qk_norm_full) rmsnorm(q + h * Dh, w.q_norm, eps, Dh, q + h * Dh);
            if (L.rope) rope_rotate_half(q + h * Dh, Dh, cs, sn);
        }
        for (int64_t h = 0; h < Hkv; ++h) {
            if (w.k_norm && !c.qk_norm_full) rmsnorm(k + h * Dh, w.k_norm, eps, Dh, k + h * Dh);
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
            kt_->attention.fn(q_.data() + t * Dq + h * Dh, L.k_cache.get() + kvh * ktile_head_, L.v_cache.get() + kvh * Dh,
                           Dkv, p_begin, pos + 1, Dh, scratch, att_.data() + t * Dq + h * Dh);
        }
    });
    const Matrix* wo = &w.o;
    float* y = xn_.data();
    matmul(mm(), &wo, &y, 1, att_.data(), T);
    for (int64_t i = 0; i < T * D; ++i) x_[(size_t)i] += xn_[(size_t)i];
}

// x += down(silu(gate(xn)) * up(xn)), xn = n2 x already in xn_.
void Model::dense_ffn(const LayerWeights& w, int64_t T) {
    const int64_t D = cfg_.d_model;
    {
        const Matrix* ws[2] = {&w.gate, &w.up};
        float* ys[2] = {gate_.data(), up_.data()};
        matmul(mm(), ws, ys, 2, xn_.data(), T);
    }
    kt_->silu_mul.fn(gate_.data(), up_.data(), T * cfg_.d_ff, gate_.data());
    const Matrix* wd = &w.down;
    float* y = xn_.data();
    matmul(mm(), &wd, &y, 1, gate_.data(), T);
    for (int64_t i = 0; i < T * D; ++i) x_[(size_t)i] += xn_[(size_t)i];
}

// Before attention: the experts each token will probably use, whose reads start now. With
// router_input = residual the true router logits are computed here too (they read the layer input).
Status Model::moe_predict(int64_t il, const LayerWeights& L, int64_t T) {
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
    } else {  // the predictor is the router: these are the true routes and weights (moe_forward recomputes them)
        for (int64_t t = 0; t < T; ++t) moe_route(moe_, logits_.data() + t * E, pred_idx_.data() + t * k, route_w_.data() + t * k);
    }
    // the union over the T tokens, in token then rank order; with the router as predictor each expert's
    // largest routing weight over the tokens (as moe_ffn passes to acquire_any) goes to the store for the
    // low-bit policy, in pred_logits_ (unused by this predictor)
    const bool exact = !moe_.predictor_linear;
    float* uw = pred_logits_.data();
    std::fill(seen_.begin(), seen_.end(), 0);
    int n = 0;
    for (int64_t r = 0; r < T * k; ++r) {
        const int32_t e = pred_idx_[(size_t)r];
        if (!seen_[(size_t)e]) {
            seen_[(size_t)e] = 1;
            uw[n] = exact ? route_w_[(size_t)r] : 0.f;
            union_[(size_t)n++] = e;
        } else if (exact) {
            for (int i = 0; i < n; ++i)
                if (union_[(size_t)i] == e) uw[i] = std::max(uw[i], route_w_[(size_t)r]);
        }
    }
    store_->begin_layer((int)il);
    store_->prefetch((int)il, union_.data(), exact ? uw : nullptr, n);
    return Status::ok();
}

// After attention and ffn_norm (xn_ = n2 x): the true routing, then x += Σ_j w_j expert_j(xn_).
Status Model::moe_forward(int64_t il, const LayerWeights& L, int64_t T) {
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
        kt_->dequant[tok_embd_.dtype].fn(tok_embd_.data + (size_t)tokens[t] * tok_embd_.row_bytes, x_.data() + t * D, D);
    for (int64_t t = 0; t < T; ++t)
        rope_angles(n_past_ + t, inv_freq_.data(), half, rope_cos_.data() + t * half, rope_sin_.data() + t * half);

    for (int64_t il = 0; il < c.n_layers; ++il) {
        Layer& L = layers_[(size_t)il];
        const LayerWeights* w = &L.w;
        LayerWeights streamed;
        if (stream_) {  // the layer's bytes come from a window buffer instead of the mapping
            const uint8_t* base = nullptr;
            EDGE_TRY(stream_->acquire_layer((int)il, &base));
            streamed = L.w.rebased(map_base_ + stream_->range_begin((int)il), base);
            w = &streamed;
        }
        Status st;
        if (L.moe) st = moe_predict(il, *w, T);
        if (st.is_ok()) {
            attention(L, *w, T);
            for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, w->ffn_norm, eps, D, xn_.data() + t * D);
            if (L.moe) {
                st = moe_forward(il, *w, T);
            } else {
                dense_ffn(*w, T);
            }
        }
        if (stream_) stream_->release_layer((int)il);
        EDGE_TRY(st);
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
