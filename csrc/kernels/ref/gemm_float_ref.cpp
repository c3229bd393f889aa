// gemm_float_ref.cpp — float-activation weights (f32, f16, bf16, mxfp8) times f32 activations: the
// reference of gemm_fn (kernels.h) for every dtype whose int_dot is false (i32 has no gemm).
//
// Y[c * ldy + r] = dot(W row r, X column c), X column c at (const float*)X + c * x_stride.
//   f32/f16/bf16  sumf += w_i * x_i for i = 0..n-1 in order (w_i widened exactly), sumf from 0.0f
//   mxfp8         per 32-block k in order: bsum = Σ_i e4m3(q_i) * x_i (f32, in order, from 0.0f);
//                 sumf += 2^(e-127) * bsum
// Accumulation is f32 throughout (one rounding per multiply and per add), so vs the exact dot of
// the dequantized row with x the error is ≤ (n + 2)·2^-24·Σ|w_i x_i| — the bound tests/test_quant.py
// checks. SIMD variants may reorder (kernels.h states their bound against this reference).
// Pointers: W, X and Y may be unaligned.
#include "ref.h"

#include "../../common.h"

namespace edge {

namespace {

float dot_f32(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n; ++i) sumf += load_f32(w + 4 * i) * load_f32(x + 4 * i);
    return sumf;
}

float dot_f16(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n; ++i) sumf += f16_to_f32(load_u16(w + 2 * i)) * load_f32(x + 4 * i);
    return sumf;
}

float dot_bf16(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n; ++i) sumf += bf16_to_f32(load_u16(w + 2 * i)) * load_f32(x + 4 * i);
    return sumf;
}

float dot_mxfp8(const uint8_t* w, const uint8_t* x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t k = 0; k < n / 32; ++k, w += sizeof(block_mxfp8), x += 32 * sizeof(float)) {
        float bsum = 0.0f;
        for (int i = 0; i < 32; ++i) bsum += e4m3_to_f32(w[1 + i]) * load_f32(x + 4 * i);
        sumf += e8m0_to_f32(w[0]) * bsum;
    }
    return sumf;
}

}  // namespace

#define EDGE_GEMM_REF(name, dot)                                                                       \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride, \
              int64_t ncols, float* Y, int64_t ldy) {                                                  \
        gemm_ref_drive<sizeof(float), dot>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy);                             \
    }

EDGE_GEMM_REF(gemm_f32_ref, dot_f32)
EDGE_GEMM_REF(gemm_f16_ref, dot_f16)
EDGE_GEMM_REF(gemm_bf16_ref, dot_bf16)
EDGE_GEMM_REF(gemm_mxfp8_ref, dot_mxfp8)

#undef EDGE_GEMM_REF

}  // namespace edge
