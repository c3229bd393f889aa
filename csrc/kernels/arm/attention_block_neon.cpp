// attention_block_neon.cpp — attention_block_fn / _f16_fn / _q8_fn / attention_block_kivi_fn (kernels.h) with
// armv8.0 NEON. The loops of attention_block_avx512 with a 16-position tile row as four float32x4: scores of up to
// 4 rows at once (each K row loaded and widened once — fcvtl for f16, sxtl + scvtf for int8, exact — then a
// by-element FMA per row), each row's online-softmax update (masked lanes -inf, the polynomial exp arm::exp4), then
// o += w·V for 4 rows at once over the tile's union lanes, 16 head dimensions per step (tails 4 and 1 at a time).
// o lives in out (kernels.h). Each row's arithmetic is the same whatever rows share its group. One tile loop for
// every form, over a K source (row i: the tile's 16 lanes of channel i) and a V source (dimensions of row j), as
// attention_block_avx2: KIVI's sink and ring tiles are f16 sources, a quantized group's half is dequantized once per
// call into f32 tiles in the scratch (d·c + m, kivi_neon.h; the K outlier channels' f16 values in place). Any head_dim >= 1 (KIVI: a multiple of 32), any alignment.
// Bound vs float64: |Δout| <= 1e-5 · max_p ||V_p||_inf (kernels.h; KIVI: on the dequantized cache).
// The ISA-neutral frame (the rows' m, l and o, their start and finish, the tile walk): attention_block_common.h.
#include <cmath>
#include <cstring>

#include "../../common.h"
#include "../attention_block_common.h"
#include "../kivi_parts.h"
#include "arm.h"
#include "kivi_neon.h"
#include "neon_util.h"

namespace edge {

namespace {

struct F32 {
    typedef float T;
    static float32x4_t load4(const float* p) { return vld1q_f32(p); }
    static float one(const float* p) { return *p; }
};
struct F16 {
    typedef uint16_t T;
    static float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
    static float one(const uint16_t* p) { return f16_to_f32(*p); }
};
struct I8 {
    typedef int8_t T;
    static float32x4_t load4(const int8_t* p) {
        int8_t b[8] = {p[0], p[1], p[2], p[3], 0, 0, 0, 0};
        return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vld1_s8(b)))));
    }
    static float one(const int8_t* p) { return (float)*p; }
};

// 16 elements at p as 4 vectors
template <class E>
inline void load16(const typename E::T* p, float32x4_t* o) {
    if constexpr (sizeof(typename E::T) == 1) {
        const int8x16_t c = vld1q_s8(p);
        const int16x8_t lo = vmovl_s8(vget_low_s8(c)), hi = vmovl_s8(vget_high_s8(c));
        o[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
        o[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
        o[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
        o[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
    } else {
        for (int j = 0; j < 4; ++j) o[j] = E::load4(p + 4 * j);
    }
}

struct Mask16 {
    uint32x4_t m[4];
    bool any;
};
inline Mask16 lanes(int64_t lo, int64_t hi) {  // lanes j with lo <= j < hi, of 16
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    Mask16 k;
    k.any = hi > lo;
    const uint32_t base[4] = {0, 1, 2, 3};
    const uint32x4_t b = vld1q_u32(base);
    for (int j = 0; j < 4; ++j) {
        const uint32x4_t idx = vaddq_u32(b, vdupq_n_u32(4 * j));
        k.m[j] = k.any ? vandq_u32(vcgeq_u32(idx, vdupq_n_u32((uint32_t)lo)), vcltq_u32(idx, vdupq_n_u32((uint32_t)hi)))
                       : vdupq_n_u32(0);
    }
    return k;
}

static_assert(kKTile == 16, "four vectors per tile row");
using Ctx = AttnBlockCtx;

// The K and V of one tile of 16 positions in the cache's own layout (the tiles of kernels.h; V rows of `stride`).
template <class E>
struct TileK {
    const typename E::T* tile;
    void row(int64_t i, float32x4_t* k) const { load16<E>(tile + i * 16, k); }
};
template <class E>
struct TileV {
    const typename E::T* v;  // the tile's first position
    int64_t stride;
    void ld16(int64_t j, int64_t i, float32x4_t* x) const { load16<E>(v + j * stride + i, x); }
    float32x4_t ld4(int64_t j, int64_t i) const { return E::load4(v + j * stride + i); }
    float one(int64_t j, int64_t i) const { return E::one(v + j * stride + i); }
};

// Half H (lanes 16H .. 16H+15) of a quantized KIVI group into f32 tiles: K kt[i·16 + l] (channel i's blocks kb[i],
// the n_out outlier channels' f16 values in place of their zero blocks), V vt[j·Dh + i] for rows j in [j0, j1)
// (position j's blocks at vb + j·vq_stride).
template <class B, int H>
void dequant_tile(const B* kb, const B* vb, const KiviOutlier* ko, int64_t n_out, int64_t vq_stride, int64_t j0, int64_t j1,
                  int64_t Dh, float* kt, float* vt) {
    float32x4_t x[8];
    for (int64_t i = 0; i < Dh; ++i) {
        const B& b = kb[i];
        const float32x4_t d = vdupq_n_f32(f16_to_f32(b.d)), m = vdupq_n_f32(f16_to_f32(b.m));
        arm::kivi_piece<B, 2 * H>(b, x);
        arm::kivi_piece<B, 2 * H + 1>(b, x + 2);
        for (int t = 0; t < 4; ++t) vst1q_f32(kt + i * 16 + 4 * t, vaddq_f32(vmulq_f32(d, x[t]), m));
    }
    for (int64_t o = 0; o < n_out; ++o) {
        load16<F16>(ko[o].v + 16 * H, x);
        for (int t = 0; t < 4; ++t) vst1q_f32(kt + ko[o].ch * 16 + 4 * t, x[t]);
    }
    for (int64_t j = j0; j < j1; ++j)
        for (int64_t cb = 0; cb < Dh / 32; ++cb) {
            const B& b = vb[j * vq_stride + cb];
            const float32x4_t d = vdupq_n_f32(f16_to_f32(b.d)), m = vdupq_n_f32(f16_to_f32(b.m));
            arm::kivi_piece<B, 0>(b, x), arm::kivi_piece<B, 1>(b, x + 2), arm::kivi_piece<B, 2>(b, x + 4), arm::kivi_piece<B, 3>(b, x + 6);
            for (int t = 0; t < 8; ++t) vst1q_f32(vt + j * Dh + cb * 32 + 4 * t, vaddq_f32(vmulq_f32(d, x[t]), m));
        }
}

inline void scale_row(float* o, int64_t Dh, float f) {
    int64_t i = 0;
    for (; i + 4 <= Dh; i += 4) vst1q_f32(o + i, vmulq_n_f32(vld1q_f32(o + i), f));
    for (; i < Dh; ++i) o[i] *= f;
}

template <int NR, class K>
void scores(const Ctx& c, int64_t r0, int64_t p0, const K& tile, const float32x4_t* ksv, const float32x4_t* vsv, bool scaled) {
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
    float32x4_t a[NR][4];
    for (int r = 0; r < NR; ++r) {
        qp[r] = c.qr(r0 + r);
        for (int j = 0; j < 4; ++j) a[r][j] = vdupq_n_f32(0.0f);
    }
    for (int64_t i = 0; i < c.Dh; ++i) {
        float32x4_t k[4];
        tile.row(i, k);
        for (int r = 0; r < NR; ++r)
            for (int j = 0; j < 4; ++j) a[r][j] = vfmaq_n_f32(a[r][j], k[j], qp[r][i]);
    }
    const float32x4_t ninf = vdupq_n_f32(-INFINITY);
    for (int r = 0; r < NR; ++r) {
        float* w = c.w + (r0 + r) * 16;
        if (!mk[r].any) {
            std::memset(w, 0, 64);
            continue;
        }
        float32x4_t s[4];
        float32x4_t mx = ninf;
        for (int j = 0; j < 4; ++j) {
            const float32x4_t x = scaled ? vmulq_f32(a[r][j], ksv[j]) : a[r][j];
            s[j] = vbslq_f32(mk[r].m[j], vmulq_n_f32(x, c.scale), ninf);
            mx = vmaxq_f32(mx, s[j]);
        }
        float& m = c.m[r0 + r];
        float& l = c.l[r0 + r];
        const float mt = vmaxvq_f32(mx);
        if (mt > m) {
            if (m != -INFINITY) {  // o and l are zero before the row's first tile
                const float f = vgetq_lane_f32(arm::exp4(vdupq_n_f32(m - mt)), 0);
                l *= f;
                scale_row(c.o(r0 + r), c.Dh, f);
            }
            m = mt;
        }
        const float32x4_t mv = vdupq_n_f32(m);
        float32x4_t sum = vdupq_n_f32(0.0f);
        for (int j = 0; j < 4; ++j) {
            const float32x4_t e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(arm::exp4(vsubq_f32(s[j], mv))), mk[r].m[j]));
            sum = vaddq_f32(sum, e);
            const float32x4_t x = scaled ? vmulq_f32(e, vsv[j]) : e;
            vst1q_f32(w + 4 * j, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(x), mk[r].m[j])));
        }
        l += vaddvq_f32(sum);
    }
}

template <int NR, class V>
void accumulate(const Ctx& c, int64_t r0, int64_t j0, int64_t j1, const V& v) {
    float* o[NR];
    const float* w[NR];
    for (int r = 0; r < NR; ++r) o[r] = c.o(r0 + r), w[r] = c.w + (r0 + r) * 16;
    int64_t i = 0;
    for (; i + 16 <= c.Dh; i += 16) {
        float32x4_t a[NR][4];
        for (int r = 0; r < NR; ++r)
            for (int t = 0; t < 4; ++t) a[r][t] = vld1q_f32(o[r] + i + 4 * t);
        for (int64_t j = j0; j < j1; ++j) {
            float32x4_t x[4];
            v.ld16(j, i, x);
            for (int r = 0; r < NR; ++r)
                for (int t = 0; t < 4; ++t) a[r][t] = vfmaq_n_f32(a[r][t], x[t], w[r][j]);
        }
        for (int r = 0; r < NR; ++r)
            for (int t = 0; t < 4; ++t) vst1q_f32(o[r] + i + 4 * t, a[r][t]);
    }
    for (; i + 4 <= c.Dh; i += 4) {
        float32x4_t a[NR];
        for (int r = 0; r < NR; ++r) a[r] = vld1q_f32(o[r] + i);
        for (int64_t j = j0; j < j1; ++j) {
            const float32x4_t x = v.ld4(j, i);
            for (int r = 0; r < NR; ++r) a[r] = vfmaq_n_f32(a[r], x, w[r][j]);
        }
        for (int r = 0; r < NR; ++r) vst1q_f32(o[r] + i, a[r]);
    }
    for (; i < c.Dh; ++i) {
        float a[NR];
        for (int r = 0; r < NR; ++r) a[r] = o[r][i];
        for (int64_t j = j0; j < j1; ++j) {
            const float x = v.one(j, i);
            for (int r = 0; r < NR; ++r) a[r] = std::fma(w[r][j], x, a[r]);
        }
        for (int r = 0; r < NR; ++r) o[r][i] = a[r];
    }
}

// One tile at p0 (union lanes [j0, j1)) for all R rows: scores and softmax updates, then o += w·V.
template <class K, class V>
void tile(const Ctx& c, int64_t R, int64_t p0, int64_t j0, int64_t j1, const K& k, const V& v, const float32x4_t* ksv,
          const float32x4_t* vsv, bool scaled) {
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
        float32x4_t ksv[4], vsv[4];
        for (int j = 0; j < 4; ++j) ksv[j] = vsv[j] = vdupq_n_f32(0.0f);
        if (scaled) {  // the union lanes only (others 0)
            float kb[16] = {}, vb[16] = {};
            std::memcpy(kb + j0, ks + p0 + j0, (size_t)(j1 - j0) * 4);
            std::memcpy(vb + j0, vs + p0 + j0, (size_t)(j1 - j0) * 4);
            for (int j = 0; j < 4; ++j) ksv[j] = vld1q_f32(kb + 4 * j), vsv[j] = vld1q_f32(vb + 4 * j);
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
    float32x4_t none[4];
    for (int j = 0; j < 4; ++j) none[j] = vdupq_n_f32(0.0f);
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

void attention_block_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                          const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim,
                          float* scratch, float* out, int64_t out_stride) {
    block<F32>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_f16_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                              const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim,
                              float* scratch, float* out, int64_t out_stride) {
    block<F16>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_q8_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                             const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                             int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    block<I8>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, ks, v, vs, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_kivi4_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                                int64_t out_stride) {
    block_kivi<block_kivi4>(q, q_stride, n_tok, n_head, p_begin, p_end, c, head_dim, scratch, out, out_stride);
}

void attention_block_kivi2_neon(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                                const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                                int64_t out_stride) {
    block_kivi<block_kivi2>(q, q_stride, n_tok, n_head, p_begin, p_end, c, head_dim, scratch, out, out_stride);
}

}  // namespace edge
