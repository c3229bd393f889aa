// train_optim.cpp — updates of the flat parameters (trainer.h):
//   adamw: kt.adamw over the flat arrays (t = the step after increment; bias corrections 1 − β^t), as
//          torch.optim.AdamW; sgd: g' = g + wd · p, then without momentum p −= lr · g'; with momentum μ
//          buf = μ · buf + g' (buf starts at 0, so step 1 gives buf = g' as torch's clone), p −= lr · buf —
//          torch.optim.SGD(momentum=μ, dampening=0, nesterov=False).
//   dtype bf16: the update runs on the f32 master, then θ = bf16(master) (RNE) for the next forward.
//   The gradient is the accumulated d loss_sum / dθ divided by the scored positions since the last step.
//   mezo:  z_i = rng_gauss(step_seed, i); L± = mean loss at θ0 ± ε z; θ = θ0 − lr · (L+ − L−) / 2ε · z
//          (θ0 is kept, so θ is restored exactly between the two evaluations).
// Element-wise work is split over the pool in fixed chunks: the result does not depend on the threads.
#include <cmath>
#include <cstring>

#include "train_layer.h"
#include "train_rng.h"

namespace edge {

void Trainer::zero_grad() {
    if (grad_) std::memset(grad_, 0, (size_t)n_elem_ * sizeof(float));
    pending_ = 0;
}

Status Trainer::optimizer_step(float lr) {
    if (!grad_) return status_error(Code::INVALID_ARGUMENT, "method mezo has no gradients: use mezo_step");
    if (pending_ <= 0) return status_error(Code::INVALID_ARGUMENT, "optimizer_step: no scored position since the last step");
    if (!(lr > 0)) lr = opt_.lr;
    const float inv = 1.0f / (float)pending_;
    ++step_;
    ThreadPool& pool = impl_->be->pool();
    const float wd = opt_.weight_decay;
    float* const w = master_data();  // the optimizer's parameters (the f32 master with dtype bf16)
    if (opt_.optimizer == "adamw") {
        AdamParams a;
        a.lr = lr, a.b1 = opt_.beta1, a.b2 = opt_.beta2, a.eps = opt_.eps, a.wd = wd;
        a.bc1 = (float)(1.0 - std::pow((double)opt_.beta1, (double)step_));
        a.bc2 = (float)(1.0 - std::pow((double)opt_.beta2, (double)step_));
        const adamw_fn fn = impl_->kt->adamw.fn;
        pool.run(n_elem_, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) grad_[i] *= inv;
            fn(w + b, grad_ + b, m_ + b, v_ + b, e - b, a);
        }, 256);
    } else if (mom_) {
        const float mu = opt_.momentum;
        pool.run(n_elem_, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) {
                mom_[i] = mu * mom_[i] + (grad_[i] * inv + wd * w[i]);
                w[i] -= lr * mom_[i];
            }
        }, 256);
    } else {
        pool.run(n_elem_, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) w[i] -= lr * (grad_[i] * inv + wd * w[i]);
        }, 256);
    }
    if (master_)
        pool.run(n_elem_, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) theta_[i] = bf16_to_f32(f32_to_bf16(master_[i]));
        }, 256);
    zero_grad();
    return Status::ok();
}

void Trainer::mezo_noise(uint64_t step_seed, float* z) const {
    const uint64_t key = rng_mix(step_seed);
    impl_->be->pool().run(n_elem_, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) z[i] = rng_gauss(key, (uint64_t)i);
    }, 256);
}

Status Trainer::mezo_step(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S, float lr, uint64_t step_seed,
                          double* loss) {
    if (opt_.method != "mezo") return status_error(Code::INVALID_ARGUMENT, "mezo_step needs method 'mezo'");
    if (!(lr > 0)) lr = opt_.lr;
    EDGE_TRY(check_batch(tokens, mask, B, S));
    const uint64_t key = rng_mix(step_seed);
    const float eps = opt_.mezo_eps;
    ThreadPool& pool = impl_->be->pool();
    std::memcpy(mezo0_, theta_, (size_t)n_elem_ * sizeof(float));
    auto perturb = [&](float sign, float coef) {  // θ = θ0 + sign · coef · z
        pool.run(n_elem_, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) theta_[i] = mezo0_[i] + sign * coef * rng_gauss(key, (uint64_t)i);
        }, 256);
    };
    double lp = 0, lm = 0;
    int64_t np = 0, nm = 0;
    perturb(1.f, eps);
    Status st = run(tokens, mask, B, S, false, &lp, &np);
    if (st.is_ok()) {
        perturb(-1.f, eps);
        st = run(tokens, mask, B, S, false, &lm, &nm);
    }
    if (st.is_ok() && np == 0) st = status_error(Code::INVALID_ARGUMENT, "mezo_step: no scored position in the batch");
    if (!st.is_ok()) {
        std::memcpy(theta_, mezo0_, (size_t)n_elem_ * sizeof(float));
        return st;
    }
    const double Lp = lp / (double)np, Lm = lm / (double)nm;
    const float g = (float)((Lp - Lm) / (2.0 * (double)eps));
    perturb(-1.f, lr * g);
    ++step_;
    *loss = 0.5 * (Lp + Lm);
    return Status::ok();
}

Status Trainer::measure_contributions(const int32_t* tokens, const uint8_t* mask, int64_t B, int64_t S,
                                      std::vector<double>* out) {
    if (!grad_) return status_error(Code::INVALID_ARGUMENT, "measure_contributions needs gradients (not method mezo)");
    zero_grad();
    double loss = 0;
    int64_t n = 0;
    Status st = run(tokens, mask, B, S, true, &loss, &n);
    out->assign(params_.size(), 0.0);
    if (st.is_ok())
        for (size_t i = 0; i < params_.size(); ++i) {
            const float* g = grad_ + params_[i].offset;
            double s = 0;
            for (int64_t j = 0; j < params_[i].count(); ++j) s += (double)g[j] * (double)g[j];
            (*out)[i] = s;
        }
    zero_grad();
    return st;
}

}  // namespace edge
