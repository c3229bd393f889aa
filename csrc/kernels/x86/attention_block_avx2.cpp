// attention_block_avx2.cpp — attention_block_fn / _f16_fn / _q8_fn / attention_block_kivi_fn (kernels.h) with
// AVX2+FMA+F16C. The loops of attention_block_avx512 with a 16-position tile row as two ymm: scores of up to 4 rows
// at once (each K row loaded and widened once — vcvtph2ps for f16, vpmovsxbd + vcvtdq2ps for int8, exact — then one
// broadcast-FMA per row), each row's online-softmax update (masked lanes -inf, the polynomial exp x86::exp8), then
// o += w·V for 4 rows at once over the tile's union lanes, 16 head dimensions per step (tails through a zero-padded
// copy / maskload). o lives in out (kernels.h). Each row's arithmetic is the same whatever rows share its group.
// One tile loop for every form: a tile is a K source (row i: its 16 lanes of channel i) and a V source (the 16
// dimensions i.. of its row j). KIVI: the sink's and the ring's f16 tiles (at slot p % ring) are such sources; a
// quantized group's half is dequantized once per call into f32 tiles in the scratch (d·c + m, kivi_avx2.h; the K
// outlier channels' f16 values in place) and read as an f32 cache. Any head_dim >= 1
// (KIVI: a multiple of 32), any alignment. Bound vs float64: |Δout| <= 1e-5 · max_p ||V_p||_inf (kernels.h; KIVI:
// on the dequantized cache).
// The ISA-neutral frame (the rows' m, l and o, their start and finish, the tile walk): attention_block_common.h.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "../attention_block_common.h"
#include "../kivi_parts.h"
#include "avx2_util.h"
#include "kivi_avx2.h"
#include "x86.h"

namespace edge {

namespace {

// (no vector constants at namespace scope: their initializers would run AVX2 at load time on any CPU)
inline __m256i iota0() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }

struct Mask16 {
    __m256 m0, m1;
    bool any;
};
inline Mask16 lanes(int64_t lo, int64_t hi) {  // lanes j with lo <= j < hi, of 16
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    if (hi <= lo) return Mask16{_mm256_setzero_ps(), _mm256_setzero_ps(), false};
    const __m256i l = _mm256_set1_epi32((int)lo), h = _mm256_set1_epi32((int)hi);
    const __m256i i0 = iota0(), i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
    const __m256i a = _mm256_andnot_si256(_mm256_cmpgt_epi32(l, i0), _mm256_cmpgt_epi32(h, i0));
    const __m256i b = _mm256_andnot_si256(_mm256_cmpgt_epi32(l, i1), _mm256_cmpgt_epi32(h, i1));
    return Mask16{_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), true};
}
inline __m256i tail_mask(int64_t left) {
    const int64_t n = left >= 8 ? 8 : left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), iota0());
}
inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

struct F32 {
    typedef float T;
    static __m256 ld(const float* p) { return _mm256_loadu_ps(p); }
    static __m256 ldn(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail_mask(n)); }
};
struct F16 {
    typedef uint16_t T;
    static __m256 ld(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
    static __m256 ldn(const uint16_t* p, int64_t n) {
        uint16_t b[8] = {};
        std::memcpy(b, p, (size_t)n * 2);
        return ld(b);
    }
};
struct I8 {
    typedef int8_t T;
    static __m256 ld(const int8_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p))); }
    static __m256 ldn(const int8_t* p, int64_t n) {
        int8_t b[8] = {};
        std::memcpy(b, p, (size_t)n);
        return ld(b);
    }
};

static_assert(kKTile == 16, "two ymm per tile row");
using Ctx = AttnBlockCtx;

// The K and V of one tile of 16 positions in the cache's own layout (the tiles of kernels.h; V rows of `stride`).
template <class E>
struct TileK {
    const typename E::T* tile;
    void row(int64_t i, __m256& k0, __m256& k1) const { k0 = E::ld(tile + i * 16), k1 = E::ld(tile + i * 16 + 8); }
};
template <class E>
struct TileV {
    const typename E::T* v;  // the tile's first position
    int64_t stride;
    void ld16(int64_t j, int64_t i, __m256& x0, __m256& x1) const {
        const typename E::T* p = v + j * stride + i;
        x0 = E::ld(p), x1 = E::ld(p + 8);
    }
    __m256 ld8(int64_t j, int64_t i, int64_t n) const { return n >= 8 ? E::ld(v + j * stride + i) : E::ldn(v + j * stride + i, n); }
};

inline __m256 dequant(__m256 codes, __m256 d, __m256 m) { return _mm256_add_ps(_mm256_mul_ps(d, codes), m); }

// Half H (lanes 16H .. 16H+15) of a quantized KIVI group into f32 tiles: K kt[i·16 + l] (channel i's blocks kb[i],
// the n_out outlier channels' f16 values in place of their zero blocks), V vt[j·Dh + i] for rows j in [j0, j1)
// (position j's blocks at vb + j·vq_stride).
template <class B, int H>
void dequant_tile(const B* kb, const B* vb, const KiviOutlier* ko, int64_t n_out, int64_t vq_stride, int64_t j0, int64_t j1,
                  int64_t Dh, float* kt, float* vt) {
    for (int64_t i = 0; i < Dh; ++i) {
        const B& b = kb[i];
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d)), m = _mm256_set1_ps(_cvtsh_ss(b.m));
        _mm256_storeu_ps(kt + i * 16, dequant(x86::kivi_piece<B, 2 * H>(b), d, m));
        _mm256_storeu_ps(kt + i * 16 + 8, dequant(x86::kivi_piece<B, 2 * H + 1>(b), d, m));
    }
    for (int64_t o = 0; o < n_out; ++o) {
        _mm256_storeu_ps(kt + ko[o].ch * 16, F16::ld(ko[o].v + 16 * H));
        _mm256_storeu_ps(kt + ko[o].ch * 16 + 8, F16::ld(ko[o].v + 16 * H + 8));
    }
    for (int64_t j = j0; j < j1; ++j)
        for (int64_t cb = 0; cb < Dh / 32; ++cb) {
            const B& b = vb[j * vq_stride + cb];
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d)), m = _mm256_set1_ps(_cvtsh_ss(b.m));
            float* o = vt + j * Dh + cb * 32;
            _mm256_storeu_ps(o, dequant(x86::kivi_piece<B, 0>(b), d, m));
            _mm256_storeu_ps(o + 8, dequant(x86::kivi_piece<B, 1>(b), d, m));
            _mm256_storeu_ps(o + 16, dequant(x86::kivi_piece<B, 2>(b), d, m));
            _mm256_storeu_ps(o + 24, dequant(x86::kivi_piece<B, 3>(b), d, m));
        }
}

// o[0, Dh) *= f
inline void scale_row(float* o, int64_t Dh, float f) {
    const __m256 fv = _mm256_set1_ps(f);
    int64_t i = 0;
    for (; i + 8 <= Dh; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(o + i), fv));
    if (i < Dh) {
        const __m256i tm = tail_mask(Dh - i);
        _mm256_maskstore_ps(o + i, tm, _mm256_mul_ps(_mm256_maskload_ps(o + i, tm), fv));
    }
}

// Scores of rows [r0, r0 + NR) against the tile at p0, then each row's softmax update; w[r] = the row's
// weights (0 outside its range; q8: times vs).
template <int NR, class K>
void scores(const Ctx& c, int64_t r0, int64_t p0, const K& tile, const __m256* ksv, const __m256* vsv, bool scaled) {
    Mask16 mk[NR];
    bool any = false;
    for (int r = 0; r < NR; ++r) {
        const int64_t t = (r0 + r) / c.n_head;
        mk[r] = lanes(c.pb[t] - p0, c.pe[t] - p0);
        any = any || mk[r].any;
    }
    if (!any) {
        for (int r = 0; r < NR; ++r) std::memset(c.w + (r0 + r) * 16, 0, 64);
        return;
    }
    const float* qp[NR];
    __m256 a0[NR], a1[NR];
    for (int r = 0; r < NR; ++r) qp[r] = c.qr(r0 + r), a0[r] = a1[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < c.Dh; ++i) {
        __m256 k0, k1;
        tile.row(i, k0, k1);
        for (int r = 0; r < NR; ++r) {
            const __m256 qi = _mm256_set1_ps(qp[r][i]);
            a0[r] = _mm256_fmadd_ps(qi, k0, a0[r]);
            a1[r] = _mm256_fmadd_ps(qi, k1, a1[r]);
        }
    }
    const __m256 ninf = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(c.scale);
    for (int r = 0; r < NR; ++r) {
        float* w = c.w + (r0 + r) * 16;
        if (!mk[r].any) {
            std::memset(w, 0, 64);
            continue;
        }
        __m256 s0 = scaled ? _mm256_mul_ps(a0[r], ksv[0]) : a0[r], s1 = scaled ? _mm256_mul_ps(a1[r], ksv[1]) : a1[r];
        s0 = _mm256_blendv_ps(ninf, _mm256_mul_ps(s0, sc), mk[r].m0);
        s1 = _mm256_blendv_ps(ninf, _mm256_mul_ps(s1, sc), mk[r].m1);
        float& m = c.m[r0 + r];
        float& l = c.l[r0 + r];
        const float mt = hmax8(_mm256_max_ps(s0, s1));
        if (mt > m) {
            if (m != -INFINITY) {  // o and l are zero before the row's first tile
                const float f = _mm256_cvtss_f32(x86::exp8(_mm256_set1_ps(m - mt)));
                l *= f;
                scale_row(c.o(r0 + r), c.Dh, f);
            }
            m = mt;
        }
        const __m256 mv = _mm256_set1_ps(m);
        const __m256 e0 = _mm256_and_ps(x86::exp8(_mm256_sub_ps(s0, mv)), mk[r].m0);
        const __m256 e1 = _mm256_and_ps(x86::exp8(_mm256_sub_ps(s1, mv)), mk[r].m1);
        l += x86::hsum8(_mm256_add_ps(e0, e1));
        _mm256_storeu_ps(w, _mm256_and_ps(scaled ? _mm256_mul_ps(e0, vsv[0]) : e0, mk[r].m0));
        _mm256_storeu_ps(w + 8, _mm256_and_ps(scaled ? _mm256_mul_ps(e1, vsv[1]) : e1, mk[r].m1));
    }
}

// o[r] += Σ_j w[r][j] · V_{p0+j} for rows [r0, r0 + NR), j in [j0, j1).
template <int NR, class V>
void accumulate(const Ctx& c, int64_t r0, int64_t j0, int64_t j1, const V& v) {
    float* o[NR];
    const float* w[NR];
    for (int r = 0; r < NR; ++r) o[r] = c.o(r0 + r), w[r] = c.w + (r0 + r) * 16;
    int64_t i = 0;
    for (; i + 16 <= c.Dh; i += 16) {
        __m256 a0[NR], a1[NR];
        for (int r = 0; r < NR; ++r) a0[r] = _mm256_loadu_ps(o[r] + i), a1[r] = _mm256_loadu_ps(o[r] + i + 8);
        for (int64_t j = j0; j < j1; ++j) {
            __m256 x0, x1;
            v.ld16(j, i, x0, x1);
            for (int r = 0; r < NR; ++r) {
                const __m256 wj = _mm256_set1_ps(w[r][j]);
                a0[r] = _mm256_fmadd_ps(wj, x0, a0[r]);
                a1[r] = _mm256_fmadd_ps(wj, x1, a1[r]);
            }
        }
        for (int r = 0; r < NR; ++r) _mm256_storeu_ps(o[r] + i, a0[r]), _mm256_storeu_ps(o[r] + i + 8, a1[r]);
    }
    for (; i < c.Dh; i += 8) {  // tail: 8 (or fewer) dimensions
        const int64_t n = c.Dh - i;
        const __m256i tm = tail_mask(n);
        __m256 a[NR];
        for (int r = 0; r < NR; ++r) a[r] = _mm256_maskload_ps(o[r] + i, tm);
        for (int64_t j = j0; j < j1; ++j) {
            const __m256 x = v.ld8(j, i, n);
            for (int r = 0; r < NR; ++r) a[r] = _mm256_fmadd_ps(_mm256_set1_ps(w[r][j]), x, a[r]);
        }
        for (int r = 0; r < NR; ++r) _mm256_maskstore_ps(o[r] + i, tm, a[r]);
    }
}

// One tile at p0 (union lanes [j0, j1)) for all R rows: scores and softmax updates, then o += w·V.
template <class K, class V>
void tile(const Ctx& c, int64_t R, int64_t p0, int64_t j0, int64_t j1, const K& k, const V& v, const __m256* ksv,
          const __m256* vsv, bool scaled) {
    attn_block_row_groups<4>(R, [&](auto n, int64_t r) { scores<decltype(n)::value>(c, r, p0, k, ksv, vsv, scaled); });
    attn_block_row_groups<4>(R, [&](auto n, int64_t r) { accumulate<decltype(n)::value>(c, r, j0, j1, v); });
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
        __m256 ksv[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, vsv[2] = {ksv[0], ksv[1]};
        if (scaled) {
            const Mask16 um = lanes(j0, j1);
            ksv[0] = _mm256_maskload_ps(ks + p0, _mm256_castps_si256(um.m0));
            ksv[1] = _mm256_maskload_ps(ks + p0 + 8, _mm256_castps_si256(um.m1));
            vsv[0] = _mm256_maskload_ps(vs + p0, _mm256_castps_si256(um.m0));
            vsv[1] = _mm256_maskload_ps(vs + p0 + 8, _mm256_castps_si256(um.m1));
        }
        tile(c, R, p0, j0, j1, TileK<E>{kt + p0 * Dh}, TileV<E>{v + p0 * v_stride, v_stride}, ksv, vsv, scaled);
    });
    attn_block_finish(c, R, scale_row);
}

// KIVI (kernels.h attention_block_kivi_fn): the sink's tiles, the quantized groups' halves, the ring's tiles.
template <class B>
void block_kivi(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* pb, const int64_t* pe,
                const KiviHead& kc, int64_t Dh, float* scratch, float* out, int64_t out_stride) {
    const int64_t R = n_tok * n_head;
    int64_t lo, hi;
    const Ctx c = attn_block_start(q, q_stride, n_tok, n_head, pb, pe, Dh, scratch, out, out_stride, &lo, &hi);
    const __m256 none[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    float* kt = scratch + R * kAttnBlockRowFloats;  // the dequantized tile (kernels.h: after the rows' scratch)
    float* vt = kt + 16 * Dh;
    kivi_walk_tiles<B>(
        kc, lo, hi, Dh,
        [&](int64_t p0, int64_t j0, int64_t j1, const uint16_t* kt, const uint16_t* vt) {
            tile(c, R, p0, j0, j1, TileK<F16>{kt}, TileV<F16>{vt, kc.vr_stride}, none, none, false);
        },
        [&](int64_t p0, int64_t j0, int64_t j1, int half, const B* kb, const B* vb, const KiviOutlier* ko) {
            if (half) dequant_tile<B, 1>(kb, vb, ko, kc.n_out, kc.vq_stride, j0, j1, Dh, kt, vt);
            else dequant_tile<B, 0>(kb, vb, ko, kc.n_out, kc.vq_stride, j0, j1, Dh, kt, vt);
            tile(c, R, p0, j0, j1, TileK<F32>{kt}, TileV<F32>{vt, Dh}, none, none, false);
        });
    attn_block_finish(c, R, scale_row);
}

}  // namespace

void attention_block_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                          const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim,
                          float* scratch, float* out, int64_t out_stride) {
    block<F32>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_f16_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                              const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim,
                              float* scratch, float* out, int64_t out_stride) {
    block<F16>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_q8_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                             const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                             int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    block<I8>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, ks, v, vs, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_kivi4_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                                int64_t out_stride) {
    block_kivi<block_kivi4>(q, q_stride, n_tok, n_head, p_begin, p_end, c, head_dim, scratch, out, out_stride);
}

void attention_block_kivi2_avx2(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                                int64_t out_stride) {
    block_kivi<block_kivi2>(q, q_stride, n_tok, n_head, p_begin, p_end, c, head_dim, scratch, out, out_stride);
}

}  // namespace edge
