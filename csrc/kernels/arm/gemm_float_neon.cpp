// gemm_float_neon.cpp — gemm_fn for the float-activation dtypes f32, f16, bf16 and mxfp8 with armv8.0
// NEON (+ FCVTL for f16, which armv8.0 has). The reference is gemm_{f32,f16,bf16,mxfp8}_ref.
//
// Y[c*ldy + r] = Σ_i w(r,i) · x(c,i); X column c at (const float*)X + c*x_stride; any n ≥ 1 (mxfp8:
// n % 32 == 0), any alignment. Weights are widened to f32 exactly, 8 at a time: f16 by FCVTL, bf16 by a
// shift, mxfp8 as E4M3 -> f16 bits -> f32 times 2^8 and the block's 2^(e-127) (both exact: every E4M3
// value times a power of two is representable unless it overflows, where the reference's bsum·scale
// overflows too; the NaN codes 0x7F/0xFF, which no writer emits, read as ±480 here, not NaN). Then f32
// FMAs into 4-lane accumulators of tiles of 8 rows × 1 column (GEMV) or 4 rows × up to 4 columns (GEMM,
// each weight vector used C times). The last n % 8 elements go through the same step from zero-padded
// copies (0·0 adds nothing).
// Accuracy: the lanes and the FMAs reorder the f32 sum; vs the reference the difference is
// ≤ (n + 32)·2^-24·Σ|w_i x_i|, inside kernels.h's 1e-5·Σ|w_i x_i| + 1e-30 for the sizes models use.
// Rows past the end of a tile reuse its last row (valid memory, results dropped). The schedule (row
// blocks, column groups, the last columns) is sched::gemm_float (gemm_schedule.h); this file is the
// decode and the tile.
#include <cstring>

#include "../gemm_schedule.h"
#include "arm.h"
#include "neon_util.h"

namespace edge {
namespace arm {
namespace {

// Elements i..i+7 (i % 8 == 0) of a row as two f32x4.
struct F32 {
    static constexpr int kElemBytes = 4;
    static void load(const uint8_t* row, int64_t i, float32x4_t& lo, float32x4_t& hi) {
        lo = vld1q_f32((const float*)(row + 4 * i));  // LD1: no alignment needed (Linux runs with SCTLR.A = 0)
        hi = vld1q_f32((const float*)(row + 4 * i + 16));
    }
};
struct F16 {
    static constexpr int kElemBytes = 2;
    static void load(const uint8_t* row, int64_t i, float32x4_t& lo, float32x4_t& hi) {
        const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(row + 2 * i));
        lo = vcvt_f32_f16(vget_low_f16(h));
        hi = vcvt_high_f32_f16(h);
    }
};
struct BF16 {
    static constexpr int kElemBytes = 2;
    static void load(const uint8_t* row, int64_t i, float32x4_t& lo, float32x4_t& hi) {
        const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(row + 2 * i));
        lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    }
};
struct MxFp8 {
    static constexpr int kElemBytes = 0;  // block format: never padded (n % 32 == 0)
    static void load(const uint8_t* row, int64_t i, float32x4_t& lo, float32x4_t& hi) {
        const uint8_t* blk = row + (i >> 5) * 33;
        const float16x8_t h = vreinterpretq_f16_u16(e4m3x8_f16bits(vld1_u8(blk + 1 + (i & 31))));
        const float s = e8m0_f32(blk[0]);
        lo = vmulq_n_f32(vmulq_n_f32(vcvt_f32_f16(vget_low_f16(h)), 256.0f), s);
        hi = vmulq_n_f32(vmulq_n_f32(vcvt_high_f32_f16(h), 256.0f), s);
    }
};

// The tile policy of sched::gemm_float (gemm_schedule.h): 8 rows × 1 column (decode) or 4 rows × up to
// 4 columns (each weight vector used C times).
template <class Wt>
struct Tile : sched::FloatShape<8, 4, 4, true, 256 << 10> {  // row blocks of 256 KiB of weights (L2)
    template <int R, int C>
    static void tile(const uint8_t* w, int64_t w_stride, int valid_rows, int64_t n, const float* x, int64_t x_stride,
                     float* Y, int64_t ldy) {
        const uint8_t* row[R];
        for (int r = 0; r < R; ++r) row[r] = w + (r < valid_rows ? r : valid_rows - 1) * w_stride;
        float32x4_t acc[R][C];
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) acc[r][c] = vdupq_n_f32(0.0f);
        auto step = [&](const uint8_t* const* rp, const float* const* xp, int64_t i, int64_t xi) {
            float32x4_t xl[C], xh[C];
            for (int c = 0; c < C; ++c) xl[c] = vld1q_f32(xp[c] + xi), xh[c] = vld1q_f32(xp[c] + xi + 4);
            for (int r = 0; r < R; ++r) {
                float32x4_t wl, wh;
                Wt::load(rp[r], i, wl, wh);
                for (int c = 0; c < C; ++c) acc[r][c] = vfmaq_f32(vfmaq_f32(acc[r][c], wl, xl[c]), wh, xh[c]);
            }
        };
        const float* xp[C];
        for (int c = 0; c < C; ++c) xp[c] = x + c * x_stride;
        const int64_t n8 = n & ~(int64_t)7;
        for (int64_t i = 0; i < n8; i += 8) step(row, xp, i, i);
        if (n8 < n) {  // tail (f32/f16/bf16 only): zero-padded copies of the last n - n8 elements
            const int64_t t = n - n8;
            uint8_t wt[R][32] = {};
            float xt[C][8] = {};
            const uint8_t* rp[R];
            const float* xtp[C];
            for (int r = 0; r < R; ++r) std::memcpy(wt[r], row[r] + n8 * Wt::kElemBytes, t * Wt::kElemBytes), rp[r] = wt[r];
            for (int c = 0; c < C; ++c) std::memcpy(xt[c], xp[c] + n8, t * 4), xtp[c] = xt[c];
            step(rp, xtp, 0, 0);
        }
        for (int c = 0; c < C; ++c)
            for (int r = 0; r < valid_rows; ++r) {
                const float y = vaddvq_f32(acc[r][c]);
                std::memcpy(Y + c * ldy + r, &y, 4);
            }
    }
};

}  // namespace
}  // namespace arm

void gemm_f32_neon(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    sched::gemm_float<arm::Tile<arm::F32>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_f16_neon(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                   float* Y, int64_t ldy) {
    sched::gemm_float<arm::Tile<arm::F16>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_bf16_neon(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    sched::gemm_float<arm::Tile<arm::BF16>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxfp8_neon(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                     float* Y, int64_t ldy) {
    sched::gemm_float<arm::Tile<arm::MxFp8>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
