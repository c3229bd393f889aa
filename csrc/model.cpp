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

int64_t Model::seq_keepable(int64_t s, int64_t n) const {
    // a ring holds position p until p + R is written: the window of the next position n needs
    // [n - window + 1, n - 1], intact iff n - window + 1 + R > n_past - 1
    if (s < 0 || s >= n_seq()) return 0;
    if (ring_ > 0 && n > 0 && past_[(size_t)s] - n >= ring_ - cfg_.swa_window + 2) return 0;
    // KIVI: positions [kivi_quantized(n), n) are read (and later quantized) from the f16 ring, which holds the
    // last kivi_ring positions written
    for (const Layer& L : layers_)
        if (kv_type_kivi(L.kv[(size_t)s].type) && past_[(size_t)s] - kivi_quantized(n) > L.kv[(size_t)s].kivi_ring) return 0;
    return n;
}

Status Model::set_activation_stats(ActivationStats* stats) {
    if (stats && be_ != cpu_.get())
        return status_error(Code::UNSUPPORTED, "activation statistics (calibration) need the CPU backend: load the model with device=\"cpu\"");
    stats_ = stats;
    return Status::ok();
}

Status Model::seq_truncate(int64_t s, int64_t n) {
    if (s < 0 || s >= n_seq()) return status_error(Code::INVALID_ARGUMENT, strfmt("sequence %lld is not one of the %lld sequences", (long long)s, (long long)n_seq()));
    if (n < 0 || n > past_[(size_t)s]) return status_error(Code::INVALID_ARGUMENT, "truncate: position out of range");
    if (seq_keepable(s, n) != n && kv_type_kivi(kv_) && !(ring_ > 0 && past_[(size_t)s] - n >= ring_ - cfg_.swa_window + 2))
        return status_error(Code::INVALID_ARGUMENT, strfmt("truncate: the --kv %s residual ring no longer holds position %lld in f16 (it was "
                                                           "quantized); truncate to 0 (see keepable)", kv_type_name(kv_), (long long)n));
    if (seq_keepable(s, n) != n)
        return status_error(Code::INVALID_ARGUMENT, strfmt("truncate: the sliding-window ring (%lld slots) no longer holds the window "
                                                           "before position %lld; truncate to 0 (see keepable)", (long long)ring_, (long long)n));
    past_[(size_t)s] = n;
    return Status::ok();
}

Status Model::eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits) {
    if (n <= 0) return status_error(Code::INVALID_ARGUMENT, "eval: no tokens");
    if (past_[0] + n > ctx_)
        return status_error(Code::INVALID_ARGUMENT, strfmt("context is full: %lld cached + %lld new tokens > ctx %lld (use a larger ctx or reset)",
                                                           (long long)past_[0], (long long)n, (long long)ctx_));
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
            return status_error(Code::INVALID_ARGUMENT, strfmt("token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)cfg_.vocab));
    for (int64_t i = 0; i < n; i += batch_) {
        int64_t T = std::min(batch_, n - i);
        bool last = i + T == n;
        float* out = nullptr;
        if (logits) out = all_logits ? logits + i * cfg_.vocab : (last ? logits : nullptr);
        Run run{0, 0, T, past_[0]};
        EDGE_TRY(step(tokens + i, T, &run, 1, all_logits, out));
    }
    return Status::ok();
}

Status Model::eval_batch(const int32_t* seqs, const int32_t* tokens, int64_t n, float* logits, int64_t* n_runs) {
    if (n <= 0) return status_error(Code::INVALID_ARGUMENT, "eval_batch: no tokens");
    if (n > batch_)
        return status_error(Code::INVALID_ARGUMENT, strfmt("eval_batch: %lld tokens in one step, more than the batch of %lld",
                                                           (long long)n, (long long)batch_));
    std::vector<Run> runs;
    std::vector<uint8_t> seen((size_t)n_seq(), 0);
    for (int64_t i = 0; i < n; ++i) {
        const int32_t s = seqs[i];
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
            return status_error(Code::INVALID_ARGUMENT, strfmt("token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)cfg_.vocab));
        if (s < 0 || s >= n_seq())
            return status_error(Code::INVALID_ARGUMENT, strfmt("eval_batch: sequence %d is not one of the %lld sequences", s, (long long)n_seq()));
        if (!runs.empty() && runs.back().seq == s) {
            ++runs.back().len;
            continue;
        }
        if (seen[(size_t)s])
            return status_error(Code::INVALID_ARGUMENT, strfmt("eval_batch: the tokens of sequence %d are not consecutive", s));
        seen[(size_t)s] = 1;
        runs.push_back(Run{s, i, 1, past_[(size_t)s]});
    }
    for (const Run& r : runs)
        if (r.pos0 + r.len > ctx_)
            return status_error(Code::INVALID_ARGUMENT, strfmt("context of sequence %lld is full: %lld cached + %lld new tokens > ctx %lld",
                                                               (long long)r.seq, (long long)r.pos0, (long long)r.len, (long long)ctx_));
    if (n_runs) *n_runs = (int64_t)runs.size();
    return step(tokens, n, runs.data(), (int64_t)runs.size(), false, logits);
}

Status Model::eval_sample_device(int32_t token, Sampler& sampler, const std::vector<int32_t>& history, int32_t* next,
                                 bool* done) {
    *done = false;
    if (be_->picks_in_flight() > 0)  // its pick would read theirs
        return status_error(Code::INVALID_ARGUMENT, "eval_sample_device: pipelined steps are in flight; wait for them first");
    if (!device_steps_ || past_[0] + 1 > ctx_ || token < 0 || token >= cfg_.vocab) return Status::ok();  // eval says why
    sampler.penalty_ids(history, &penalty_ids_);
    if (!be_->sample_supported(sampler.params(), cfg_.vocab, (int)penalty_ids_.size())) return Status::ok();
    *done = true;
    EDGE_TRY(device_step(token, nullptr));
    const float u = sampler.params().temperature > 0.f ? sampler.draw_uniform() : 0.f;
    be_->sample(logits_out_, cfg_.vocab, sampler.params(), penalty_ids_.data(), (int)penalty_ids_.size(), u, next);
    return be_->take_error();
}

bool Model::pipelined_sampling(const Sampler& sampler) const {
    const SamplerParams& p = sampler.params();
    return device_steps_ && be_->sample_async_supported() && (p.repeat_penalty == 1.0f || p.repeat_last_n == 0) &&
           be_->sample_supported(p, cfg_.vocab, 0);
}

Status Model::eval_sample_device_launch(int32_t token, Sampler& sampler, bool* launched) {
    *launched = false;  // no penalty (pipelined_sampling): the pick reads no history
    if (!pipelined_sampling(sampler) || past_[0] + 1 > ctx_ || be_->picks_in_flight() >= Backend::kMaxPicksInFlight ||
        (token != kTokenFromPick && (token < 0 || token >= cfg_.vocab)) || (token == kTokenFromPick && be_->picks_in_flight() == 0))
        return Status::ok();
    EDGE_TRY(device_step(token, nullptr));
    const float u = sampler.params().temperature > 0.f ? sampler.draw_uniform() : 0.f;
    be_->sample_async(logits_out_, cfg_.vocab, sampler.params(), nullptr, 0, u);
    *launched = true;
    return be_->take_error();
}

Status Model::eval_sample_device_wait(int32_t* next) {
    if (be_->picks_in_flight() == 0) return status_error(Code::INVALID_ARGUMENT, "eval_sample_device_wait: no step in flight");
    be_->sample_wait(next);
    return be_->take_error();
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
    r.attn_post_norm = f(attn_post_norm), r.ffn_post_norm = f(ffn_post_norm);
    r.pred_b = f(pred_b);
    r.q = m(q), r.k = m(k), r.v = m(v), r.o = m(o), r.gate = m(gate), r.up = m(up), r.down = m(down);
    r.router = m(router), r.pred = m(pred);
    return r;
}

// x += o(attention(q, k, v)) for layer L over the T tokens of the runs, each run at its sequence's
// positions pos0.. in that sequence's cache (xn_ is scratch).
void Model::attention(Layer& L, const LayerWeights& w, int64_t T, const Run* runs, int64_t n_runs) {
    const LlmConfig& c = cfg_;
    const int64_t D = c.d_model, Dh = c.head_dim, H = c.n_heads, Hkv = c.n_kv_heads;
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh;
    const float eps = (float)c.rms_eps;
    Backend& be = *be_;
    const int64_t il = &L - layers_.data();
    {  // xn = attn_norm(x); q, k, v = W·xn
        const Matrix* ws[3] = {&w.q, &w.k, &w.v};
        float* ys[3] = {q_, k_, v_};
        be.rmsnorm_matmul(x_, w.attn_norm, eps, T, xn_, ws, ys, 3, L.lora_ptr + AT_Q);
    }
    if (stats_) stats_->add(il, ACT_ATTN_IN, -1, xn_, T, D, *cpu_);
    if (w.q_bias) {
        be.add_bias(q_, w.q_bias, T, Dq);
        be.add_bias(k_, w.k_bias, T, Dkv);
        be.add_bias(v_, w.v_bias, T, Dkv);
    }
    add_adapter_bias(L, AT_Q, q_, T, Dq);
    add_adapter_bias(L, AT_K, k_, T, Dkv);
    add_adapter_bias(L, AT_V, v_, T, Dkv);
    if (w.q_norm && c.qk_norm_full) {  // one norm over the whole projection (OLMoE)
        be.rmsnorm(q_, w.q_norm, eps, T, Dq, q_);
        be.rmsnorm(k_, w.k_norm, eps, T, Dkv, k_);
    } else if (w.q_norm) {  // per head (Qwen3)
        be.rmsnorm(q_, w.q_norm, eps, T * H, Dh, q_);
        be.rmsnorm(k_, w.k_norm, eps, T * Hkv, Dh, k_);
    }
    const float* cs = L.swa ? rope_cos_swa_ : rope_cos_;
    const float* sn = L.swa ? rope_sin_swa_ : rope_sin_;
    const int64_t window = L.swa ? c.swa_window : 0;
    if (L.rope && n_runs == 1 && runs[0].t0 == 0 && runs[0].len == T) {  // one run: RoPE, the K/V append, attention as one op
        be.rope_kv_attention(q_, k_, v_, T, H, Hkv, Dh, cs, sn, L.kv[(size_t)runs[0].seq], runs[0].pos0, window, att_);
    } else {
        if (L.rope) {
            be.rope(q_, T, H, Dh, cs, sn);
            be.rope(k_, T, Hkv, Dh, cs, sn);
        }
        // every run's K/V first, then attention: a run reads only its own sequence's positions <= its own
        for (int64_t r = 0; r < n_runs; ++r) {
            const Run& u = runs[r];
            be.kv_append(L.kv[(size_t)u.seq], k_ + u.t0 * Dkv, v_ + u.t0 * Dkv, u.len, u.pos0, Hkv, Dh);
        }
        for (int64_t r = 0; r < n_runs; ++r) {
            const Run& u = runs[r];
            be.attention(q_ + u.t0 * Dq, L.kv[(size_t)u.seq], u.len, u.pos0, H, Hkv, Dh, window, att_ + u.t0 * Dq);
        }
    }
    if (stats_) stats_->add(il, ACT_ATTN_OUT, -1, att_, T, Dq, *cpu_);
    if (!L.bias[AT_O] && !w.attn_post_norm) {  // x += o·att (one op: the backend may add in the matmul)
        be.matmul_add(w.o, att_, T, xn_, x_, L.lora_ptr[AT_O]);
        return;
    }
    const Matrix* wo = &w.o;
    float* y = xn_;
    be.matmul(&wo, &y, 1, att_, T, L.lora_ptr + AT_O);
    add_adapter_bias(L, AT_O, xn_, T, D);
    if (w.attn_post_norm) be.rmsnorm(xn_, w.attn_post_norm, eps, T, D, xn_);
    be.add(x_, xn_, T * D);
}

// x += down(act(gate(xn) + bg) * (up(xn) + bu)) + bd, xn = ffn_norm(x) (into xn_; each matmul with its
// adapters' LoRA term, b* their bias deltas).
void Model::dense_ffn(const Layer& L, const LayerWeights& w, int64_t T) {
    Backend& be = *be_;
    const int64_t il = &L - layers_.data();
    if (!stats_ && !L.bias[AT_GATE] && !L.bias[AT_UP] && !L.bias[AT_DOWN] && !w.ffn_post_norm) {  // the fused forms
        be.rmsnorm_glu(x_, w.ffn_norm, (float)cfg_.rms_eps, T, xn_, w.gate, w.up, cfg_.ffn_act, gate_, up_, L.lora_ptr + AT_GATE);
        be.matmul_add(w.down, gate_, T, xn_, x_, L.lora_ptr[AT_DOWN]);
        return;
    }
    {
        const Matrix* ws[2] = {&w.gate, &w.up};
        float* ys[2] = {gate_, up_};
        be.rmsnorm_matmul(x_, w.ffn_norm, (float)cfg_.rms_eps, T, xn_, ws, ys, 2, L.lora_ptr + AT_GATE);
    }
    if (stats_) stats_->add(il, ACT_FFN_IN, -1, xn_, T, cfg_.d_model, *cpu_);
    add_adapter_bias(L, AT_GATE, gate_, T, cfg_.d_ff);
    add_adapter_bias(L, AT_UP, up_, T, cfg_.d_ff);
    be.act_mul(gate_, up_, T * cfg_.d_ff, cfg_.ffn_act);
    if (stats_) stats_->add(il, ACT_FFN_MID, -1, gate_, T, cfg_.d_ff, *cpu_);
    const Matrix* wd = &w.down;
    float* y = xn_;
    be.matmul(&wd, &y, 1, gate_, T, L.lora_ptr + AT_DOWN);
    add_adapter_bias(L, AT_DOWN, xn_, T, cfg_.d_model);
    if (w.ffn_post_norm) be.rmsnorm(xn_, w.ffn_post_norm, (float)cfg_.rms_eps, T, cfg_.d_model, xn_);
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
    if (moe_.router_on_residual && !moe_.predictor_linear) {
        // moe_predict routed these very logits (the router on the layer input is its own predictor):
        // the same routes and weights, without a second download
        std::copy(pred_idx_, pred_idx_ + T * k, route_idx_);
    } else {
        be.moe_route(moe_, logits_, T, k, route_idx_, route_w_);
        be.sync();
    }
    store_->note_prediction(T * k, moe_overlap(route_idx_, pred_idx_, T, k));
    const std::vector<ExpertAdapter>& ad = layers_[(size_t)il].expert_ad;
    return moe_ffn(moe_, store_.get(), be_, (int)il, xn_, route_idx_, route_w_, T, cfg_.d_model, &moe_buf_, x_,
                   ad.empty() ? nullptr : ad.data(), stats_ ? cpu_.get() : nullptr, stats_);
}

// Before the attention: on the device only the router when it reads the residual (the layer input); else moe_predict.
Status Model::moe_pre_attention(int64_t il, const LayerWeights& w, int64_t T, bool device_moe) {
    if (!device_moe) return moe_predict(il, w, T);
    if (moe_.router_on_residual) {
        const Matrix* router = &w.router;
        be_->matmul(&router, &logits_, 1, x_, T);
    }
    return Status::ok();
}

// After it: x += the routed experts of ffn_norm(x). On the device with the router on the residual the norm is formed
// inside the experts' GEMV (nothing else reads xn); else xn = ffn_norm(x), then the router on xn and the device's
// experts, or moe_forward's host routes.
Status Model::moe_post_attention(int64_t il, const LayerWeights& w, int64_t T, bool device_moe) {
    Backend& be = *be_;
    const float eps = (float)cfg_.rms_eps;
    if (device_moe && moe_.router_on_residual) {
        be.moe_device_ffn(moe_, moe_slot_[(size_t)il], logits_, x_, w.ffn_norm, eps, x_);
        return Status::ok();
    }
    be.rmsnorm(x_, w.ffn_norm, eps, T, cfg_.d_model, xn_);
    if (!device_moe) return moe_forward(il, w, T);
    const Matrix* router = &w.router;
    be.matmul(&router, &logits_, 1, xn_, T);
    be.moe_device_ffn(moe_, moe_slot_[(size_t)il], logits_, xn_, nullptr, 0.f, x_);
    return Status::ok();
}

// RoPE angles of every run's positions (both bases where the sliding-window layers have their own).
void Model::rope_angles(const Run* runs, int64_t n_runs) {
    const int64_t half = cfg_.head_dim / 2;
    for (int64_t r = 0; r < n_runs; ++r) {
        be_->rope_angles(runs[r].pos0, runs[r].len, inv_freq_, half, rope_cos_ + runs[r].t0 * half, rope_sin_ + runs[r].t0 * half);
        if (rope_cos_swa_ != rope_cos_)
            be_->rope_angles(runs[r].pos0, runs[r].len, inv_freq_swa_, half, rope_cos_swa_ + runs[r].t0 * half,
                             rope_sin_swa_ + runs[r].t0 * half);
    }
}

// The decoder layers over x_ for the T tokens of the runs (RoPE angles already in place). device_moe (one token, in
// a device step): the MoE layers route and run their resident experts on the device (Backend::moe_device_ffn), the
// router on the same input as moe_predict / moe_forward give it; no predictor, nothing read on the host.
Status Model::forward_layers(int64_t T, const Run* runs, int64_t n_runs, bool device_moe) {
    const LlmConfig& c = cfg_;
    Backend& be = *be_;
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
        Status st = L.moe ? moe_pre_attention(il, *w, T, device_moe) : Status::ok();
        if (st.is_ok()) {
            attention(L, *w, T, runs, n_runs);
            if (L.moe)
                st = moe_post_attention(il, *w, T, device_moe);
            else
                dense_ffn(L, *w, T);  // its ffn_norm too
        }
        if (stream_) {
            be.sync();  // the window buffer is reused once released
            stream_->release_layer((int)il);
        }
        EDGE_TRY(st);
    }
    return Status::ok();
}

// One token of sequence 0 (its logits to `logits`, or left in logits_out_ when nullptr), on a backend that
// records steps (device_steps_: every weight in the device copy; MoE with every expert resident there): the token and position go to the
// device, the recorded step is replayed (or recorded now), and only the logits come back.
Status Model::device_step(int32_t token, float* logits) {
    const LlmConfig& c = cfg_;
    Backend& be = *be_;
    const Run run{0, 0, 1, past_[0]};
    auto issue = [&]() -> Status {
        be.embed_step(tok_embd_dev_, x_);
        if (c.embed_scale != 1.f) be.scale(x_, c.embed_scale, c.d_model);
        rope_angles(&run, 1);
        Status st = forward_layers(1, &run, 1, moe_device_);
        const Matrix* head = &output_;
        be.rmsnorm_matmul(x_, output_norm_, (float)c.rms_eps, 1, xn_, &head, &logits_out_, 1);
        return st;
    };
    be.step_inputs(token, past_[0]);
    if (!be.step_begin()) {
        Status st = issue();
        if (!be.step_end()) {  // recording failed (nothing ran): the same ops, eagerly
            be.step_begin();
            st = issue();
            be.step_end();
        }
        EDGE_TRY(st);
    }
    if (logits) be.download(logits, logits_out_, c.vocab * (int64_t)sizeof(float));  // else they stay (eval_sample_device)
    EDGE_TRY(be.take_error());  // a device fault fails the step: n_past stays
    if (moe_device_) store_->note_hits(moe_layers_ * moe_.n_used);  // every route served from device memory
    past_[0] += 1;
    return Status::ok();
}

// One forward pass over T tokens in n_runs runs (eval: one run). Logits: all T rows (all_logits), else
// one row per run (its last token).
Status Model::step(const int32_t* tokens, int64_t T, const Run* runs, int64_t n_runs, bool all_logits, float* logits) {
    const LlmConfig& c = cfg_;
    const int64_t D = c.d_model;
    const float eps = (float)c.rms_eps;
    Backend& be = *be_;
    if (T == 1 && n_runs == 1 && runs[0].seq == 0 && logits && device_steps_) return device_step(tokens[0], logits);

    be.embed(tok_embd_, tokens, T, x_);
    if (c.embed_scale != 1.f) be.scale(x_, c.embed_scale, T * D);
    rope_angles(runs, n_runs);
    EDGE_TRY(forward_layers(T, runs, n_runs));
    EDGE_TRY(be.take_error());  // a device fault fails the step: n_past stays
    for (int64_t r = 0; r < n_runs; ++r) past_[(size_t)runs[r].seq] += runs[r].len;
    if (!logits) return Status::ok();
    // all_logits: every row through the head; else only the last token of each run
    const int64_t rows = all_logits ? T : n_runs;
    if (all_logits) {
        be.rmsnorm(x_, output_norm_, eps, rows, D, xn_);
    } else {
        for (int64_t r = 0; r < n_runs; ++r)
            be.rmsnorm(x_ + (runs[r].t0 + runs[r].len - 1) * D, output_norm_, eps, 1, D, xn_ + r * D);
    }
    if (stats_) stats_->add(-1, ACT_HEAD_IN, -1, xn_, rows, D, *cpu_);
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
