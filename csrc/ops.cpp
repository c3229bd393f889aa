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

}  // namespace edge
