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
// in the reference's order and with its expression, so the result is the reference's up to FMA
// contraction (well inside kernels.h's |Δ| ≤ 1e-5·Σ|block terms| + 1e-30).
// vl is 32 at e8m2 / e16m4 for every VLEN >= 128 (V's minimum), so one block is one vector step.
// Prefill (ncols > kCols): rows are taken in blocks of about kRowBlockBytes of weights that stay in the
// L2 cache while every group of kCols columns passes over them.
#pragma once

#include "rvv_codes.h"

namespace edge {
namespace rvv {
namespace {

constexpr int kCols = 4;                         // activation columns per weight decode
constexpr int64_t kRowBlockBytes = 256 << 10;    // weights per row block (L2-resident)
constexpr int64_t kQ8xBytes = 40;                // sizeof(block_q8x)

// One weight row r against C columns: y[c * ldy] = dot(row, column c), X column c at x + c·xs bytes.
template <class F, int C>
inline void row_dot(const uint8_t* w, int64_t nwb, const uint8_t* x, int64_t xs, float* y, int64_t ldy) {
    float acc[C];
    for (int c = 0; c < C; ++c) acc[c] = 0.0f;
    const vint32m1_t zero = __riscv_vmv_v_x_i32m1(0, 1);
    for (int64_t b = 0; b < nwb; ++b, w += F::kBlockBytes) {
        const float sw = F::scale(w);
        const float m = F::offset(w);
        for (int k = 0; k < F::kBlock / 32; ++k, x += kQ8xBytes) {
            const vint8m2_t wc = F::codes(w, k);
            for (int c = 0; c < C; ++c) {
                const uint8_t* a = x + c * xs;
                const vint16m4_t p = __riscv_vwmul_vv_i16m4(wc, __riscv_vle8_v_i8m2((const int8_t*)(a + 8), kVl32), kVl32);
                const int32_t isum = __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m4_i32m1(p, zero, kVl32));
                if (F::kAsym) acc[c] += (sw * ld_f32s(a)) * (float)isum + m * ld_f32s(a + 4);
                else acc[c] += (sw * ld_f32s(a)) * (float)isum;
            }
        }
    }
    for (int c = 0; c < C; ++c) st_f32s(y + c * ldy, acc[c]);
}

template <class F>
void gemm_q8x(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, int64_t ncols,
              float* Y, int64_t ldy) {
    const uint8_t* wb = (const uint8_t*)W;
    const uint8_t* xb = (const uint8_t*)X;
    const int64_t nwb = n / F::kBlock, xs = x_stride * kQ8xBytes;
    const int64_t row_bytes = nwb * F::kBlockBytes;
    int64_t rblk = ncols <= kCols || row_bytes == 0 ? rows : kRowBlockBytes / row_bytes;
    if (rblk < 1) rblk = 1;
    for (int64_t r0 = 0; r0 < rows; r0 += rblk) {
        const int64_t r1 = rows - r0 < rblk ? rows : r0 + rblk;
        for (int64_t c0 = 0; c0 < ncols; c0 += kCols) {
            const uint8_t* x = xb + c0 * xs;
            for (int64_t r = r0; r < r1; ++r) {
                const uint8_t* w = wb + r * w_stride;
                float* y = Y + c0 * ldy + r;
                switch (ncols - c0 < kCols ? ncols - c0 : kCols) {
                    case 1: row_dot<F, 1>(w, nwb, x, xs, y, ldy); break;
                    case 2: row_dot<F, 2>(w, nwb, x, xs, y, ldy); break;
                    case 3: row_dot<F, 3>(w, nwb, x, xs, y, ldy); break;
                    default: row_dot<F, 4>(w, nwb, x, xs, y, ldy); break;
                }
            }
        }
    }
}

}  // namespace
}  // namespace rvv
}  // namespace edge
