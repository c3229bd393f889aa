// moe_route.cpp — routing of moe.h on the host (the arithmetic in moe_route_math.h): top-k, gating weights, predictor overlap, and the
// grouping of a step's routes by expert.
#include <algorithm>
#include <cmath>

#include "moe.h"
#include "moe_route_math.h"

namespace edge {

void moe_topk(const float* logits, int64_t E, int64_t k, int32_t* idx) { moe_math::topk(logits, E, k, idx); }

void moe_route(const MoeConfig& c, const float* logits, int32_t* idx, float* w) {
    const int64_t E = c.n_experts, k = c.n_used;
    moe_math::topk(logits, E, k, idx);
    if (c.gating_softmax) {
        const float mx = logits[idx[0]];
        float sum = 0.f;
        for (int64_t e = 0; e < E; ++e) sum += moe_math::softmax_term(logits[e], mx);
        for (int64_t j = 0; j < k; ++j) w[j] = moe_math::softmax_term(logits[idx[j]], mx) / sum;
    } else {
        for (int64_t j = 0; j < k; ++j) w[j] = moe_math::sigmoid(logits[idx[j]]);
    }
    if (c.norm_topk) moe_math::normalize(w, k);
}

int64_t moe_overlap(const int32_t* true_idx, const int32_t* pred_idx, int64_t T, int64_t k) {
    int64_t hits = 0;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t a = 0; a < k; ++a)
            for (int64_t b = 0; b < k; ++b)
                if (true_idx[t * k + a] == pred_idx[t * k + b]) {
                    ++hits;
                    break;
                }
    return hits;
}

void moe_route_rows(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w) {
    const int64_t E = c.n_experts;
    for (int64_t t = 0; t < T; ++t) {
        if (w)
            moe_route(c, logits + t * E, idx + t * k, w + t * k);
        else
            moe_topk(logits + t * E, E, k, idx + t * k);
    }
}

int moe_group(const int32_t* idx, const float* w, int64_t T, int64_t k, int64_t E, const MoeGroups& g) {
    // counting sort of the T·k routes r = t·k + j by expert, routes in token order within an expert
    std::fill(g.count, g.count + E, 0);
    std::fill(g.wmax, g.wmax + E, 0.f);
    for (int64_t r = 0; r < T * k; ++r) {
        ++g.count[idx[r]];
        g.wmax[idx[r]] = std::max(g.wmax[idx[r]], w[r]);
    }
    g.start[0] = 0;
    for (int64_t e = 0; e < E; ++e) g.start[e + 1] = g.start[e] + g.count[e];
    std::copy(g.start, g.start + E, g.cursor);
    for (int64_t r = 0; r < T * k; ++r) g.token_of[g.cursor[idx[r]]++] = (int32_t)r;
    int n = 0;
    for (int64_t e = 0; e < E; ++e)
        if (g.count[e]) g.experts[n++] = (int32_t)e;
    std::stable_sort(g.experts, g.experts + n, [&](int32_t a, int32_t z) { return g.count[a] > g.count[z]; });
    for (int i = 0; i < n; ++i) g.wpos[i] = g.wmax[g.experts[i]];
    return n;
}

int moe_union(const int32_t* idx, const float* w, int64_t n_idx, int64_t E, uint8_t* seen, int32_t* out, float* wout) {
    std::fill(seen, seen + E, 0);
    int n = 0;
    for (int64_t r = 0; r < n_idx; ++r) {
        const int32_t e = idx[r];
        if (!seen[e]) {
            seen[e] = 1;
            if (w) wout[n] = w[r];
            out[n++] = e;
        } else if (w) {
            for (int i = 0; i < n; ++i)
                if (out[i] == e) wout[i] = std::max(wout[i], w[r]);
        }
    }
    return n;
}

}  // namespace edge
