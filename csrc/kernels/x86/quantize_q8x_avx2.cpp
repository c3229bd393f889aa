// quantize_q8x_avx2.cpp — f32 activations -> block_q8x with AVX2 (quantize_q8x_fn, kernels.h).
//
// x: n floats (n % 32 == 0, finite, any alignment); y: n/32 block_q8x. Bit-exact with
// quantize_q8x_ref: amax by exact max of |x|; d = amax / 127 and id = 1 / d as scalar IEEE divisions
// (never rcpps); q = cvtps2dq(x * id) in the default round-to-nearest-even MXCSR mode, clamped to
// [-127, 127]; s = d * (float)Σq with Σq in int32. No FMA anywhere here (a fused x*id+0 would be the
// same, but d*(float)sum must stay one rounding).
#include <immintrin.h>

#include "x86.h"

namespace edge {

void quantize_q8x_avx2(const float* x, block_q8x* y, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        __m256 v[4];
        for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; ++i)
            q[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid)), lo), hi);
        // Σq: four vectors of eight int32, then across the lanes.
        __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        const int sum = _mm_cvtsi128_si32(s4);
        // int32 -> int8 (no saturation happens: values are already in [-127, 127]); packs interleave
        // 128-bit lanes, the permute puts the 32 bytes back in element order.
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, order);
        _mm256_storeu_si256((__m256i*)y[b].q, p);
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

}  // namespace edge
