// silu_mul_avx2.cpp — silu_mul_fn (kernels.h), 8 lanes with the polynomial exp; scalar tail via the reference formula.
#include <cmath>

#include "avx2_util.h"
#include "x86.h"

namespace edge {

void silu_mul_avx2(const float* g, const float* u, int64_t n, float* y) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i);
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, x86::exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, uv));
    }
    for (; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace edge
