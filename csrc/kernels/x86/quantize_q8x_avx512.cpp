// quantize_q8x_avx512.cpp — f32 activations -> block_q8x with AVX-512 (quantize_q8x_fn, kernels.h).
//
// x: n floats (n % 32 == 0, finite, any alignment); y: n/32 block_q8x. Bit-exact with
// quantize_q8x_ref, by the same steps as quantize_q8x_avx2.cpp: exact max of |x|, scalar IEEE
// divisions for d and id (never rcp14), cvtps2dq of x * id in the default round-to-nearest-even mode,
// clamp to [-127, 127], s = d * (float)Σq.
#include "avx512_util.h"
#include "x86.h"

namespace edge {

void quantize_q8x_avx512(const float* x, block_q8x* y, int64_t n) {
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i q0 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)), lo), hi);
        const __m512i q1 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)), lo), hi);
        const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        _mm_storeu_si128((__m128i*)y[b].q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i*)(y[b].q + 16), _mm512_cvtepi32_epi8(q1));
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

}  // namespace edge
