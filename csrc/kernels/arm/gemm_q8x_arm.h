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
//
// A format policy F provides (all static):
//   kBlock, kBlockBytes          elements and bytes per weight block
//   kAsym, kKey                  int4a offset term; K of the "- K" above (0 when codes are signed)
//   load<s>(blk, w0, w1)         codes of elements 32s..32s+31 of the block at blk (s < kBlock/32), as
//                                signed int8: w0 = elements 0..15, w1 = 16..31 of that activation block
//   scales(blk[4], sw, m)        f32 scale (int4a: and offset) of the blocks at blk[0..3], lane r = blk[r]
// A dot policy D provides dot4(w0[4], w1[4], a0, a1) -> int32x4, lane r = Σ codes of row r × a.
#pragma once

#include <cstring>
#include <utility>

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
    const uint8_t* row[4];
    for (int r = 0; r < 4; ++r) row[r] = w + (r < R ? r : R - 1) * w_stride;
    float32x4_t acc[C];
    for (int c = 0; c < C; ++c) acc[c] = vdupq_n_f32(0.0f);
    for (int j = 0; j < nact / S; ++j) {
        const uint8_t* blk[4];
        for (int r = 0; r < 4; ++r) blk[r] = row[r] + (int64_t)j * F::kBlockBytes;
        float32x4_t sw, m = vdupq_n_f32(0.0f);
        F::scales(blk, &sw, &m);
        unroll<S>([&](auto s) {
            const int k = j * S + s;
            int8x16_t w0[4], w1[4];
            for (int r = 0; r < 4; ++r) F::template load<s>(blk[r], w0[r], w1[r]);
            for (int c = 0; c < C; ++c) {
                const int8_t* a = act[c].q + (int64_t)k * sizeof(block_q8x);
                int32x4_t z = D::dot4(w0, w1, vld1q_s8(a), vld1q_s8(a + 16));
                if (F::kKey) z = vaddq_s32(z, vdupq_n_s32(act[c].negk[k]));
                acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(z), vmulq_n_f32(sw, act[c].d[k]));
                if (F::kAsym) acc[c] = vfmaq_n_f32(acc[c], m, act[c].s[k]);
            }
        });
    }
    for (int c = 0; c < C; ++c) store_rows(Y + c * ldy, acc[c], R, accumulate);
}

template <class F, class D>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
              int64_t ncols, float* Y, int64_t ldy) {
    if (n <= 0) {  // an empty dot product is 0, as in the reference
        for (int64_t c = 0; c < ncols; ++c)
            for (int64_t r = 0; r < rows; ++r) std::memset(Y + c * ldy + r, 0, 4);
        return;
    }
    ActChunk act[kTileCols];
    const uint8_t* wb = (const uint8_t*)W;
    const uint8_t* xb = (const uint8_t*)X;
    const int64_t nact_total = n / 32;
    const int64_t row_bytes = n / F::kBlock * F::kBlockBytes;
    // Row blocks of at most kRowBlockBytes of weights stay in L2 while every column group passes over
    // them (one block when there is a single column group).
    int64_t rblk = ncols <= kTileCols ? rows : (kRowBlockBytes / row_bytes) & ~(int64_t)3;
    if (rblk < 4) rblk = 4;
    for (int64_t rb0 = 0; rb0 < rows; rb0 += rblk) {
        const int64_t rb1 = rows - rb0 < rblk ? rows : rb0 + rblk;
        for (int64_t c0 = 0; c0 < ncols; c0 += kTileCols) {
            const int C = (int)(ncols - c0 < kTileCols ? ncols - c0 : kTileCols);
            for (int64_t k0 = 0; k0 < nact_total; k0 += kChunkAct) {
                // kChunkAct is a multiple of 4, so a chunk never splits a 128-element weight block
                const int nact = (int)(nact_total - k0 < kChunkAct ? nact_total - k0 : kChunkAct);
                for (int c = 0; c < C; ++c)
                    act_prep<F>(xb + ((c0 + c) * x_stride + k0) * (int64_t)sizeof(block_q8x), nact, &act[c]);
                const int64_t wofs = k0 * 32 / F::kBlock * F::kBlockBytes;
                for (int64_t r0 = rb0; r0 < rb1; r0 += 4) {
                    const int R = (int)(rb1 - r0 < 4 ? rb1 - r0 : 4);
                    const uint8_t* w = wb + r0 * w_stride + wofs;
                    float* y = Y + c0 * ldy + r0;
                    switch (C) {
                        case 1: q8x_tile<F, D, 1>(w, w_stride, R, nact, act, y, ldy, k0 > 0); break;
                        case 2: q8x_tile<F, D, 2>(w, w_stride, R, nact, act, y, ldy, k0 > 0); break;
                        case 3: q8x_tile<F, D, 3>(w, w_stride, R, nact, act, y, ldy, k0 > 0); break;
                        default: q8x_tile<F, D, 4>(w, w_stride, R, nact, act, y, ldy, k0 > 0); break;
                    }
                }
            }
        }
    }
}

}  // namespace
}  // namespace arm
}  // namespace edge
