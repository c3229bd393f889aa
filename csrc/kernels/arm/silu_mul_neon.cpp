// silu_mul_neon.cpp — silu_mul_fn (kernels.h) with armv8.0 NEON: y = g / (1 + e^-g) · u, 4 lanes with the
// polynomial exp of neon_util.h (rel. err < 2e-7, as x86's exp8), so |Δy| ≤ 1e-6·|g·u| + 1e-30 vs the
// reference; the n % 4 tail uses the reference formula. y may alias g or u (each lane is read first).
#include <cmath>

#include "arm.h"
#include "neon_util.h"

namespace edge {

void silu_mul_neon(const float* g, const float* u, int64_t n, float* y) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t gv = vld1q_f32(g + i), uv = vld1q_f32(u + i);
        const float32x4_t s = vdivq_f32(gv, vaddq_f32(one, arm::exp4(vnegq_f32(gv))));
        vst1q_f32(y + i, vmulq_f32(s, uv));
    }
    for (; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace edge
