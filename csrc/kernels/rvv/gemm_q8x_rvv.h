// gemm_q8x_rvv.h — the RVV driver shared by every integer-dot gemm_fn (weights in a block format ×
// block_q8x activations). Include only from *_rvv.cpp files.
//
// Computes what gemm_fn (kernels.h) and csrc/kernels/ref/gemm_int_ref.cpp state, for rows × ncols, any n
// that is a multiple of the dtype's block (and of 32), any alignment of W, X, Y:
//   Y[c*ldy + r] = Σ_k (sw(r,k) · x_k.d) · isum(r,c,k)  [+ m(r,k) · x_k.s for int4a]
//   isum(r,c,k)  = Σ_{i<32} wc(r, 32k+i) · x_k.q[i]       exact int32, k = activation block
// Per weight row and activation block the format's 32 codes are decoded once (rvv_codes.h) and used for
// up to kCols activation columns: vwmul.vv (int8 × int8 -> int16, exact: |wc| <= 128, |q| <= 127) and
// vwredsum.vs (int16 -> int32, exact) give isum; the f32 block term is then added in scalar registers
// in the reference's order and with its expression (the running sum continues through Y across k-chunks),
// so the result is the reference's up to FMA contraction (well inside kernels.h's
// |Δ| ≤ 1e-5·Σ|block terms| + 1e-30). vl is 32 at e8m2 / e16m4 for every VLEN >= 128 (V's minimum),
// so one block is one vector step. q4_k has a scale and offset per activation block (kScales), q6_k an
// integer factor per 16-element half (kHalves: two reductions, the masked one over lanes 16..31).
// The scalar side is kept small: per k-chunk of 64 activation blocks, x.d / x.s of each column are
// unpacked once for all rows, and each row's block scales (and int4a offsets) are decoded 8..64 at a
// time by strided vector loads (block_scales), not one f16/E8M0 conversion per block.
// Prefill (ncols > kCols): rows are taken in blocks of about kRowBlockBytes of weights that stay in the
// L2 cache while every group of kCols columns passes over them. That schedule (row blocks, column
// groups, k-chunks) is sched::gemm_q8x (gemm_schedule.h); this header is the tile.
#pragma once

#include "../gemm_schedule.h"
#include "rvv_codes.h"

namespace edge {
namespace rvv {
namespace {

constexpr int kCols = 4;                       // activation columns per weight decode
constexpr int kChunk = 64;                     // activation blocks per k-chunk (2048 elements)
constexpr int64_t kRowBlockBytes = 256 << 10;  // weights per row block (L2-resident)
constexpr int64_t kQ8xBytes = 40;              // sizeof(block_q8x)

// x.d and x.s of one k-chunk of an activation column, unpacked once and reused by every row.
struct ColChunk {
    float d[kChunk], s[kChunk];
};

// One weight row against C columns over one k-chunk of nact activation blocks (a multiple of
// F::kBlock / 32): y[c * ldy] = (accumulate ? y[c * ldy] : 0) + the chunk's block terms, in order —
// continuing the reference's running sum across chunks. X column c's blocks at x + c·xs bytes.
template <class F, int C>
inline void row_dot(const uint8_t* w, int nact, const uint8_t* x, int64_t xs, const ColChunk* cc, float* y,
                    int64_t ldy, bool accumulate) {
    constexpr int kSub = F::kBlock / 32;
    constexpr bool kPerSub = q8x::scale_count<F>::value > 1;  // a scale per activation block (q4_k)
    constexpr bool kHalves = q8x::half_scaled<F>::value;
    const int nwb = nact / kSub;
    float sw[kChunk], m[F::kAsym ? kChunk : 1];
    if constexpr (kPerSub) F::sub_scales(w, nwb, sw, m);
    else block_scales<F>(w, nwb, sw, m);
    float acc[C];
    for (int c = 0; c < C; ++c) acc[c] = accumulate ? ld_f32s(y + c * ldy) : 0.0f;
    const vint32m1_t zero = __riscv_vmv_v_x_i32m1(0, 1);
    const vbool4_t upper = __riscv_vmsgeu_vx_u16m4_b4(__riscv_vid_v_u16m4(kVl32), 16, kVl32);  // lanes 16..31
    for (int b = 0, ka = 0; b < nwb; ++b, w += F::kBlockBytes) {
        for (int k = 0; k < kSub; ++k, ++ka, x += kQ8xBytes) {
            const vint8m2_t wc = F::codes(w, k);
            const int si = kPerSub ? ka : b;
            int32_t sa = 0, sb = 0;
            if constexpr (kHalves) F::half_scales(w, k, &sa, &sb);
            for (int c = 0; c < C; ++c) {
                const int8_t* q = (const int8_t*)(x + c * xs + 8);
                const vint16m4_t p = __riscv_vwmul_vv_i16m4(wc, __riscv_vle8_v_i8m2(q, kVl32), kVl32);
                int32_t isum;
                if constexpr (kHalves) {  // the reference's sc_a·Σ(0..15) + sc_b·Σ(16..31)
                    const int32_t lo = __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m4_i32m1(p, zero, 16));
                    const int32_t hi = __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m4_i32m1_m(upper, p, zero, kVl32));
                    isum = sa * lo + sb * hi;
                } else {
                    isum = __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m4_i32m1(p, zero, kVl32));
                }
                if (F::kAsym) acc[c] += (sw[si] * cc[c].d[ka]) * (float)isum + m[si] * cc[c].s[ka];
                else acc[c] += (sw[si] * cc[c].d[ka]) * (float)isum;
            }
        }
    }
    for (int c = 0; c < C; ++c) st_f32s(y + c * ldy, acc[c]);
}

// The tile policy of sched::gemm_q8x (gemm_schedule.h): 1 row × up to kCols columns, k-chunks of kChunk
// blocks; the columns' codes are read in place, x.d / x.s unpacked per chunk.
template <class F>
struct Tile : sched::Q8xShape<F, 1, kCols, kChunk, kRowBlockBytes> {
    struct Act {
        const uint8_t* x;  // column 0's first block of the chunk; column c at x + c·xs
        int64_t xs;        // bytes between columns
        ColChunk cc[rvv::kCols];
    };
    static void act_prep(const block_q8x* xq, int64_t x_stride, int C, int nact, Act* act) {
        const uint8_t* x = (const uint8_t*)xq;
        const int64_t xs = x_stride * kQ8xBytes;
        act->x = x;
        act->xs = xs;
        for (int c = 0; c < C; ++c)
            for (int k = 0; k < nact; ++k) {
                act->cc[c].d[k] = ld_f32s(x + c * xs + k * kQ8xBytes);
                act->cc[c].s[k] = ld_f32s(x + c * xs + k * kQ8xBytes + 4);
            }
    }
    static void row_prep(Act&, const uint8_t*, int64_t, int, int) {}  // scales are read in the tile
    template <int C>
    static void tile(Act& act, const uint8_t* w, int64_t w_stride, int R, int nact, float* y, int64_t ldy,
                     bool accumulate) {
        row_dot<F, C>(w, nact, act.x, act.xs, act.cc, y, ldy, accumulate);
    }
};

// The gemm_fn body for format F.
template <class F>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, int64_t ncols,
              float* Y, int64_t ldy) {
    sched::gemm_q8x<Tile<F>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);
}

}  // namespace
}  // namespace rvv
}  // namespace edge
