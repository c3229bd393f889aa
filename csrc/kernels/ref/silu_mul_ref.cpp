// silu_mul_ref.cpp — the SwiGLU gate y = silu(g) * u: the reference of silu_mul_fn (kernels.h), expf in f32.
#include <cmath>

#include "ref.h"

namespace edge {

void silu_mul_ref(const float* g, const float* u, int64_t n, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace edge
