// gemm_q8x_arm.h — the tiled NEON driver shared by every integer-dot gemm_fn (weights in a block format
// × block_q8x activations) at the neon and dotprod levels. Include only from csrc/kernels/arm/*.cpp.
//
// Computes what gemm_fn (kernels.h) and csrc/kernels/ref/gemm_int_ref.cpp state, for rows × ncols, any
// n that is a multiple of the dtype's block (and of 32), any alignment of W, X, Y:
//   Y[c*ldy + r] = Σ_k (sw(r,k) · x_k.d) · isum(r,c,k)  [+ m(r,k) · x_k.s for int4a]
//   isum(r,c,k) = Σ_i wc(r, 32k+i) · x_k.q[i]           exact int32, k = activation block
// A tile is 4 weight rows × C ≤ 4 activation columns: each weight block is loaded and decoded once to
// signed int8 codes (format policy F) and used for C columns. Per activation block the dot policy D
// gives one int32x4 of EXACT block sums, lane r = row r (neon: SMULL/SMLAL2 into int16 pairs, |sum| ≤
// 2·128·127 < 2^15, then SADALP; dotprod: SDOT; then a pairwise-add tree over the 4 rows). Then
// acc[c] += (float)isum · (sw·x.d) (+ m·x.s), lane r = row r, as the reference does per block term: only
// the f32 order and the FMA's single rounding differ, so the bound is kernels.h's
// |Δ| ≤ 1e-5·Σ|block terms| + 1e-30.
// int4 codes are decoded as u = q in 0..15 and the "- 8" applied once per block and column through
// K·Σq (isum = Σ u·q - K·Σq, K = 8), precomputed with the column's x.d and x.s per k-chunk.
// Rows past the end of a 4-row group reuse the group's last row (valid memory, results dropped).
// The schedule (row blocks, column groups, k-chunks) is sched::gemm_q8x (gemm_schedule.h); this header
// is the activation layout and the tile (Q8xTile).
//
// A format policy F provides (all static):
//   kBlock, kBlockBytes          elements and bytes per weight block
//   kAsym, kKey                  int4a offset term; K of the "- K" above (0 when codes are signed)
//   load<s>(blk, w0, w1)         codes of elements 32s..32s+31 of the block at blk (s < kBlock/32), as
//                                signed int8: w0 = elements 0..15, w1 = 16..31 of that activation block
//   scales(blk[4], sw, m)        f32 scale (int4a: and offset) of the blocks at blk[0..3], lane r = blk[r],
//                                into sw[0], m[0]; with sub-block scales (kScales = kBlock/32: q4_k) the
//                                scale and offset of activation block s into sw[s], m[s]
//   kScales (optional)           1 (default) or kBlock/32, as above
//   kHalves (optional, q6_k)     each activation block's two 16-element halves carry their own integer
//                                factor: half_scales(blk[4], hs) writes hs[2s], hs[2s+1] (int32, lane r =
//                                row r) for s < kBlock/32, and the block sum is hs[2s]·Σ(elements 0..15)
//                                + hs[2s+1]·Σ(16..31), exact in int32 (the format bounds it)
// A dot policy D provides dot4(w0[4], w1[4], a0, a1) -> int32x4, lane r = Σ codes of row r × a, and
// halves4(w0, w1, a0, a1, &lo, &hi): the same sums of elements 0..15 (w0·a0) and 16..31 (w1·a1) apart.
#pragma once

#include <cstring>
#include <utility>

#include "../gemm_schedule.h"
#include "../q8x_traits.h"
#include "neon_util.h"

namespace edge {
namespace arm {
namespace {  // internal linkage on purpose: see neon_util.h

constexpr int kChunkAct = 64;                 // activation blocks per k-chunk: 2048 elements
constexpr int kTileCols = 4;                  // columns per tile
constexpr int64_t kRowBlockBytes = 256 << 10;  // weights per row block (L2-resident across column groups)

// One column's activations for one k-chunk.
struct ActChunk {
    const int8_t* q;            // codes of block 0 of the chunk; block k at q + 40·k
    float d[kChunkAct];         // x.d
    float s[kChunkAct];         // x.s (kAsym only)
    int32_t negk[kChunkAct];    // -K·Σq (kKey only)
};

// One column's activation blocks [0, nact) of a k-chunk (x: the chunk's first block) -> a.
template <class F>
inline void act_prep(const uint8_t* x, int nact, ActChunk* a) {
    a->q = (const int8_t*)(x + 8);
    for (int k = 0; k < nact; ++k) {
        const uint8_t* b = x + (int64_t)k * sizeof(block_q8x);
        a->d[k] = load_f32u(b);
        if (F::kAsym) a->s[k] = load_f32u(b + 4);
        if (F::kKey) {
            int16x8_t t = vpaddlq_s8(vld1q_s8((const int8_t*)b + 8));
            t = vpadalq_s8(t, vld1q_s8((const int8_t*)b + 24));
            a->negk[k] = -F::kKey * vaddlvq_s16(t);
        }
    }
}

// Lane r = Σ of s[r]'s four lanes (the 4-row pairwise-add tree of the dot policies).
inline int32x4_t rows_sum4(const int32x4_t* s) { return vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3])); }

template <int... Is, class Fn>
inline void unroll_seq(std::integer_sequence<int, Is...>, Fn&& f) {
    (f(std::integral_constant<int, Is>{}), ...);
}
// f(std::integral_constant<int, s>{}) for s = 0..N-1, unrolled (s is a constant in f's body).
template <int N, class Fn>
inline void unroll(Fn&& f) {
    unroll_seq(std::make_integer_sequence<int, N>{}, f);
}

// Writes lanes r < R of v to y[0..R) (accumulate: adds to what is there).
inline void store_rows(float* y, float32x4_t v, int R, bool accumulate) {
    float out[4];
    if (R == 4) {
        if (accumulate) {
            std::memcpy(out, y, 16);
            v = vaddq_f32(v, vld1q_f32(out));
        }
        vst1q_f32(out, v);
        std::memcpy(y, out, 16);
        return;
    }
    vst1q_f32(out, v);
    for (int r = 0; r < R; ++r) {
        float t = out[r];
        if (accumulate) t += load_f32u(y + r);
        std::memcpy(y + r, &t, 4);
    }
}

template <class F, class D, int C>
void q8x_tile(const uint8_t* w, int64_t w_stride, int R, int nact, const ActChunk* act, float* Y, int64_t ldy,
              bool accumulate) {
    constexpr int S = F::kBlock / 32;  // activation blocks per weight block
    constexpr int NS = q8x::scale_count<F>::value;
    constexpr bool kHalves = q8x::half_scaled<F>::value;
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    float32x4_t acc[C];
    for (int c = 0; c < C; ++c) acc[c] = vdupq_n_f32(0.0f);
    for (int j = 0; j < nact / S; ++j) {
        const uint8_t* blk[4];
        for (int r = 0; r < 4; ++r) blk[r] = row[r] + (int64_t)j * F::kBlockBytes;
        float32x4_t sw[NS], m[NS];
        for (int i = 0; i < NS; ++i) m[i] = vdupq_n_f32(0.0f);
        F::scales(blk, sw, m);
        int32x4_t hs[kHalves ? 2 * S : 1];
        if constexpr (kHalves) F::half_scales(blk, hs);
        unroll<S>([&](auto s) {
            constexpr int i = NS == 1 ? 0 : (int)s;
            const int k = j * S + s;
            int8x16_t w0[4], w1[4];
            for (int r = 0; r < 4; ++r) F::template load<s>(blk[r], w0[r], w1[r]);
            for (int c = 0; c < C; ++c) {
                const int8_t* a = act[c].q + (int64_t)k * sizeof(block_q8x);
                int32x4_t z;
                if constexpr (kHalves) {
                    int32x4_t lo, hi;
                    D::halves4(w0, w1, vld1q_s8(a), vld1q_s8(a + 16), &lo, &hi);
                    z = vmlaq_s32(vmulq_s32(lo, hs[2 * s]), hi, hs[2 * s + 1]);
                } else {
                    z = D::dot4(w0, w1, vld1q_s8(a), vld1q_s8(a + 16));
                }
                if (F::kKey) z = vaddq_s32(z, vdupq_n_s32(act[c].negk[k]));
                acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(z), vmulq_n_f32(sw[i], act[c].d[k]));
                if (F::kAsym) acc[c] = vfmaq_n_f32(acc[c], m[i], act[c].s[k]);
            }
        });
    }
    for (int c = 0; c < C; ++c) store_rows(Y + c * ldy, acc[c], R, accumulate);
}

// The tile policy of sched::gemm_q8x (gemm_schedule.h): 4 rows × up to 4 columns, k-chunks of 64 blocks.
template <class F, class D>
struct Q8xTile : sched::Q8xShape<F, 4, kTileCols, kChunkAct, kRowBlockBytes> {
    struct Act {
        ActChunk col[kTileCols];
    };
    static void act_prep(const block_q8x* x, int64_t x_stride, int C, int nact, Act* act) {
        for (int c = 0; c < C; ++c) arm::act_prep<F>((const uint8_t*)(x + c * x_stride), nact, &act->col[c]);
    }
    static void row_prep(Act&, const uint8_t*, int64_t, int, int) {}  // scales are read in the tile
    template <int C>
    static void tile(Act& act, const uint8_t* w, int64_t w_stride, int R, int nact, float* y, int64_t ldy,
                     bool accumulate) {
        q8x_tile<F, D, C>(w, w_stride, R, nact, act.col, y, ldy, accumulate);
    }
};

// The gemm_fn body for format F and dot D.
template <class F, class D>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
              int64_t ncols, float* Y, int64_t ldy) {
    sched::gemm_q8x<Q8xTile<F, D>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
}

}  // namespace
}  // namespace arm
}  // namespace edge
