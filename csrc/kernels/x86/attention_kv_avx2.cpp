// attention_kv_avx2.cpp — attention_f16_fn and attention_q8_fn (kernels.h) with AVX2+FMA+F16C: the loops
// of attention_avx2 (a 16-position K tile per step, 8-wide V sums, the polynomial exp) with the cache's
// elements widened to f32 on load (vcvtph2ps for f16, vpmovsxbd + vcvtdq2ps for int8, both exact).
// Any head_dim (V tails go through a small zero-padded copy).
// Independent FMA chains come from independent outputs (two K tiles per step: 4 chains; 32 V columns per step: 8),
// never from splitting one output's sum: each score and each out element sees exactly the float operations of the
// one-tile / 8-column loop, so the bits do not depend on the grouping (91cc891 split the sums, which changed the bits
// that tests/test_server.py compares between a cached prompt's last token, through this kernel, and the uncached
// prompt; reverted). Whole tiles and 8-lane groups use plain loads / stores, vmaskmovps only at the tails (its
// stores are microcoded on Zen 1, ~14 cycles each).
// Software prefetch of the K tiles two steps ahead and of the V rows four steps ahead: decode at position 1900 of
// SmolLM2-135M int4 (f16 KV, 2 threads, 2-core Xeon) went from ~104 to ~120 tok/s (session 26); the hardware prefetcher
// alone did not keep up with the per-head K / V streams. Hints change no result bit.
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

// scratch[p..p+16·NT) = (q·K_p) [· ks[p]] · scale for the NT tiles from p (each with a lane below n_pos; lanes past
// n_pos not stored). Each position's dot: one FMA chain in index order, whatever NT (2·NT independent chains).
template <class E, int NT>
inline void scores(const float* q, const typename E::T* tile, const float* ks, int64_t p, int64_t n_pos, int64_t head_dim,
                   __m256 vscale, float* scratch) {
    __m256 a[2 * NT];
    for (int t = 0; t < 2 * NT; ++t) a[t] = _mm256_setzero_ps();
    // the K tiles two steps ahead (a hint: past the cache's end it reads nothing); see the file comment
    const char* ahead = (const char*)(tile + 2 * NT * 16 * head_dim);
    for (int64_t o = 0; o < NT * 16 * head_dim * (int64_t)sizeof(typename E::T); o += 64) __builtin_prefetch(ahead + o);
    for (int64_t i = 0; i < head_dim; ++i) {
        const __m256 qi = _mm256_set1_ps(q[i]);
        for (int t = 0; t < NT; ++t) {
            a[2 * t] = _mm256_fmadd_ps(qi, E::load8(tile + t * 16 * head_dim + i * 16), a[2 * t]);
            a[2 * t + 1] = _mm256_fmadd_ps(qi, E::load8(tile + t * 16 * head_dim + i * 16 + 8), a[2 * t + 1]);
        }
    }
    for (int t = 0; t < NT; ++t, p += 16) {
        __m256 a0 = a[2 * t], a1 = a[2 * t + 1];
        if (n_pos - p >= 16) {  // a whole tile
            if (ks) a0 = _mm256_mul_ps(a0, _mm256_loadu_ps(ks + p)), a1 = _mm256_mul_ps(a1, _mm256_loadu_ps(ks + p + 8));
            _mm256_storeu_ps(scratch + p, _mm256_mul_ps(a0, vscale));
            _mm256_storeu_ps(scratch + p + 8, _mm256_mul_ps(a1, vscale));
            continue;
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
}

// out[i..i+8·NG) = (Σ_j w[j] · V_j[i..]) · inv, j in [p_begin, n_pos): per 8 columns two FMA chains (even j, odd j;
// an odd last j into the even one) added at the end, whatever NG.
template <class E, int NG>
inline void v_cols(const float* w, const typename E::T* vp, int64_t v_stride, int64_t p_begin, int64_t n_pos, __m256 inv,
                   float* out) {
    __m256 o0[NG], o1[NG];
    for (int g = 0; g < NG; ++g) o0[g] = o1[g] = _mm256_setzero_ps();
    int64_t j = p_begin;
    for (; j + 2 <= n_pos; j += 2, vp += 2 * v_stride) {
        __builtin_prefetch(vp + 8 * v_stride), __builtin_prefetch(vp + 9 * v_stride);  // V rows 4 steps ahead
        const __m256 w0 = _mm256_set1_ps(w[j]), w1 = _mm256_set1_ps(w[j + 1]);
        for (int g = 0; g < NG; ++g) {
            o0[g] = _mm256_fmadd_ps(w0, E::load8(vp + 8 * g), o0[g]);
            o1[g] = _mm256_fmadd_ps(w1, E::load8(vp + v_stride + 8 * g), o1[g]);
        }
    }
    if (j < n_pos) {
        const __m256 w0 = _mm256_set1_ps(w[j]);
        for (int g = 0; g < NG; ++g) o0[g] = _mm256_fmadd_ps(w0, E::load8(vp + 8 * g), o0[g]);
    }
    for (int g = 0; g < NG; ++g) _mm256_storeu_ps(out + 8 * g, _mm256_mul_ps(_mm256_add_ps(o0[g], o1[g]), inv));
}

// ks / vs: per-position scales (nullptr: none, the f16 cache).
template <class E>
void attention_kv(const float* q, const typename E::T* kt, const float* ks, const typename E::T* v, const float* vs,
                  int64_t v_stride, int64_t p_begin, int64_t n_pos, int64_t head_dim, float* scratch, float* out) {
    static_assert(kKTile == 16, "two ymm per tile row");
    const float scale = 1.0f / std::sqrt((float)head_dim);
    const __m256 vscale = _mm256_set1_ps(scale);
    int64_t p = p_begin & ~(int64_t)15;
    for (; p + 16 < n_pos; p += 32) scores<E, 2>(q, kt + p * head_dim, ks, p, n_pos, head_dim, vscale, scratch);
    if (p < n_pos) scores<E, 1>(q, kt + p * head_dim, ks, p, n_pos, head_dim, vscale, scratch);
    float m = -INFINITY;
    for (p = p_begin; p < n_pos; ++p) m = scratch[p] > m ? scratch[p] : m;
    const __m256 mx = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (p = p_begin; p + 8 <= n_pos; p += 8) {
        const __m256 e = x86::exp8(_mm256_sub_ps(_mm256_loadu_ps(scratch + p), mx));
        _mm256_storeu_ps(scratch + p, vs ? _mm256_mul_ps(e, _mm256_loadu_ps(vs + p)) : e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (p < n_pos) {
        __m256i mk = tail_mask(n_pos - p);
        __m256 e = _mm256_and_ps(x86::exp8(_mm256_sub_ps(_mm256_maskload_ps(scratch + p, mk), mx)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(scratch + p, mk, vs ? _mm256_mul_ps(e, _mm256_maskload_ps(vs + p, mk)) : e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(vsum));
    const typename E::T* v0 = v + p_begin * v_stride;
    int64_t i = 0;
    for (; i + 32 <= head_dim; i += 32) v_cols<E, 4>(scratch, v0 + i, v_stride, p_begin, n_pos, inv, out + i);
    if (i + 16 <= head_dim) v_cols<E, 2>(scratch, v0 + i, v_stride, p_begin, n_pos, inv, out + i), i += 16;
    if (i + 8 <= head_dim) v_cols<E, 1>(scratch, v0 + i, v_stride, p_begin, n_pos, inv, out + i), i += 8;
    if (i < head_dim) {  // the last head_dim % 8 columns, zero-padded
        const int64_t left = head_dim - i;
        __m256 o0 = _mm256_setzero_ps();
        const typename E::T* vp = v0 + i;
        for (int64_t j = p_begin; j < n_pos; ++j, vp += v_stride)
            o0 = _mm256_fmadd_ps(_mm256_set1_ps(scratch[j]), load_tail<E>(vp, left), o0);
        // + 0: the o0 + o1 of the 8-column loop with o1 = 0 (it turns -0 into +0)
        _mm256_maskstore_ps(out + i, tail_mask(left), _mm256_mul_ps(_mm256_add_ps(o0, _mm256_setzero_ps()), inv));
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
