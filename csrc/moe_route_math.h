// moe_route_math.h — the routing arithmetic of one token (moe.h "Routing"), shared by the host (moe_route.cpp)
// and the CUDA backend's on-device router (backend/cuda/cuda_ops.cu), so both give the same routes and weights.
//
// exp is computed in double and rounded once to f32: a correctly rounded expf on both sides in all but a
// ~2^-29 fraction of inputs (glibc's and CUDA's double exp are within 1 ulp of double), where the f32 expf of
// libm and CUDA differ by an ulp far more often. Sums run in expert / rank order, divisions are IEEE.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define EDGE_HD __host__ __device__ __forceinline__
#else
#define EDGE_HD inline
#endif

namespace edge {
namespace moe_math {

EDGE_HD float exp_f32(float x) { return (float)exp((double)x); }

// idx[0..k): the k largest of logits[E], descending, ties to the lower index (insertion into a sorted list).
EDGE_HD void topk(const float* logits, int64_t E, int64_t k, int32_t* idx) {
    int64_t n = 0;
    for (int64_t e = 0; e < E; ++e) {
        const float v = logits[e];
        if (n == k && !(v > logits[idx[k - 1]])) continue;
        int64_t pos = n < k ? n++ : k - 1;
        while (pos > 0 && v > logits[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            --pos;
        }
        idx[pos] = (int32_t)e;
    }
}

// Gating weight of rank j (before norm_topk): softmax numerator exp(l - max) (its denominator is Σ of them over
// every expert, in expert order) or sigmoid.
EDGE_HD float softmax_term(float l, float mx) { return exp_f32(l - mx); }
EDGE_HD float sigmoid(float l) { return 1.0f / (1.0f + exp_f32(-l)); }

// norm_topk: w[j] /= Σ w (rank order).
EDGE_HD void normalize(float* w, int64_t k) {
    float s = 0.f;
    for (int64_t j = 0; j < k; ++j) s += w[j];
    for (int64_t j = 0; j < k; ++j) w[j] /= s;
}

}  // namespace moe_math
}  // namespace edge
