// attention_avx2.cpp — attention_fn (kernels.h) with AVX2+FMA: scores for a 16-position K tile per step,
// 8-wide V sums, a
// vectorised polynomial exp (Cephes expf, rel. err < 2e-7). Any head_dim (masked tails).
#include <immintrin.h>

#include <cmath>

#include "avx2_util.h"
#include "x86.h"

namespace edge {

namespace {

// Lane mask for the first min(left, 8) lanes (maskload/maskstore read the sign bit).
inline __m256i tail_mask(int64_t left) {
    const int64_t n = left >= 8 ? 8 : left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

}  // namespace

void attention_avx2(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim,
                    float* scratch, float* out) {
    static_assert(kKTile == 16, "two ymm per tile row");
    const float scale = 1.0f / std::sqrt((float)head_dim);
    float m = -INFINITY;
    int64_t p = p_begin & ~(int64_t)15;  // whole tiles; lanes before p_begin are computed and never read
    // scores: one K tile (16 positions) per step, a broadcast-FMA per head dimension, no horizontal sums
    for (; p < n_pos; p += 16) {
        const float* tile = kt + p * head_dim;  // p is a multiple of 16
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t i = 0; i < head_dim; ++i) {
            __m256 qi = _mm256_set1_ps(q[i]);
            a0 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(tile + i * 16), a0);
            a1 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(tile + i * 16 + 8), a1);
        }
        _mm256_maskstore_ps(scratch + p, tail_mask(n_pos - p), _mm256_mul_ps(a0, _mm256_set1_ps(scale)));
        if (n_pos - p > 8)
            _mm256_maskstore_ps(scratch + p + 8, tail_mask(n_pos - p - 8), _mm256_mul_ps(a1, _mm256_set1_ps(scale)));
    }
    for (p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    const __m256 mx = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (p = p_begin; p < n_pos; p += 8) {
        __m256i mk = tail_mask(n_pos - p);
        __m256 e = _mm256_and_ps(x86::exp8(_mm256_sub_ps(_mm256_maskload_ps(scratch + p, mk), mx)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(scratch + p, mk, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(vsum));
    for (int64_t i = 0; i < head_dim; i += 8) {
        __m256i mk = tail_mask(head_dim - i);
        __m256 o0 = _mm256_setzero_ps(), o1 = o0;
        const float* vp = v + p_begin * v_stride + i;
        int64_t j = p_begin;
        for (; j + 2 <= n_pos; j += 2, vp += 2 * v_stride) {
            o0 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j]), _mm256_maskload_ps(vp, mk), o0);
            o1 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j + 1]), _mm256_maskload_ps(vp + v_stride, mk), o1);
        }
        if (j < n_pos) o0 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j]), _mm256_maskload_ps(vp, mk), o0);
        _mm256_maskstore_ps(out + i, mk, _mm256_mul_ps(_mm256_add_ps(o0, o1), inv));
    }
}

}  // namespace edge
