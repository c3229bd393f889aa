// attention_block_avx512.cpp — attention_block_fn / _f16_fn / _q8_fn (kernels.h) with AVX-512 (F+BW+VL+DQ).
// Per K tile (16 positions = one zmm per head dimension): scores of up to 8 rows at once (each K row loaded
// and widened once — vcvtph2ps for f16, vpmovsxbd + vcvtdq2ps for int8, exact — then one broadcast-FMA per
// row), each row's online-softmax update (masked lanes -inf, the polynomial exp x86::exp16), then
// o += w·V for 4 rows at once over the tile's union lanes, 16 head dimensions per zmm (masked tail).
// o lives in out (kernels.h). Each row's arithmetic is the same whatever rows share its group, so its
// result never depends on the block it was called in. Any head_dim >= 1, any alignment.
// Bound vs float64: |Δout| <= 1e-5 · max_p ||V_p||_inf (kernels.h).
// The ISA-neutral frame (the rows' m, l and o, their start and finish, the tile walk): attention_block_common.h.
#include "../attention_block_common.h"
#include "avx512_util.h"
#include "x86.h"

#include <cmath>

namespace edge {

namespace {

inline __mmask16 lanes(int64_t lo, int64_t hi) {  // lanes j with lo <= j < hi, of 16
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

struct F32 {
    typedef float T;
    static __m512 ld(const float* p) { return _mm512_loadu_ps(p); }
    static __m512 ldm(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
};
struct F16 {
    typedef uint16_t T;
    static __m512 ld(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
    static __m512 ldm(__mmask16 m, const uint16_t* p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct I8 {
    typedef int8_t T;
    static __m512 ld(const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p))); }
    static __m512 ldm(__mmask16 m, const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p))); }
};

static_assert(kKTile == 16, "one zmm per tile row");
using Ctx = AttnBlockCtx;

// o[0, Dh) *= f
inline void scale_row(float* o, int64_t Dh, float f) {
    const __m512 fv = _mm512_set1_ps(f);
    for (int64_t i = 0; i < Dh; i += 16) {
        const __mmask16 dm = lanes(0, Dh - i);
        _mm512_mask_storeu_ps(o + i, dm, _mm512_mul_ps(_mm512_maskz_loadu_ps(dm, o + i), fv));
    }
}

// Scores of rows [r0, r0 + NR) against the tile at p0, then each row's softmax update; w[r] = the row's
// weights (0 outside its range; q8: times vs).
template <int NR, class E>
void scores(const Ctx& c, int64_t r0, int64_t p0, const typename E::T* tile, __m512 ksv, __m512 vsv, bool scaled) {
    __mmask16 mk[NR];
    bool any = false;
    for (int r = 0; r < NR; ++r) {
        const int64_t t = (r0 + r) / c.n_head;
        mk[r] = lanes(c.pb[t] - p0, c.pe[t] - p0);
        any = any || mk[r];
    }
    if (!any) {
        for (int r = 0; r < NR; ++r) _mm512_storeu_ps(c.w + (r0 + r) * 16, _mm512_setzero_ps());
        return;
    }
    const float* qp[NR];
    __m512 a[NR];
    for (int r = 0; r < NR; ++r) qp[r] = c.qr(r0 + r), a[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < c.Dh; ++i) {
        const __m512 k = E::ld(tile + i * 16);
        for (int r = 0; r < NR; ++r) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(qp[r][i]), k, a[r]);
    }
    for (int r = 0; r < NR; ++r) {
        float* w = c.w + (r0 + r) * 16;
        if (!mk[r]) {
            _mm512_storeu_ps(w, _mm512_setzero_ps());
            continue;
        }
        __m512 s = scaled ? _mm512_mul_ps(a[r], ksv) : a[r];
        s = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), mk[r], _mm512_mul_ps(s, _mm512_set1_ps(c.scale)));
        float& m = c.m[r0 + r];
        float& l = c.l[r0 + r];
        const float mt = _mm512_reduce_max_ps(s);
        if (mt > m) {
            if (m != -INFINITY) {  // o and l are zero before the row's first tile
                const float f = _mm_cvtss_f32(_mm512_castps512_ps128(x86::exp16(_mm512_set1_ps(m - mt))));
                l *= f;
                scale_row(c.o(r0 + r), c.Dh, f);
            }
            m = mt;
        }
        const __m512 e = _mm512_maskz_mov_ps(mk[r], x86::exp16(_mm512_sub_ps(s, _mm512_set1_ps(m))));
        l += _mm512_reduce_add_ps(e);
        _mm512_storeu_ps(w, _mm512_maskz_mov_ps(mk[r], scaled ? _mm512_mul_ps(e, vsv) : e));
    }
}

// o[r] += Σ_j w[r][j] · V_{p0+j} for rows [r0, r0 + NR), j in [j0, j1).
template <int NR, class E>
void accumulate(const Ctx& c, int64_t r0, int64_t p0, int64_t j0, int64_t j1, const typename E::T* v, int64_t v_stride) {
    float* o[NR];
    const float* w[NR];
    for (int r = 0; r < NR; ++r) o[r] = c.o(r0 + r), w[r] = c.w + (r0 + r) * 16;
    for (int64_t i = 0; i < c.Dh; i += 32) {
        const __mmask16 d0 = lanes(0, c.Dh - i), d1 = lanes(0, c.Dh - i - 16);
        __m512 a0[NR], a1[NR];
        for (int r = 0; r < NR; ++r) a0[r] = _mm512_maskz_loadu_ps(d0, o[r] + i), a1[r] = _mm512_maskz_loadu_ps(d1, o[r] + i + 16);
        const typename E::T* vp = v + (p0 + j0) * v_stride + i;
        for (int64_t j = j0; j < j1; ++j, vp += v_stride) {
            const __m512 x0 = E::ldm(d0, vp);
            if (d1) {
                const __m512 x1 = E::ldm(d1, vp + 16);
                for (int r = 0; r < NR; ++r) {
                    const __m512 wj = _mm512_set1_ps(w[r][j]);
                    a0[r] = _mm512_fmadd_ps(wj, x0, a0[r]);
                    a1[r] = _mm512_fmadd_ps(wj, x1, a1[r]);
                }
            } else {
                for (int r = 0; r < NR; ++r) a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[r][j]), x0, a0[r]);
            }
        }
        for (int r = 0; r < NR; ++r) {
            _mm512_mask_storeu_ps(o[r] + i, d0, a0[r]);
            if (d1) _mm512_mask_storeu_ps(o[r] + i + 16, d1, a1[r]);
        }
    }
}

template <class E>
void block(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* pb, const int64_t* pe,
           const typename E::T* kt, const float* ks, const typename E::T* v, const float* vs, int64_t v_stride, int64_t Dh,
           float* scratch, float* out, int64_t out_stride) {
    const int64_t R = n_tok * n_head;
    int64_t lo, hi;
    const Ctx c = attn_block_start(q, q_stride, n_tok, n_head, pb, pe, Dh, scratch, out, out_stride, &lo, &hi);
    const bool scaled = ks != nullptr;
    attn_block_tiles(lo, hi, [&](int64_t p0, int64_t j0, int64_t j1) {
        const __mmask16 um = lanes(j0, j1);
        const __m512 ksv = scaled ? _mm512_maskz_loadu_ps(um, ks + p0) : _mm512_setzero_ps();
        const __m512 vsv = scaled ? _mm512_maskz_loadu_ps(um, vs + p0) : _mm512_setzero_ps();
        const typename E::T* tile = kt + p0 * Dh;
        attn_block_row_groups<8>(R, [&](auto n, int64_t r) { scores<decltype(n)::value, E>(c, r, p0, tile, ksv, vsv, scaled); });
        attn_block_row_groups<4>(R, [&](auto n, int64_t r) { accumulate<decltype(n)::value, E>(c, r, p0, j0, j1, v, v_stride); });
    });
    attn_block_finish(c, R, scale_row);
}

}  // namespace

void attention_block_avx512(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                            const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim,
                            float* scratch, float* out, int64_t out_stride) {
    block<F32>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_f16_avx512(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride,
                                int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    block<F16>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_q8_avx512(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                               const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                               int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    block<I8>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, ks, v, vs, v_stride, head_dim, scratch, out, out_stride);
}

}  // namespace edge
