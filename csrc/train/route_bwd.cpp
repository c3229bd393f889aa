// route_bwd.cpp — see route_bwd.h.
#include "route_bwd.h"

#include <cmath>

#include "../moe_route_math.h"

namespace edge {

void moe_route_bwd(const MoeConfig& c, const float* logits, const int32_t* idx, const float* w, const float* dw,
                   float* dl) {
    const int64_t E = c.n_experts, K = c.n_used;
    float s[64], ds[64];  // K <= 64 is checked by the trainer
    float mx = logits[idx[0]], sum = 0.f;
    if (c.gating_softmax) {
        for (int64_t e = 0; e < E; ++e) sum += moe_math::softmax_term(logits[e], mx);
        for (int64_t j = 0; j < K; ++j) s[j] = moe_math::softmax_term(logits[idx[j]], mx) / sum;  // the forward's weights (moe_route)
    } else {
        for (int64_t j = 0; j < K; ++j) s[j] = moe_math::sigmoid(logits[idx[j]]);
    }
    if (c.norm_topk) {
        float ssum = 0.f, dot = 0.f;
        for (int64_t j = 0; j < K; ++j) ssum += s[j];
        for (int64_t j = 0; j < K; ++j) dot += dw[j] * w[j];
        for (int64_t j = 0; j < K; ++j) ds[j] = (dw[j] - dot) / ssum;
    } else {
        for (int64_t j = 0; j < K; ++j) ds[j] = dw[j];
    }
    for (int64_t e = 0; e < E; ++e) dl[e] = 0.f;
    if (c.gating_softmax) {
        float dot = 0.f;
        for (int64_t j = 0; j < K; ++j) dot += ds[j] * s[j];
        for (int64_t j = 0; j < K; ++j) dl[idx[j]] += ds[j];
        for (int64_t e = 0; e < E; ++e) dl[e] = moe_math::softmax_term(logits[e], mx) / sum * (dl[e] - dot);
    } else {
        for (int64_t j = 0; j < K; ++j) dl[idx[j]] = ds[j] * s[j] * (1.f - s[j]);
    }
}

}  // namespace edge
