// gemm_t_neon.cpp — gemm_t_fn (backward.h) for every stored dtype with armv8.0 ASIMD (every aarch64 level):
//   dX[c·ldx + j] += Σ_r W[r][j] · dY[c·ldy + r]
// As gemm_t_avx2.cpp: W dequantized 32 rows × 128 columns at a time into a 16 KB stack tile with the
// neon dequant kernels (bit-exact with the reference; f32 weights read in place), then each pair of dY
// columns applies the tile with 32 dX values per column in 8 registers (16 accumulators; each loaded W
// vector feeds 2 FMAs). Tails: 4 lanes, then scalar. Order: r ascending per element with FMA (bound as
// gemm_t_avx2.cpp). Pointers: W any byte alignment; dY / dX naturally aligned floats.
#include <arm_neon.h>

#include "arm.h"
#include "neon_util.h"
#include "../gemm_t_tiled.h"

namespace edge {

namespace {

using namespace arm;


inline const float* row(const char* T, int64_t ts, int64_t r, int64_t j) { return (const float*)(T + r * ts) + j; }

void tile_apply(const char* T, int64_t ts, int64_t rt, int64_t len, const float* dY, int64_t ldy, int64_t ncols, float* dX,
                int64_t ldx) {
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        int64_t c = 0;
        for (; c + 2 <= ncols; c += 2) {
            float* x0 = dX + c * ldx + j;
            float* x1 = x0 + ldx;
            const float* y0 = dY + c * ldy;
            const float* y1 = y0 + ldy;
            float32x4_t a[8], b[8];
            for (int k = 0; k < 8; ++k) a[k] = vld1q_f32(x0 + 4 * k), b[k] = vld1q_f32(x1 + 4 * k);
            for (int64_t r = 0; r < rt; ++r) {
                const float* t = row(T, ts, r, j);
                const float d0 = y0[r], d1 = y1[r];
                for (int k = 0; k < 8; ++k) {
                    const float32x4_t w = vld1q_f32(t + 4 * k);
                    a[k] = vfmaq_n_f32(a[k], w, d0);
                    b[k] = vfmaq_n_f32(b[k], w, d1);
                }
            }
            for (int k = 0; k < 8; ++k) vst1q_f32(x0 + 4 * k, a[k]), vst1q_f32(x1 + 4 * k, b[k]);
        }
        if (c < ncols) {
            float* x0 = dX + c * ldx + j;
            const float* y0 = dY + c * ldy;
            float32x4_t a[8];
            for (int k = 0; k < 8; ++k) a[k] = vld1q_f32(x0 + 4 * k);
            for (int64_t r = 0; r < rt; ++r) {
                const float* t = row(T, ts, r, j);
                for (int k = 0; k < 8; ++k) a[k] = vfmaq_n_f32(a[k], vld1q_f32(t + 4 * k), y0[r]);
            }
            for (int k = 0; k < 8; ++k) vst1q_f32(x0 + 4 * k, a[k]);
        }
    }
    for (; j + 4 <= len; j += 4)
        for (int64_t c = 0; c < ncols; ++c) {
            float* x0 = dX + c * ldx + j;
            float32x4_t a = vld1q_f32(x0);
            for (int64_t r = 0; r < rt; ++r) a = vfmaq_n_f32(a, vld1q_f32(row(T, ts, r, j)), dY[c * ldy + r]);
            vst1q_f32(x0, a);
        }
    for (; j < len; ++j)
        for (int64_t c = 0; c < ncols; ++c) {
            float a = dX[c * ldx + j];
            for (int64_t r = 0; r < rt; ++r) a += load_f32u(T + r * ts + 4 * j) * dY[c * ldy + r];
            dX[c * ldx + j] = a;
        }
}

}  // namespace

#define EDGE_GEMM_T_NEON(name, deq, block, bytes) EDGE_GEMM_T_TILED(name, tile_apply, deq, block, bytes)

EDGE_GEMM_T_NEON(gemm_t_f32_neon, nullptr, 1, 4)
EDGE_GEMM_T_NEON(gemm_t_f16_neon, dequant_f16_neon, 1, 2)
EDGE_GEMM_T_NEON(gemm_t_bf16_neon, dequant_bf16_neon, 1, 2)
EDGE_GEMM_T_NEON(gemm_t_q8_0_neon, dequant_q8_0_neon, 32, 34)
EDGE_GEMM_T_NEON(gemm_t_int4_32_neon, dequant_int4_32_neon, 32, 18)
EDGE_GEMM_T_NEON(gemm_t_int4_64_neon, dequant_int4_64_neon, 64, 34)
EDGE_GEMM_T_NEON(gemm_t_int4_128_neon, dequant_int4_128_neon, 128, 66)
EDGE_GEMM_T_NEON(gemm_t_int4a_32_neon, dequant_int4a_32_neon, 32, 20)
EDGE_GEMM_T_NEON(gemm_t_int4a_64_neon, dequant_int4a_64_neon, 64, 36)
EDGE_GEMM_T_NEON(gemm_t_int4a_128_neon, dequant_int4a_128_neon, 128, 68)
EDGE_GEMM_T_NEON(gemm_t_mxint8_neon, dequant_mxint8_neon, 32, 33)
EDGE_GEMM_T_NEON(gemm_t_mxfp8_neon, dequant_mxfp8_neon, 32, 33)
EDGE_GEMM_T_NEON(gemm_t_mxfp6_neon, dequant_mxfp6_neon, 32, 25)
EDGE_GEMM_T_NEON(gemm_t_mxfp4_neon, dequant_mxfp4_neon, 32, 17)
EDGE_GEMM_T_NEON(gemm_t_nl4_32_neon, dequant_nl4_32_neon, 32, 18)

#undef EDGE_GEMM_T_NEON

}  // namespace edge
