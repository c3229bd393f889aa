// attention_kv_avx2.cpp — attention_f16_fn and attention_q8_fn (kernels.h) with AVX2+FMA+F16C: the loops
// of attention_avx2 (a 16-position K tile per step, 8-wide V sums, the polynomial exp) with the cache's
// elements widened to f32 on load (vcvtph2ps for f16, vpmovsxbd + vcvtdq2ps for int8, both exact).
// Any head_dim (V tails go through a small zero-padded copy).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "avx2_util.h"
#include "x86.h"

namespace edge {

namespace {

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

struct F16 {
    typedef uint16_t T;
    static __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
};
struct I8 {
    typedef int8_t T;
    static __m256 load8(const int8_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p))); }
};

// The first `left` (< 8) elements at p, zero-padded, widened.
template <class E>
inline __m256 load_tail(const typename E::T* p, int64_t left) {
    typename E::T buf[8] = {};
    std::memcpy(buf, p, (size_t)left * sizeof(typename E::T));
    return E::load8(buf);
}

// ks / vs: per-position scales (nullptr: none, the f16 cache).
template <class E>
void attention_kv(const float* q, const typename E::T* kt, const float* ks, const typename E::T* v, const float* vs,
                  int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    static_assert(kKTile == 16, "two ymm per tile row");
    const float scale = 1.0f / std::sqrt((float)head_dim);
    const __m256 vscale = _mm256_set1_ps(scale);
    int64_t p = p_begin & ~(int64_t)15;
    for (; p < n_pos; p += 16) {
        const typename E::T* tile = kt + p * head_dim;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t i = 0; i < head_dim; ++i) {
            __m256 qi = _mm256_set1_ps(q[i]);
            a0 = _mm256_fmadd_ps(qi, E::load8(tile + i * 16), a0);
            a1 = _mm256_fmadd_ps(qi, E::load8(tile + i * 16 + 8), a1);
        }
        __m256i m0 = tail_mask(n_pos - p);
        if (ks) a0 = _mm256_mul_ps(a0, _mm256_maskload_ps(ks + p, m0));
        _mm256_maskstore_ps(scratch + p, m0, _mm256_mul_ps(a0, vscale));
        if (n_pos - p > 8) {
            __m256i m1 = tail_mask(n_pos - p - 8);
            if (ks) a1 = _mm256_mul_ps(a1, _mm256_maskload_ps(ks + p + 8, m1));
            _mm256_maskstore_ps(scratch + p + 8, m1, _mm256_mul_ps(a1, vscale));
        }
    }
    float m = -INFINITY;
    for (p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    const __m256 mx = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (p = p_begin; p < n_pos; p += 8) {
        __m256i mk = tail_mask(n_pos - p);
        __m256 e = _mm256_and_ps(x86::exp8(_mm256_sub_ps(_mm256_maskload_ps(scratch + p, mk), mx)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(scratch + p, mk, vs ? _mm256_mul_ps(e, _mm256_maskload_ps(vs + p, mk)) : e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(vsum));
    for (int64_t i = 0; i < head_dim; i += 8) {
        const int64_t left = head_dim - i;
        __m256 o0 = _mm256_setzero_ps(), o1 = o0;
        const typename E::T* vp = v + p_begin * v_stride + i;
        if (left >= 8) {
            int64_t j = p_begin;
            for (; j + 2 <= n_pos; j += 2, vp += 2 * v_stride) {
                o0 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j]), E::load8(vp), o0);
                o1 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j + 1]), E::load8(vp + v_stride), o1);
            }
            if (j < n_pos) o0 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j]), E::load8(vp), o0);
        } else {
            for (int64_t j = p_begin; j < n_pos; ++j, vp += v_stride)
                o0 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j]), load_tail<E>(vp, left), o0);
        }
        _mm256_maskstore_ps(out + i, tail_mask(left), _mm256_mul_ps(_mm256_add_ps(o0, o1), inv));
    }
}

}  // namespace

void attention_f16_avx2(const float* q, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t p_begin,
                        int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    attention_kv<F16>(q, kt, nullptr, v, nullptr, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

void attention_q8_avx2(const float* q, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                       int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    attention_kv<I8>(q, kt, ks, v, vs, v_stride, p_begin, n_pos, head_dim, scratch, out);
}

}  // namespace edge
