// silu_mul_avx512.cpp — silu_mul_fn (kernels.h), 16 lanes with the polynomial exp; masked tail.
#include "avx512_util.h"
#include "x86.h"

namespace edge {

void silu_mul_avx512(const float* g, const float* u, int64_t n, float* y) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, x86::exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, uv));
    }
}

}  // namespace edge
