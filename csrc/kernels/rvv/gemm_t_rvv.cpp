// gemm_t_rvv.cpp — gemm_t_fn (backward.h) for every stored dtype with RVV 1.0 (vector-length agnostic):
//   dX[c·ldx + j] += Σ_r W[r][j] · dY[c·ldy + r]
// As gemm_t_avx2.cpp: W dequantized kRT rows × kJT columns at a time into a 16 KB stack tile with the
// rvv dequant kernels (bit-exact with the reference, any W alignment; f32 included, a copy), then the
// tile is applied to four dY columns at a time: per strip of vl = vsetvl_e32m4 columns (16 at VLEN 128,
// 32 at 256), four accumulator groups started from dX, each tile row loaded once for four vfmacc.vf.
// No scalar tail (vl covers it). Order: r ascending per element with fused multiply-add (bound as
// gemm_t_avx2.cpp). dY / dX: naturally aligned floats (vle32 / vse32).
#include "rvv.h"
#include "rvv_util.h"

namespace edge {
namespace rvv {
namespace {

// kRT rows × kJT columns of W per tile (16 KB); kCT columns of dY per pass over a tile strip, so one
// strip of dX (kCT × kJT floats), its dY values and the tile stay in L1 together.
constexpr int64_t kRT = 32, kJT = 128, kCT = 32;

void tile_apply(const float* T, int64_t rt, int64_t len, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx) {
    for (int64_t j = 0; j < len;) {
        const size_t vl = __riscv_vsetvl_e32m4((size_t)(len - j));
        int64_t c = 0;
        for (; c + 4 <= ncols; c += 4) {
            float* x = dX + c * ldx + j;
            const float* y = dY + c * ldy;
            vfloat32m4_t a0 = __riscv_vle32_v_f32m4(x, vl), a1 = __riscv_vle32_v_f32m4(x + ldx, vl);
            vfloat32m4_t a2 = __riscv_vle32_v_f32m4(x + 2 * ldx, vl), a3 = __riscv_vle32_v_f32m4(x + 3 * ldx, vl);
            for (int64_t r = 0; r < rt; ++r) {
                const vfloat32m4_t w = __riscv_vle32_v_f32m4(T + r * kJT + j, vl);
                a0 = __riscv_vfmacc_vf_f32m4(a0, y[r], w, vl);
                a1 = __riscv_vfmacc_vf_f32m4(a1, y[ldy + r], w, vl);
                a2 = __riscv_vfmacc_vf_f32m4(a2, y[2 * ldy + r], w, vl);
                a3 = __riscv_vfmacc_vf_f32m4(a3, y[3 * ldy + r], w, vl);
            }
            __riscv_vse32_v_f32m4(x, a0, vl), __riscv_vse32_v_f32m4(x + ldx, a1, vl);
            __riscv_vse32_v_f32m4(x + 2 * ldx, a2, vl), __riscv_vse32_v_f32m4(x + 3 * ldx, a3, vl);
        }
        for (; c < ncols; ++c) {
            float* x = dX + c * ldx + j;
            vfloat32m4_t a = __riscv_vle32_v_f32m4(x, vl);
            for (int64_t r = 0; r < rt; ++r) a = __riscv_vfmacc_vf_f32m4(a, dY[c * ldy + r], __riscv_vle32_v_f32m4(T + r * kJT + j, vl), vl);
            __riscv_vse32_v_f32m4(x, a, vl);
        }
        j += (int64_t)vl;
    }
}

void gemm_t_tiled(dequant_fn deq, int64_t block, int64_t block_bytes, const void* W, int64_t w_stride, int64_t rows, int64_t n,
                  const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx) {
    float tile[kRT * kJT];
    const char* w = (const char*)W;
    for (int64_t j0 = 0; j0 < n; j0 += kJT) {
        const int64_t len = n - j0 < kJT ? n - j0 : kJT, off = j0 / block * block_bytes;
        for (int64_t c0 = 0; c0 < ncols; c0 += kCT) {
            const int64_t nc = ncols - c0 < kCT ? ncols - c0 : kCT;
            for (int64_t r0 = 0; r0 < rows; r0 += kRT) {
                const int64_t rt = rows - r0 < kRT ? rows - r0 : kRT;
                for (int64_t r = 0; r < rt; ++r) deq(w + (r0 + r) * w_stride + off, tile + r * kJT, len);
                tile_apply(tile, rt, len, dY + c0 * ldy + r0, ldy, nc, dX + c0 * ldx + j0, ldx);
            }
        }
    }
}

}  // namespace
}  // namespace rvv

#define EDGE_GEMM_T_RVV(name, deq, block, bytes)                                                                  \
    void name(const void* W, int64_t w_stride, int64_t rows, int64_t n, const float* dY, int64_t ldy, int64_t ncols, \
              float* dX, int64_t ldx) {                                                                          \
        rvv::gemm_t_tiled(deq, block, bytes, W, w_stride, rows, n, dY, ldy, ncols, dX, ldx);                     \
    }

EDGE_GEMM_T_RVV(gemm_t_f32_rvv, dequant_f32_rvv, 1, 4)
EDGE_GEMM_T_RVV(gemm_t_f16_rvv, dequant_f16_rvv, 1, 2)
EDGE_GEMM_T_RVV(gemm_t_bf16_rvv, dequant_bf16_rvv, 1, 2)
EDGE_GEMM_T_RVV(gemm_t_q8_0_rvv, dequant_q8_0_rvv, 32, 34)
EDGE_GEMM_T_RVV(gemm_t_int4_32_rvv, dequant_int4_32_rvv, 32, 18)
EDGE_GEMM_T_RVV(gemm_t_int4_64_rvv, dequant_int4_64_rvv, 64, 34)
EDGE_GEMM_T_RVV(gemm_t_int4_128_rvv, dequant_int4_128_rvv, 128, 66)
EDGE_GEMM_T_RVV(gemm_t_int4a_32_rvv, dequant_int4a_32_rvv, 32, 20)
EDGE_GEMM_T_RVV(gemm_t_int4a_64_rvv, dequant_int4a_64_rvv, 64, 36)
EDGE_GEMM_T_RVV(gemm_t_int4a_128_rvv, dequant_int4a_128_rvv, 128, 68)
EDGE_GEMM_T_RVV(gemm_t_mxint8_rvv, dequant_mxint8_rvv, 32, 33)
EDGE_GEMM_T_RVV(gemm_t_mxfp8_rvv, dequant_mxfp8_rvv, 32, 33)
EDGE_GEMM_T_RVV(gemm_t_mxfp6_rvv, dequant_mxfp6_rvv, 32, 25)
EDGE_GEMM_T_RVV(gemm_t_mxfp4_rvv, dequant_mxfp4_rvv, 32, 17)
EDGE_GEMM_T_RVV(gemm_t_nl4_32_rvv, dequant_nl4_32_rvv, 32, 18)

#undef EDGE_GEMM_T_RVV

}  // namespace edge
