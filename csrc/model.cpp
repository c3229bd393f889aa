// model.cpp — the forward pass as a sequence of backend ops (backend/backend.h): embedding, per-layer
// attention (RoPE/NoPE, full or sliding window), dense or MoE FFN (moe.h), head. No arithmetic here:
// every loop over activations is a backend op. Loading and planning are in model_load.cpp.
#include "model.h"

#include <algorithm>

namespace edge {

ExpertStats Model::moe_stats() const { return store_ ? store_->stats() : ExpertStats(); }

void Model::moe_reset_stats() {
    if (store_) store_->reset_stats();
}

int64_t Model::keepable(int64_t n) const {
    // a ring holds position p until p + R is written: the window of the next position n needs
    // [n - window + 1, n - 1], intact iff n - window + 1 + R > n_past - 1
    if (ring_ > 0 && n > 0 && n_past_ - n >= ring_ - cfg_.swa_window + 2) return 0;
    return n;
}

Status Model::truncate(int64_t n) {
    if (n < 0 || n > n_past_) return status_error(Code::INVALID_ARGUMENT, "truncate: position out of range");
    if (keepable(n) != n)
        return status_error(Code::INVALID_ARGUMENT, strfmt("truncate: the sliding-window ring (%lld slots) no longer holds the window "
                                                           "before position %lld; truncate to 0 (see keepable)", (long long)ring_, (long long)n));
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
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh;
    const float eps = (float)c.rms_eps;
    Backend& be = *be_;
    be.rmsnorm(x_, w.attn_norm, eps, T, D, xn_);
    {
        const Matrix* ws[3] = {&w.q, &w.k, &w.v};
        float* ys[3] = {q_, k_, v_};
        be.matmul(ws, ys, 3, xn_, T);
    }
    if (w.q_bias) {
        be.add_bias(q_, w.q_bias, T, Dq);
        be.add_bias(k_, w.k_bias, T, Dkv);
        be.add_bias(v_, w.v_bias, T, Dkv);
    }
    if (w.q_norm && c.qk_norm_full) {  // one norm over the whole projection (OLMoE)
        be.rmsnorm(q_, w.q_norm, eps, T, Dq, q_);
        be.rmsnorm(k_, w.k_norm, eps, T, Dkv, k_);
    } else if (w.q_norm) {  // per head (Qwen3)
        be.rmsnorm(q_, w.q_norm, eps, T * H, Dh, q_);
        be.rmsnorm(k_, w.k_norm, eps, T * Hkv, Dh, k_);
    }
    if (L.rope) {
        be.rope(q_, T, H, Dh, rope_cos_, rope_sin_);
        be.rope(k_, T, Hkv, Dh, rope_cos_, rope_sin_);
    }
    be.kv_append(L.kv, k_, v_, T, n_past_, Hkv, Dh);
    be.attention(q_, L.kv, T, n_past_, H, Hkv, Dh, L.swa ? c.swa_window : 0, att_);
    const Matrix* wo = &w.o;
    float* y = xn_;
    be.matmul(&wo, &y, 1, att_, T);
    be.add(x_, xn_, T * D);
}

// x += down(act(gate(xn)) * up(xn)), xn = n2 x already in xn_.
void Model::dense_ffn(const LayerWeights& w, int64_t T) {
    Backend& be = *be_;
    {
        const Matrix* ws[2] = {&w.gate, &w.up};
        float* ys[2] = {gate_, up_};
        be.matmul(ws, ys, 2, xn_, T);
    }
    be.act_mul(gate_, up_, T * cfg_.d_ff, Act::SILU);
    const Matrix* wd = &w.down;
    float* y = xn_;
    be.matmul(&wd, &y, 1, gate_, T);
    be.add(x_, xn_, T * cfg_.d_model);
}

// Before attention: the experts each token will probably use, whose reads start now. With
// router_input = residual the true router logits are computed here too (they read the layer input).
Status Model::moe_predict(int64_t il, const LayerWeights& L, int64_t T) {
    const int64_t D = cfg_.d_model, E = moe_.n_experts, k = moe_.n_used;
    Backend& be = *be_;
    if (moe_.router_on_residual) {
        const Matrix* w = &L.router;
        float* y = logits_;
        be.matmul(&w, &y, 1, x_, T);
    }
    const bool exact = !moe_.predictor_linear;
    if (moe_.predictor_linear) {  // predicted logits = W_pred·rms(x) + b (unweighted RMS)
        be.rmsnorm(x_, nullptr, (float)cfg_.rms_eps, T, D, xn_);
        const Matrix* w = &L.pred;
        float* y = pred_logits_;
        be.matmul(&w, &y, 1, xn_, T);
        be.add_bias(pred_logits_, L.pred_b, T, E);
        be.moe_route(moe_, pred_logits_, T, k, pred_idx_, nullptr);
    } else {  // the predictor is the router: these are the true routes and weights (moe_forward recomputes them)
        be.moe_route(moe_, logits_, T, k, pred_idx_, route_w_);
    }
    be.sync();  // the routes are read on the host
    // the union over the T tokens, in token then rank order; with the router as predictor each expert's
    // largest routing weight over the tokens (as moe_ffn passes to acquire_any) goes to the store for the
    // low-bit policy
    const int n = moe_union(pred_idx_, exact ? route_w_ : nullptr, T * k, E, seen_, union_, union_w_);
    store_->begin_layer((int)il);
    store_->prefetch((int)il, union_, exact ? union_w_ : nullptr, n);
    return Status::ok();
}

// After attention and ffn_norm (xn_ = n2 x): the true routing, then x += Σ_j w_j expert_j(xn_).
Status Model::moe_forward(int64_t il, const LayerWeights& L, int64_t T) {
    const int64_t k = moe_.n_used;
    Backend& be = *be_;
    if (!moe_.router_on_residual) {
        const Matrix* w = &L.router;
        float* y = logits_;
        be.matmul(&w, &y, 1, xn_, T);
    }
    be.moe_route(moe_, logits_, T, k, route_idx_, route_w_);
    be.sync();
    store_->note_prediction(T * k, moe_overlap(route_idx_, pred_idx_, T, k));
    return moe_ffn(moe_, store_.get(), be_, (int)il, xn_, route_idx_, route_w_, T, cfg_.d_model, &moe_buf_, x_);
}

Status Model::step(const int32_t* tokens, int64_t T, bool all_logits, float* logits) {
    const LlmConfig& c = cfg_;
    const int64_t D = c.d_model;
    const float eps = (float)c.rms_eps;
    Backend& be = *be_;

    be.embed(tok_embd_, tokens, T, x_);
    be.rope_angles(n_past_, T, inv_freq_, c.head_dim / 2, rope_cos_, rope_sin_);

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
            be.rmsnorm(x_, w->ffn_norm, eps, T, D, xn_);
            if (L.moe) {
                st = moe_forward(il, *w, T);
            } else {
                dense_ffn(*w, T);
            }
        }
        if (stream_) {
            be.sync();  // the window buffer is reused once released
            stream_->release_layer((int)il);
        }
        EDGE_TRY(st);
    }
    EDGE_TRY(be.take_error());  // a device fault fails the step: n_past stays
    n_past_ += T;
    if (!logits) return Status::ok();
    // all_logits: every row through the head; else only the last token's
    const int64_t rows = all_logits ? T : 1;
    const float* xin = all_logits ? x_ : x_ + (T - 1) * D;
    be.rmsnorm(xin, output_norm_, eps, rows, D, xn_);
    const Matrix* head = &output_;
    if (be.host_addressable()) {
        be.matmul(&head, &logits, 1, xn_, rows);
    } else {  // one row at a time through the device buffer
        for (int64_t r = 0; r < rows; ++r) {
            be.matmul(&head, &logits_out_, 1, xn_ + r * D, 1);
            be.download(logits + r * c.vocab, logits_out_, c.vocab * (int64_t)sizeof(float));
        }
    }
    be.sync();
    return be.take_error();
}

}  // namespace edge
