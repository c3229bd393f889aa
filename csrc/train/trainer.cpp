// trainer.cpp — Trainer creation (checks, parameters, the memory plan and its budget) and the step driver:
// embed → layers (checkpointing each input) → head / loss → layers backward from the top, each one's
// internals recomputed from its checkpoint (the top layer's are still there) (trainer.h, train_layer.h).
// The backward stops at the lowest layer that has trainable parameters (nothing below needs a gradient).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "train_layer.h"

namespace edge {

namespace {

double mib(int64_t b) { return (double)b / 1048576.0; }

// The model's own memory that the training budget covers: the mapped weights and its buffers (its KV
// cache is not counted: planned without zero-fill, its pages are touched only by inference).
void count_model(const Model& m, Planner* p) {
    const MemoryPlan& mp = m.memory_plan();
    p->count("model.weights", MemKind::WEIGHTS, Device::CPU, mp.resident);
    p->count("model.scratch", MemKind::SCRATCH, Device::CPU, mp.scratch);
    if (mp.io_buffers) p->count("model.io_buffers", MemKind::IO_BUFFERS, Device::CPU, mp.io_buffers);
    if (mp.expert_cache) p->count("model.expert_cache", MemKind::EXPERT_CACHE, Device::CPU, mp.expert_cache);
    if (mp.process) p->count("model.process", MemKind::PROCESS, Device::CPU, mp.process);
}

int64_t bytes_named(const MemoryPlan& p, const char* prefix) {
    int64_t n = 0;
    for (const PlanEntry& e : p.entries)
        if (e.name.compare(0, std::strlen(prefix), prefix) == 0) n += e.bytes;
    return n;
}

bool need(const void* fn, const char* what, std::string* missing) {
    if (fn) return true;
    *missing += (missing->empty() ? "" : ", ") + std::string(what);
    return false;
}

}  // namespace

Trainer::~Trainer() = default;

Status Trainer::create(Model* model, const TrainOptions& opt, std::unique_ptr<Trainer>* out) {
    std::unique_ptr<Trainer> t(new Trainer());
    EDGE_TRY(t->init(model, opt));
    *out = std::move(t);
    return Status::ok();
}

Status Trainer::init(Model* model, const TrainOptions& o) {
    model_ = model;
    opt_ = o;
    const LlmConfig& c = model->config();
    const MoeConfig& mc = model->moe_config();
    const std::string& path = model->file().path();
    if (model->backend().device() != Device::CPU)
        return status_error(Code::UNSUPPORTED, path + ": training runs on the CPU backend; load the model with device 'cpu'");
    if (model->layers_streamed())
        return status_error(Code::UNSUPPORTED, path + ": the model streams its layers (it was loaded under a budget smaller "
                                                      "than its weights); training needs them resident: load it with a larger --mem");
    if (c.post_norms || c.ffn_act != Act::SILU || c.embed_scale != 1.f || (c.rope_theta_swa > 0 && c.rope_theta_swa != c.rope_theta))
        return status_error(Code::UNSUPPORTED, path + ": training does not implement this layout yet (llm.post_norms, llm.ffn_act "
                                                      "gelu_tanh, llm.embed_scale or llm.rope_theta_swa: Gemma 3)");
    const std::string& m = o.method;
    if (m != "lora" && m != "bias" && m != "sparse" && m != "mezo")
        return status_error(Code::INVALID_ARGUMENT, "method '" + m + "' is not one of lora, bias, sparse, mezo");
    if (o.optimizer != "adamw" && o.optimizer != "sgd")
        return status_error(Code::INVALID_ARGUMENT, "optimizer '" + o.optimizer + "' is not one of adamw, sgd");
    const bool lora = m != "bias";
    if (lora && (o.rank < 1 || o.rank > 4096))
        return status_error(Code::INVALID_ARGUMENT, strfmt("rank %lld must be in [1, 4096]", (long long)o.rank));
    if (o.batch < 1 || o.seq < 2 || o.seq > c.max_ctx)
        return status_error(Code::INVALID_ARGUMENT, strfmt("batch %lld must be >= 1 and seq %lld in [2, max_ctx = %lld]",
                                                           (long long)o.batch, (long long)o.seq, (long long)c.max_ctx));
    if (o.vocab_chunk < 1) return status_error(Code::INVALID_ARGUMENT, "vocab_chunk must be >= 1");
    if (!(o.lr > 0) || !(o.mezo_eps > 0) || !(o.alpha > 0))
        return status_error(Code::INVALID_ARGUMENT, "lr, alpha and mezo_eps must be > 0");
    if (!(o.momentum >= 0 && o.momentum < 1))
        return status_error(Code::INVALID_ARGUMENT, strfmt("momentum %g must be in [0, 1)", (double)o.momentum));
    if (o.dtype != "f32" && o.dtype != "bf16")
        return status_error(Code::INVALID_ARGUMENT, "dtype '" + o.dtype + "' is not one of f32, bf16");
    if (o.dtype == "bf16" && m == "mezo")
        return status_error(Code::INVALID_ARGUMENT, "dtype bf16 needs gradients: method mezo trains f32 parameters");
    if (o.momentum > 0 && o.optimizer != "sgd")
        return status_error(Code::INVALID_ARGUMENT, "momentum applies to optimizer 'sgd' (adamw has betas)");
    if (mc.n_experts > 0 && mc.n_used > 64)
        return status_error(Code::UNSUPPORTED, strfmt("%s: %lld experts per token (training supports up to 64)", path.c_str(),
                                                      (long long)mc.n_used));
    // every kernel the step calls
    const KernelTable& kt = model->kernels();
    std::string missing;
    const bool grads = m != "mezo";
    need((const void*)kt.lse_update.fn, "lse_update", &missing);
    if (grads) {
        need((const void*)kt.gemm_tn_f32.fn, "gemm_tn_f32", &missing);
        need((const void*)kt.rmsnorm_bwd.fn, "rmsnorm_bwd", &missing);
        need((const void*)kt.silu_mul_bwd.fn, "silu_mul_bwd", &missing);
        need((const void*)kt.attention_bwd.fn, "attention_bwd", &missing);
        need((const void*)kt.xent_grad.fn, "xent_grad", &missing);
        need((const void*)kt.gemm_t[EDGE_DTYPE_F32].fn, "gemm_t[f32]", &missing);
        if (o.optimizer == "adamw") need((const void*)kt.adamw.fn, "adamw", &missing);
        auto dt = [&](const Matrix& w) {
            if (w.data) need((const void*)kt.gemm_t[w.dtype].fn, (std::string("gemm_t[") + dtype_traits(w.dtype).name + "]").c_str(), &missing);
        };
        dt(model->output());
        for (int64_t il = 0; il < c.n_layers; ++il) {
            const Model::LayerWeights& w = model->layer_weights(il);
            for (const Matrix* x : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) dt(*x);
        }
    }
    if (!missing.empty())
        return status_error(Code::UNSUPPORTED, std::string("the kernel table (level ") + kt.level + ") has no " + missing +
                                                   ": training needs the backward kernels (kernels/backward.h)");
    EDGE_TRY(build_params());

    impl_.reset(new Impl());
    Impl& I = *impl_;
    I.model = model;
    I.kt = &kt;
    I.slots = &slots_;
    I.expert_slots = &expert_slots_;
    I.lora_scale = lora ? o.alpha / (float)o.rank : 1.f;
    TrainDims& d = I.d;
    d.B = o.batch, d.S = o.seq, d.T = o.batch * o.seq;
    d.D = c.d_model, d.H = c.n_heads, d.Hkv = c.n_kv_heads, d.Dh = c.head_dim;
    d.Dq = d.H * d.Dh, d.Dkv = d.Hkv * d.Dh, d.L = c.n_layers, d.V = c.vocab, d.Vc = std::min<int64_t>(c.vocab, o.vocab_chunk);
    bool any_dense = false;
    for (int64_t il = 0; il < c.n_layers; ++il) any_dense |= !model->layer_is_moe(il);
    d.F = any_dense ? c.d_ff : 0;
    d.E = mc.n_experts, d.K = mc.n_used, d.Fe = mc.d_expert;
    d.R = lora ? o.rank : 0;
    d.qk_norm = c.qk_norm;
    d.grads = grads;
    const int threads = o.threads > 0 ? o.threads : model->threads();
    I.be.reset(new CpuBackend(&kt, threads));

    const bool adam = o.optimizer == "adamw", momentum = grads && o.optimizer == "sgd" && o.momentum > 0;
    count_model(*model, &I.planner);
    train_plan(d, threads, n_elem_, adam, I.be.get(), &I.planner, &I.b, &theta_, &grad_, &m_, &v_);
    if (m == "mezo") I.planner.add("mezo.theta0", MemKind::SCRATCH, I.be.get(), n_elem_, &mezo0_);
    if (momentum) I.planner.add("sgd.momentum", MemKind::SCRATCH, I.be.get(), n_elem_, &mom_);
    const bool master = o.dtype == "bf16";
    if (master) I.planner.add("train.master", MemKind::SCRATCH, I.be.get(), n_elem_, &master_);
    plan_ = I.planner.plan();
    if (o.mem_budget > 0 && plan_.total() > o.mem_budget) {
        // the largest seq at this batch and batch at this seq whose plans fit (same planning function)
        auto total = [&](int64_t B, int64_t S) {
            Planner p;
            TrainBuffers b;
            TrainDims dd = d;
            dd.B = B, dd.S = S, dd.T = B * S;
            float *th = nullptr, *g = nullptr, *mm = nullptr, *vv = nullptr;
            count_model(*model, &p);
            train_plan(dd, threads, n_elem_, adam, I.be.get(), &p, &b, &th, &g, &mm, &vv);
            if (m == "mezo") p.add("mezo.theta0", MemKind::SCRATCH, I.be.get(), n_elem_, &th);
            if (momentum) p.add("sgd.momentum", MemKind::SCRATCH, I.be.get(), n_elem_, &th);
            if (master) p.add("train.master", MemKind::SCRATCH, I.be.get(), n_elem_, &th);
            return p.plan().total();
        };
        auto largest = [&](int64_t lo, int64_t hi, auto fits) {  // largest v in [lo, hi] with fits(v), lo - 1 if none
            if (!fits(lo)) return lo - 1;
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo + 1) / 2;
                if (fits(mid)) lo = mid; else hi = mid - 1;
            }
            return lo;
        };
        const int64_t s_fit = largest(2, o.seq, [&](int64_t S) { return total(o.batch, S) <= o.mem_budget; });
        const int64_t b_fit = largest(1, o.batch, [&](int64_t B) { return total(B, o.seq) <= o.mem_budget; });
        const int64_t model_b = bytes_named(plan_, "model."), ckpt = bytes_named(plan_, "ckpt.");
        const int64_t params_b = bytes_named(plan_, "train.") + bytes_named(plan_, "adam.") + bytes_named(plan_, "mezo.") +
                               bytes_named(plan_, "sgd.");
        const int64_t internals = plan_.activations - ckpt;
        const std::string what = strfmt("model weights and buffers %.1f + checkpoints %.1f (%lld layers x %lld tokens) + "
                                        "one layer's internals %.1f + parameters/gradients/optimizer %.1f + backward scratch %.1f MiB",
                                        mib(model_b), mib(ckpt), (long long)(d.grads ? d.L : 2), (long long)d.T, mib(internals),
                                        mib(params_b), mib(plan_.total() - model_b - ckpt - internals - params_b));
        std::string fix;
        if (s_fit >= 2) fix += strfmt("--seq %lld fits at --batch %lld", (long long)s_fit, (long long)o.batch);
        if (b_fit >= 1) fix += (fix.empty() ? "" : "; ") + strfmt("--batch %lld fits at --seq %lld", (long long)b_fit, (long long)o.seq);
        if (fix.empty()) fix = strfmt("no --seq / --batch fits (at --seq 2 --batch 1 it needs %.1f MiB): use a larger --mem "
                                      "or a smaller model file", mib(total(1, 2)));
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s: training with --batch %lld --seq %lld needs %.1f MiB (%s) but --mem is %.1f MiB "
                                   "(%.1f MiB missing); the largest that fit: %s",
                                   path.c_str(), (long long)o.batch, (long long)o.seq, mib(plan_.total()), what.c_str(),
                                   mib(o.mem_budget), mib(plan_.total() - o.mem_budget), fix.c_str()));
    }
    EDGE_TRY(I.planner.allocate());
    plan_ = I.planner.plan();
    I.theta = theta_;
    I.grad = grad_;
    // RoPE tables for positions 0..S-1 (as the model computes them)
    const int64_t half = d.Dh / 2;
    std::vector<float> inv((size_t)half);
    for (int64_t i = 0; i < half; ++i) inv[(size_t)i] = (float)(1.0 / std::pow(c.rope_theta, (double)(2 * i) / (double)d.Dh));
    std::memcpy(I.b.inv_freq, inv.data(), (size_t)half * sizeof(float));
    I.be->rope_angles(0, d.S, I.b.inv_freq, half, I.b.cos, I.b.sin);
    for (int64_t i = 0; i < d.S * half; ++i) I.b.nsin[i] = -I.b.sin[i];
    lowest_ = c.n_layers;
    for (const TrainParam& p : params_) lowest_ = std::min<int64_t>(lowest_, p.layer);
    init_params();
    return Status::ok();
}

Status Trainer::check_batch(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S) const {
    if (B < 1 || B > opt_.batch || S < 2 || S > opt_.seq)
        return status_error(Code::INVALID_ARGUMENT, strfmt("tokens [%lld, %lld]: need 1 <= batch <= %lld and 2 <= seq <= %lld "
                                                           "(the Trainer's batch / seq)", (long long)B, (long long)S,
                                                           (long long)opt_.batch, (long long)opt_.seq));
    const int64_t V = model_->config().vocab;
    for (int64_t i = 0; i < B * S; ++i)
        if (tokens[i] < 0 || tokens[i] >= V)
            return status_error(Code::INVALID_ARGUMENT, strfmt("token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)V));
    (void)mask;
    return Status::ok();
}

Status Trainer::run(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, bool grads, double* loss_sum,
                    int64_t* n_scored) {
    EDGE_TRY(check_batch(tokens, mask, B, S));
    Impl& I = *impl_;
    const TrainDims& d = I.d;
    TrainBuffers& b = I.b;
    CpuBackend& be = *I.be;
    I.B = B, I.S = S, I.T = B * S;
    const int64_t T = I.T, D = d.D, L = d.L;
    const float eps = I.eps();
    I.grad = grads ? grad_ : nullptr;
    for (int64_t r = 0; r < B; ++r)
        for (int64_t t = 0; t < S; ++t)
            b.tgt[r * S + t] = t < S - 1 && mask[r * S + t] ? tokens[r * S + t + 1] : -1;
    auto slot = [&](int64_t il) { return il == L ? b.xout : b.ckpt + (d.grads ? il : il % 2) * T * D; };
    auto layer_fwd = [&](int64_t il, float* out) -> Status {
        train_attn_fwd(I, il, slot(il));
        be.rmsnorm(b.x2, model_->layer_weights(il).ffn_norm, eps, T, D, b.xn2);
        if (model_->layer_is_moe(il)) return train_moe_fwd(I, il, slot(il), out);
        train_ffn_fwd(I, il, out);
        return Status::ok();
    };
    be.embed(model_->tok_embd(), tokens, T, slot(0));
    for (int64_t il = 0; il < L; ++il) EDGE_TRY(layer_fwd(il, slot(il + 1)));
    train_head(I, slot(L), grads, loss_sum, n_scored, b.dx);
    if (!grads) return Status::ok();
    for (int64_t il = L - 1; il >= lowest_; --il) {
        if (il != L - 1) EDGE_TRY(layer_fwd(il, nullptr));  // the top layer's internals are still there
        const Model::LayerWeights& w = model_->layer_weights(il);
        const bool moe = model_->layer_is_moe(il), need_dx = il > lowest_;
        if (moe)
            EDGE_TRY(train_moe_bwd(I, il, b.dx, b.dxn, b.dres));
        else
            train_ffn_bwd(I, il, b.dx, b.dxn);
        std::memcpy(b.dx2, b.dx, (size_t)(T * D) * sizeof(float));
        train_rmsnorm_bwd(I, b.x2, w.ffn_norm, T, D, b.dxn, b.dx2);
        train_attn_bwd(I, il, slot(il), b.dx2, need_dx, b.dx);
        if (need_dx && moe && model_->moe_config().router_on_residual) be.add(b.dx, b.dres, T * D);
    }
    pending_ += *n_scored;
    return Status::ok();
}

Status Trainer::forward_backward(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, double* loss_sum,
                                 int64_t* n_scored) {
    if (!grad_) return status_error(Code::INVALID_ARGUMENT, "method mezo has no gradients: use mezo_step");
    return run(tokens, mask, B, S, true, loss_sum, n_scored);
}

Status Trainer::eval_loss(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, double* loss_sum,
                          int64_t* n_scored) {
    return run(tokens, mask, B, S, false, loss_sum, n_scored);
}

}  // namespace edge
