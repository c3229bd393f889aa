// ops.cpp — reference float ops (see ops.h). Plain loops the compiler can vectorise.
#include "ops.h"

#include <cmath>

namespace edge {

void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y) {
    float ss = 0.f;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    float scale = 1.0f / std::sqrt(ss / (float)n + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope_rotate_half(float* v, int64_t head_dim, int64_t pos, const float* inv_freq) {
    int64_t half = head_dim / 2;
    for (int64_t i = 0; i < half; ++i) {
        float angle = (float)pos * inv_freq[i];
        float c = std::cos(angle), s = std::sin(angle);
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

void silu_mul(const float* g, const float* u, int64_t n, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void softmax(float* x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - m);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_pos,
                    int64_t head_dim, float* scratch, float* out) {
    float scale = 1.0f / std::sqrt((float)head_dim);
    for (int64_t p = 0; p < n_pos; ++p) {
        const float* kp = k + p * stride;
        float s = 0.f;
        for (int64_t i = 0; i < head_dim; ++i) s += q[i] * kp[i];
        scratch[p] = s * scale;
    }
    softmax(scratch, n_pos);
    for (int64_t i = 0; i < head_dim; ++i) out[i] = 0.f;
    for (int64_t p = 0; p < n_pos; ++p) {
        const float* vp = v + p * stride;
        float a = scratch[p];
        for (int64_t i = 0; i < head_dim; ++i) out[i] += a * vp[i];
    }
}

}  // namespace edge
