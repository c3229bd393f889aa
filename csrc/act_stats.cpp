// act_stats.cpp — see act_stats.h.
#include "act_stats.h"

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "common.h"
#include "kernels/ref/ref.h"

namespace edge {

const char* act_site_name(ActSite s) {
    static const char* names[ACT_SITE_COUNT] = {"attn_in", "attn_out", "ffn_in", "ffn_mid", "expert_in", "expert_mid", "head_in"};
    return s >= 0 && s < ACT_SITE_COUNT ? names[s] : "?";
}

bool ActivationStats::wants_hessian(int64_t layer, ActSite site) const {
    if (!opt_.hessian) return false;
    if (site == ACT_HEAD_IN) return opt_.head_hessian;
    if ((site == ACT_EXPERT_IN || site == ACT_EXPERT_MID) && !opt_.expert_hessian) return false;
    return layer >= opt_.layer_begin && layer < opt_.layer_end;
}

void ActivationStats::add(int64_t layer, ActSite site, int32_t expert, const float* x, int64_t T, int64_t cols, CpuBackend& cpu) {
    if (T <= 0) return;
    ActStatsEntry& e = entries_[Key(layer, (int)site, expert)];
    if (e.cols == 0) {
        e.layer = layer, e.site = site, e.expert = expert, e.cols = cols;
        e.sumsq.assign((size_t)cols, 0.0);
        if (wants_hessian(layer, site)) e.xtx.assign((size_t)(cols * cols), 0.f);
    }
    EDGE_ASSERT(e.cols == cols);
    e.count += T;
    double* sq = e.sumsq.data();
    for (int64_t t = 0; t < T; ++t) {
        const float* r = x + t * cols;
        for (int64_t j = 0; j < cols; ++j) sq[j] += (double)r[j] * (double)r[j];
    }
    if (e.xtx.empty()) return;
    gemm_tn_f32_fn fn = cpu.kernels().gemm_tn_f32.fn;
    if (!fn) fn = gemm_tn_f32_ref;
    float* C = e.xtx.data();
    // rows [b, e) of C, columns j >= b only: the upper triangle (and the part of each row block left of
    // its diagonal, which xtx_symmetric overwrites)
    cpu.pool().run(cols, [&](int64_t b, int64_t end, int) { fn(x + b, cols, x + b, cols, T, end - b, cols - b, C + b * cols + b, cols); },
                   8);
}

void ActivationStats::xtx_symmetric(const ActStatsEntry& e, float* out) {
    const int64_t n = e.cols;
    EDGE_ASSERT((int64_t)e.xtx.size() == n * n);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) out[i * n + j] = j >= i ? e.xtx[(size_t)(i * n + j)] : e.xtx[(size_t)(j * n + i)];
}

}  // namespace edge
