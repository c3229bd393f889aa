// gemm_t_rvv.cpp — gemm_t_fn (backward.h) for every stored dtype with RVV 1.0 (vector-length agnostic):
//   dX[c·ldx + j] += Σ_r W[r][j] · dY[c·ldy + r]
// As gemm_t_avx2.cpp: W dequantized 32 rows × 128 columns at a time (gemm_t_tiled.h) into a 16 KB stack tile with the
// rvv dequant kernels (bit-exact with the reference, any W alignment; f32 included, a copy), then the
// tile is applied to four dY columns at a time: per strip of vl = vsetvl_e32m4 columns (16 at VLEN 128,
// 32 at 256), four accumulator groups started from dX, each tile row loaded once for four vfmacc.vf.
// No scalar tail (vl covers it). Order: r ascending per element with fused multiply-add (bound as
// gemm_t_avx2.cpp). dY / dX: naturally aligned floats (vle32 / vse32).
#include "rvv.h"
#include "rvv_util.h"
#include "../gemm_t_tiled.h"

namespace edge {
namespace rvv {
namespace {

void tile_apply(const char* Tb, int64_t ts, int64_t rt, int64_t len, const float* dY, int64_t ldy, int64_t ncols, float* dX, int64_t ldx) {
    for (int64_t j = 0; j < len;) {
        const size_t vl = __riscv_vsetvl_e32m4((size_t)(len - j));
        int64_t c = 0;
        for (; c + 4 <= ncols; c += 4) {
            float* x = dX + c * ldx + j;
            const float* y = dY + c * ldy;
            vfloat32m4_t a0 = __riscv_vle32_v_f32m4(x, vl), a1 = __riscv_vle32_v_f32m4(x + ldx, vl);
            vfloat32m4_t a2 = __riscv_vle32_v_f32m4(x + 2 * ldx, vl), a3 = __riscv_vle32_v_f32m4(x + 3 * ldx, vl);
            for (int64_t r = 0; r < rt; ++r) {
                const vfloat32m4_t w = __riscv_vle32_v_f32m4((const float*)(Tb + r * ts) + j, vl);
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
            for (int64_t r = 0; r < rt; ++r) a = __riscv_vfmacc_vf_f32m4(a, dY[c * ldy + r], __riscv_vle32_v_f32m4((const float*)(Tb + r * ts) + j, vl), vl);
            __riscv_vse32_v_f32m4(x, a, vl);
        }
        j += (int64_t)vl;
    }
}

}  // namespace
}  // namespace rvv

#define EDGE_GEMM_T_RVV(name, deq, block, bytes) EDGE_GEMM_T_TILED(name, rvv::tile_apply, deq, block, bytes)

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
