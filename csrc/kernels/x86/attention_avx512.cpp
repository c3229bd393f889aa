// attention_avx512.cpp — attention_fn (kernels.h) with AVX-512: scores for a 16-position K tile per
// step, 16-wide V sums,
// a vectorised polynomial exp (Cephes expf, rel. err < 2e-7). Any head_dim (masked tails).
#include <immintrin.h>

#include <cmath>

#include "avx512_util.h"
#include "x86.h"

namespace edge {

namespace {

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

}  // namespace

void attention_avx512(const float* q, const float* kt, const float* v, int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim,
                      float* scratch, float* out) {
    static_assert(kKTile == 16, "one zmm per tile row");
    const float scale = 1.0f / std::sqrt((float)head_dim);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t p = p_begin & ~(int64_t)15;  // whole tiles; lanes before p_begin are computed and never read
    // scores: one K tile (16 positions) per step, a broadcast-FMA per head dimension, no horizontal sums
    for (; p < n_pos; p += 16) {
        const float* tile = kt + p * head_dim;  // p is a multiple of 16
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 2 <= head_dim; i += 2) {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_loadu_ps(tile + i * 16), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[i + 1]), _mm512_loadu_ps(tile + i * 16 + 16), a1);
        }
        if (i < head_dim) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_loadu_ps(tile + i * 16), a0);
        _mm512_mask_storeu_ps(scratch + p, tail_mask(n_pos - p), _mm512_mul_ps(_mm512_add_ps(a0, a1), _mm512_set1_ps(scale)));
    }
    for (p = p_begin; p < n_pos; p += 16) vmax = _mm512_mask_max_ps(vmax, tail_mask(n_pos - p), vmax, _mm512_maskz_loadu_ps(tail_mask(n_pos - p), scratch + p));
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (p = p_begin; p < n_pos; p += 16) {
        __mmask16 m = tail_mask(n_pos - p);
        __m512 e = x86::exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scratch + p), mx));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(scratch + p, m, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int64_t i = 0; i < head_dim; i += 16) {
        __mmask16 m = tail_mask(head_dim - i);
        __m512 o0 = _mm512_setzero_ps(), o1 = o0;
        const float* vp = v + p_begin * v_stride + i;
        int64_t j = p_begin;
        for (; j + 2 <= n_pos; j += 2, vp += 2 * v_stride) {
            o0 = _mm512_fmadd_ps(_mm512_set1_ps(scratch[j]), _mm512_maskz_loadu_ps(m, vp), o0);
            o1 = _mm512_fmadd_ps(_mm512_set1_ps(scratch[j + 1]), _mm512_maskz_loadu_ps(m, vp + v_stride), o1);
        }
        if (j < n_pos) o0 = _mm512_fmadd_ps(_mm512_set1_ps(scratch[j]), _mm512_maskz_loadu_ps(m, vp), o0);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_add_ps(o0, o1), inv));
    }
}

}  // namespace edge
