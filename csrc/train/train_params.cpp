// train_params.cpp — the trainable parameter set of a Trainer (trainer.h): which tensors exist for the
// method / targets / sparse plan, their names and offsets in the flat arrays, and their initial values
// (LoRA A: PEFT's kaiming_uniform(a=√5) bound 1/√in, drawn from a counter-based generator of the seed,
// so the same seed always gives the same values; B and biases 0).
#include <algorithm>
#include <cmath>
#include <set>

#include "train_rng.h"
#include "trainer.h"

namespace edge {

namespace {

const char* const kShort[TGT_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
const char* const kStem[TGT_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down"};

}  // namespace

const char* train_target_short(int t) { return t >= 0 && t < TGT_COUNT ? kShort[t] : "?"; }
const char* train_target_stem(int t) { return t >= 0 && t < TGT_COUNT ? kStem[t] : "?"; }

Status Trainer::build_params() {
    const LlmConfig& c = model_->config();
    const int64_t D = c.d_model, Dq = c.n_heads * c.head_dim, Dkv = c.n_kv_heads * c.head_dim, F = c.d_ff;
    bool want[TGT_COUNT] = {};
    for (const std::string& t : opt_.targets) {
        const int i = (int)(std::find(kShort, kShort + TGT_COUNT, t) - kShort);
        if (i == TGT_COUNT)
            return status_error(Code::INVALID_ARGUMENT, "unknown target '" + t + "' (targets: q, k, v, o, gate, up, down)");
        want[i] = true;
    }
    const std::string& m = opt_.method;
    const bool lora = m == "lora" || m == "sparse" || m == "mezo", bias = m == "bias" || m == "sparse";
    std::set<std::string> plan(opt_.params.begin(), opt_.params.end()), matched;
    const bool filter = opt_.has_params && m == "sparse";
    slots_.assign((size_t)(c.n_layers * TGT_COUNT), TargetSlots());
    params_.clear();
    int64_t off = 0;
    int cur_expert = -1;
    auto add = [&](const std::string& name, int64_t rows, int64_t cols, int il, int t, int part) {
        TrainParam p;
        p.name = name, p.rows = rows, p.cols = cols, p.offset = off, p.layer = il, p.target = t, p.part = part;
        p.expert = cur_expert;
        params_.push_back(p);
        off += (rows * cols + 15) / 16 * 16;  // 64-byte aligned tensors
        return p.offset;
    };
    const int64_t E = model_->moe_config().n_experts, Fe = model_->moe_config().d_expert;
    expert_slots_.assign((size_t)(c.n_layers * E * 3), TargetSlots());
    auto target = [&](const std::string& base, int64_t out, int64_t in, int il, int t, TargetSlots* s, bool allow_bias) {
        const std::string na = base + ".lora_a", nb = base + ".lora_b", nbias = base + ".bias";
        if (lora && (!filter || plan.count(na) || plan.count(nb))) {
            s->a = add(na, opt_.rank, in, il, t, 0);
            s->b = add(nb, out, opt_.rank, il, t, 1);
            matched.insert(na), matched.insert(nb);
        }
        if (bias && allow_bias && (!filter || plan.count(nbias))) {
            s->bias = add(nbias, out, 1, il, t, 2);
            matched.insert(nbias);
        }
    };
    for (int64_t il = 0; il < c.n_layers; ++il) {
        const bool moe = model_->layer_is_moe(il);
        const int64_t out[TGT_COUNT] = {Dq, Dkv, Dkv, D, F, F, D}, in[TGT_COUNT] = {D, D, D, Dq, D, D, F};
        const std::string blk = "blk." + std::to_string(il) + ".";
        for (int t = 0; t < TGT_COUNT; ++t) {
            if (!want[t]) continue;
            if (!moe || t < TGT_GATE) {
                target(blk + kStem[t], out[t], in[t], (int)il, t, &slots_[(size_t)(il * TGT_COUNT + t)], true);
                continue;
            }
            const int64_t eo = t == TGT_DOWN ? D : Fe, ei = t == TGT_DOWN ? Fe : D;  // an expert's matrix
            for (int64_t e = 0; e < E; ++e) {
                cur_expert = (int)e;
                target(blk + "exp." + std::to_string(e) + "." + kStem[t], eo, ei, (int)il, t,
                       &expert_slots_[(size_t)((il * E + e) * 3 + t - TGT_GATE)], false);  // experts: LoRA only
            }
            cur_expert = -1;
        }
    }
    for (const std::string& n : plan)
        if (filter && !matched.count(n))
            return status_error(Code::INVALID_ARGUMENT, "sparse plan names '" + n + "', which is not a parameter of method "
                                                        "sparse with these targets (blk.{i}[.exp.{e}].{attn_q|...|ffn_down}.{lora_a|lora_b|bias})");
    n_elem_ = off;
    return Status::ok();
}

void Trainer::init_params() {
    std::fill(theta_, theta_ + n_elem_, 0.f);
    for (const TrainParam& p : params_) {
        if (p.part != 0) continue;  // B and biases start at 0
        const float bound = 1.0f / std::sqrt((float)p.cols);
        float* a = theta_ + p.offset;
        const uint64_t key = rng_mix(opt_.seed ^ rng_mix((uint64_t)p.offset + 1));
        for (int64_t i = 0; i < p.count(); ++i) a[i] = (float)((2.0 * rng_unit(key, (uint64_t)i) - 1.0) * bound);
    }
    if (master_) {
        std::copy(theta_, theta_ + n_elem_, master_);
        params_changed();
    }
}

void Trainer::params_changed() {
    if (!master_) return;
    for (int64_t i = 0; i < n_elem_; ++i) theta_[i] = bf16_to_f32(f32_to_bf16(master_[i]));
}

}  // namespace edge
