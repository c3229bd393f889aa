// attention_block_rvv.cpp — attention_block_fn / _f16_fn / _q8_fn / attention_block_kivi_fn (kernels.h) with RVV
// 1.0, vector-length agnostic (no Zvfh: f16 widened with integer ops, rvv_util.h f16_f32m2, exact; int8 with vsext +
// vfcvt, exact). Per K tile: scores of up to 4 rows at once in e32m2 pieces of the 16 positions (each K row piece
// loaded once, a vfmacc per row), each row's online-softmax update (the range and the max in scalar code over the 16
// lanes, the polynomial exp of rvv_util.h over the pieces), then o += w·V for 4 rows at once, vl head dimensions at
// a time, over the tile's union lanes. o lives in out (kernels.h). Each row's arithmetic is the same whatever rows
// share its group. One tile loop for every form, over a K source (lanes off.. of channel i) and a V source
// (dimensions i.. of row j), as attention_block_avx2: KIVI's sink and ring tiles are f16 sources, a quantized
// group's half is dequantized once per call into f32 tiles in the scratch (d·c + m, 8 lanes a piece: one shift per
// piece of 8, every VLEN; the K outlier channels' f16 values in place). Any head_dim >= 1 (KIVI: a multiple of 32),
// any alignment (vle16 / vle32 when the pointers are aligned, else the byte path). Bound vs float64: |Δout| <= 1e-5 · max_p ||V_p||_inf (kernels.h; KIVI: the dequantized cache).
// The ISA-neutral frame (the rows' m, l and o, their start and finish, the tile walk): attention_block_common.h.
#include <math.h>

#include "../attention_block_common.h"
#include "../kivi_parts.h"
#include "rvv.h"
#include "kivi_rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

struct F32 {
    typedef float T;
    template <bool A>
    static vfloat32m2_t ld(const float* p, size_t vl) { return ld_f32m2<A>(p, vl); }
};
struct F16 {
    typedef uint16_t T;
    template <bool A>
    static vfloat32m2_t ld(const uint16_t* p, size_t vl) { return f16_f32m2(ld_u16_u32m2<A>(p, vl), vl); }
};
struct I8 {
    typedef int8_t T;
    template <bool A>
    static vfloat32m2_t ld(const int8_t* p, size_t vl) {
        return __riscv_vfcvt_f_x_v_f32m2(__riscv_vsext_vf4_i32m2(__riscv_vle8_v_i8mf2(p, vl), vl), vl);
    }
};

using Ctx = AttnBlockCtx;

// The K and V of one tile of 16 positions in the cache's own layout (the tiles of kernels.h; V rows of `stride`).
template <bool A, class E>
struct TileK {
    const typename E::T* tile;
    vfloat32m2_t ld(int64_t i, int64_t off, size_t vl) const { return E::template ld<A>(tile + i * 16 + off, vl); }
};
template <bool A, class E>
struct TileV {
    const typename E::T* v;  // the tile's first position
    int64_t stride;
    vfloat32m2_t ld(int64_t j, int64_t i, size_t vl) const { return E::template ld<A>(v + j * stride + i, vl); }
};

// lanes 8k + t, t < vl <= 8, of block b dequantized: d · c + m
template <class B>
inline vfloat32m2_t kivi_lanes(const B& b, int k, size_t vl) {
    const vfloat32m2_t x = __riscv_vfmul_vf_f32m2(kivi_codes(b, k, vl), f16_f32s(ld_u16s(&b.d)), vl);
    return __riscv_vfadd_vf_f32m2(x, f16_f32s(ld_u16s(&b.m)), vl);
}
// Half H (lanes 16H .. 16H+15) of a quantized KIVI group into f32 tiles: K kt[i·16 + l] (channel i's blocks kb[i],
// the n_out outlier channels' f16 values in place of their zero blocks; 2-byte aligned by their struct), V
// vt[j·Dh + i] for rows j in [j0, j1) (position j's blocks at vb + j·vq_stride); 8 lanes a piece.
template <bool A, class B>
void dequant_tile(const B* kb, const B* vb, const KiviOutlier* ko, int64_t n_out, int64_t vq_stride, int h, int64_t j0,
                  int64_t j1, int64_t Dh, float* kt, float* vt) {
    for (int64_t i = 0; i < Dh; ++i)
        for (int t = 0; t < 2; ++t) st_f32m2<A>(kt + i * 16 + 8 * t, kivi_lanes(kb[i], 2 * h + t, 8), 8);
    for (int64_t o = 0; o < n_out; ++o)
        for (int t = 0; t < 2; ++t)
            st_f32m2<A>(kt + ko[o].ch * 16 + 8 * t, f16_f32m2(ld_u16_u32m2<true>(ko[o].v + 16 * h + 8 * t, 8), 8), 8);
    for (int64_t j = j0; j < j1; ++j)
        for (int64_t cb = 0; cb < Dh / 32; ++cb)
            for (int t = 0; t < 4; ++t) st_f32m2<A>(vt + j * Dh + cb * 32 + 8 * t, kivi_lanes(vb[j * vq_stride + cb], t, 8), 8);
}

template <bool A>
inline void scale_row(float* o, int64_t Dh, float f) {
    for (int64_t i = 0; i < Dh;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(Dh - i));
        st_f32m2<A>(o + i, __riscv_vfmul_vf_f32m2(ld_f32m2<A>(o + i, vl), f, vl), vl);
        i += (int64_t)vl;
    }
}

template <int NR, bool A, class K>  // NR: 1 or 4
void scores(const Ctx& c, int64_t r0, int64_t p0, const K& tile, const float* ks, const float* vs) {
    int64_t lo[NR], hi[NR];
    bool any = false;
    for (int r = 0; r < NR; ++r) {
        const int64_t t = (r0 + r) / c.n_head;
        lo[r] = c.pb[t] - p0 > 0 ? c.pb[t] - p0 : 0;
        hi[r] = c.pe[t] - p0 < 16 ? c.pe[t] - p0 : 16;
        any = any || hi[r] > lo[r];
    }
    float* w[NR];
    const float* qp[NR];
    for (int r = 0; r < NR; ++r) w[r] = c.w + (r0 + r) * 16, qp[r] = c.qr(r0 + r);
    if (!any) {
        for (int r = 0; r < NR; ++r)
            for (int j = 0; j < 16; ++j) w[r][j] = 0.f;
        return;
    }
    for (int64_t off = 0; off < 16;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(16 - off));
        // RVV register types are sizeless (no arrays): NR is 1 or 4, one named accumulator per row
        vfloat32m2_t a0 = __riscv_vfmv_v_f_f32m2(0.0f, vl), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < c.Dh; ++i) {
            const vfloat32m2_t k = tile.ld(i, off, vl);
            a0 = __riscv_vfmacc_vf_f32m2(a0, qp[0][i], k, vl);
            if constexpr (NR == 4) {
                a1 = __riscv_vfmacc_vf_f32m2(a1, qp[1][i], k, vl);
                a2 = __riscv_vfmacc_vf_f32m2(a2, qp[2][i], k, vl);
                a3 = __riscv_vfmacc_vf_f32m2(a3, qp[3][i], k, vl);
            }
        }
        st_f32m2<A>(w[0] + off, a0, vl);
        if constexpr (NR == 4) st_f32m2<A>(w[1] + off, a1, vl), st_f32m2<A>(w[2] + off, a2, vl), st_f32m2<A>(w[3] + off, a3, vl);
        off += (int64_t)vl;
    }
    for (int r = 0; r < NR; ++r) {
        float* s = w[r];
        if (hi[r] <= lo[r]) {
            for (int j = 0; j < 16; ++j) s[j] = 0.f;
            continue;
        }
        float mt = c.m[r0 + r];
        for (int64_t j = 0; j < 16; ++j) {
            s[j] = j >= lo[r] && j < hi[r] ? (ks ? s[j] * ks[p0 + j] : s[j]) * c.scale : -INFINITY;
            mt = s[j] > mt ? s[j] : mt;
        }
        float& m = c.m[r0 + r];
        float& l = c.l[r0 + r];
        if (mt > m) {
            if (m != -INFINITY) {  // o and l are zero before the row's first tile
                const float f = __riscv_vfmv_f_s_f32m2_f32(exp_f32m2(__riscv_vfmv_v_f_f32m2(m - mt, 1), 1));
                l *= f;
                scale_row<A>(c.o(r0 + r), c.Dh, f);
            }
            m = mt;
        }
        for (int64_t off = 0; off < 16;) {
            const size_t vl = __riscv_vsetvl_e32m2((size_t)(16 - off));
            st_f32m2<A>(s + off, exp_f32m2(__riscv_vfsub_vf_f32m2(ld_f32m2<A>(s + off, vl), m, vl), vl), vl);
            off += (int64_t)vl;
        }
        float sum = 0.f;
        for (int64_t j = 0; j < 16; ++j) {
            const bool in = j >= lo[r] && j < hi[r];
            sum += in ? s[j] : 0.f;
            s[j] = in ? (vs ? s[j] * vs[p0 + j] : s[j]) : 0.f;
        }
        l += sum;
    }
}

template <int NR, bool A, class V>
void accumulate(const Ctx& c, int64_t r0, int64_t j0, int64_t j1, const V& v) {
    float* o[NR];
    const float* w[NR];
    for (int r = 0; r < NR; ++r) o[r] = c.o(r0 + r), w[r] = c.w + (r0 + r) * 16;
    for (int64_t i = 0; i < c.Dh;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(c.Dh - i));
        vfloat32m2_t a0 = ld_f32m2<A>(o[0] + i, vl), a1 = a0, a2 = a0, a3 = a0;  // NR is 1 or 4 (see scores)
        if constexpr (NR == 4) a1 = ld_f32m2<A>(o[1] + i, vl), a2 = ld_f32m2<A>(o[2] + i, vl), a3 = ld_f32m2<A>(o[3] + i, vl);
        for (int64_t j = j0; j < j1; ++j) {
            const vfloat32m2_t x = v.ld(j, i, vl);
            a0 = __riscv_vfmacc_vf_f32m2(a0, w[0][j], x, vl);
            if constexpr (NR == 4) {
                a1 = __riscv_vfmacc_vf_f32m2(a1, w[1][j], x, vl);
                a2 = __riscv_vfmacc_vf_f32m2(a2, w[2][j], x, vl);
                a3 = __riscv_vfmacc_vf_f32m2(a3, w[3][j], x, vl);
            }
        }
        st_f32m2<A>(o[0] + i, a0, vl);
        if constexpr (NR == 4) st_f32m2<A>(o[1] + i, a1, vl), st_f32m2<A>(o[2] + i, a2, vl), st_f32m2<A>(o[3] + i, a3, vl);
        i += (int64_t)vl;
    }
}

// One tile at p0 (union lanes [j0, j1)) for all R rows: scores and softmax updates, then o += w·V.
template <bool A, class K, class V>
void tile(const Ctx& c, int64_t R, int64_t p0, int64_t j0, int64_t j1, const K& k, const V& v, const float* ks, const float* vs) {
    attn_block_row_groups<4>(R, [&](auto n, int64_t r) { scores<decltype(n)::value, A>(c, r, p0, k, ks, vs); });
    attn_block_row_groups<4>(R, [&](auto n, int64_t r) { accumulate<decltype(n)::value, A>(c, r, j0, j1, v); });
}

template <bool A, class E>
void block(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* pb, const int64_t* pe,
           const typename E::T* kt, const float* ks, const typename E::T* v, const float* vs, int64_t v_stride, int64_t Dh,
           float* scratch, float* out, int64_t out_stride) {
    const int64_t R = n_tok * n_head;
    int64_t lo, hi;
    const Ctx c = attn_block_start(q, q_stride, n_tok, n_head, pb, pe, Dh, scratch, out, out_stride, &lo, &hi);
    attn_block_tiles(lo, hi, [&](int64_t p0, int64_t j0, int64_t j1) {
        tile<A>(c, R, p0, j0, j1, TileK<A, E>{kt + p0 * Dh}, TileV<A, E>{v + p0 * v_stride, v_stride}, ks, vs);
    });
    attn_block_finish(c, R, scale_row<A>);
}

// KIVI (kernels.h attention_block_kivi_fn): the sink's tiles, the quantized groups' halves, the ring's tiles.
template <bool A, class B>
void block_kivi(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* pb, const int64_t* pe,
                const KiviHead& kc, int64_t Dh, float* scratch, float* out, int64_t out_stride) {
    const int64_t R = n_tok * n_head;
    int64_t lo, hi;
    const Ctx c = attn_block_start(q, q_stride, n_tok, n_head, pb, pe, Dh, scratch, out, out_stride, &lo, &hi);
    float* kt = scratch + R * kAttnBlockRowFloats;  // the dequantized tile (kernels.h: after the rows' scratch)
    float* vt = kt + 16 * Dh;
    kivi_walk_tiles<B>(
        kc, lo, hi, Dh,
        [&](int64_t p0, int64_t j0, int64_t j1, const uint16_t* kt, const uint16_t* vt) {
            tile<A>(c, R, p0, j0, j1, TileK<A, F16>{kt}, TileV<A, F16>{vt, kc.vr_stride}, nullptr, nullptr);
        },
        [&](int64_t p0, int64_t j0, int64_t j1, int half, const B* kb, const B* vb, const KiviOutlier* ko) {
            dequant_tile<A>(kb, vb, ko, kc.n_out, kc.vq_stride, half, j0, j1, Dh, kt, vt);
            tile<A>(c, R, p0, j0, j1, TileK<A, F32>{kt}, TileV<A, F32>{vt, Dh}, nullptr, nullptr);
        });
    attn_block_finish(c, R, scale_row<A>);
}

template <class B>
void block_kivi_entry(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* pb, const int64_t* pe,
                      const KiviHead& kc, int64_t Dh, float* scratch, float* out, int64_t out_stride) {
    const bool a = aligned(kc.kr, 2) && aligned(kc.vr, 2) && aligned(kc.ks, 2) && aligned(kc.vs, 2) && aligned(scratch, 4) &&
                   aligned(out, 4);
    if (a) block_kivi<true, B>(q, q_stride, n_tok, n_head, pb, pe, kc, Dh, scratch, out, out_stride);
    else block_kivi<false, B>(q, q_stride, n_tok, n_head, pb, pe, kc, Dh, scratch, out, out_stride);
}

// Every pointer and stride the vector loads / stores use is aligned to its element (else the byte path).
inline bool all_aligned(const void* kt, const void* v, size_t esize, const float* scratch, const float* out) {
    return aligned(kt, esize) && aligned(v, esize) && aligned(scratch, 4) && aligned(out, 4);
}

}  // namespace
}  // namespace rvv

void attention_block_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                         const int64_t* p_end, const float* kt, const float* v, int64_t v_stride, int64_t head_dim,
                         float* scratch, float* out, int64_t out_stride) {
    if (rvv::all_aligned(kt, v, 4, scratch, out))
        rvv::block<true, rvv::F32>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
    else
        rvv::block<false, rvv::F32>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_f16_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                             const int64_t* p_end, const uint16_t* kt, const uint16_t* v, int64_t v_stride, int64_t head_dim,
                             float* scratch, float* out, int64_t out_stride) {
    if (rvv::all_aligned(kt, v, 2, scratch, out))
        rvv::block<true, rvv::F16>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
    else
        rvv::block<false, rvv::F16>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, nullptr, v, nullptr, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_q8_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                            const int64_t* p_end, const int8_t* kt, const float* ks, const int8_t* v, const float* vs,
                            int64_t v_stride, int64_t head_dim, float* scratch, float* out, int64_t out_stride) {
    if (rvv::all_aligned(kt, v, 1, scratch, out))
        rvv::block<true, rvv::I8>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, ks, v, vs, v_stride, head_dim, scratch, out, out_stride);
    else
        rvv::block<false, rvv::I8>(q, q_stride, n_tok, n_head, p_begin, p_end, kt, ks, v, vs, v_stride, head_dim, scratch, out, out_stride);
}

void attention_block_kivi4_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                               const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                               int64_t out_stride) {
    rvv::block_kivi_entry<block_kivi4>(q, q_stride, n_tok, n_head, p_begin, p_end, c, head_dim, scratch, out, out_stride);
}

void attention_block_kivi2_rvv(const float* q, int64_t q_stride, int64_t n_tok, int64_t n_head, const int64_t* p_begin,
                               const int64_t* p_end, const KiviHead& c, int64_t head_dim, float* scratch, float* out,
                               int64_t out_stride) {
    rvv::block_kivi_entry<block_kivi2>(q, q_stride, n_tok, n_head, p_begin, p_end, c, head_dim, scratch, out, out_stride);
}

}  // namespace edge
