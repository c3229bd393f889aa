// gemm_tn_rvv.cpp — gemm_tn_f32_fn (backward.h) with RVV 1.0 (vector-length agnostic):
//   C[i·ldc + j] += Σ_{t < T} A[t·lda + i] · B[t·ldb + j]        i < M, j < N
// Per strip of vl = vsetvl_e32m4 columns, four rows of C in four accumulator groups started from C; per
// t one load of B feeds four vfmacc.vf. Order: t ascending per element with fused multiply-add (bound as
// gemm_tn_avx2.cpp). Naturally aligned floats (vle32 / vse32), any strides.
#include "rvv.h"
#include "rvv_util.h"

namespace edge {

void gemm_tn_f32_rvv(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C,
                     int64_t ldc) {
    for (int64_t j = 0; j < N;) {
        const size_t vl = __riscv_vsetvl_e32m4((size_t)(N - j));
        int64_t i = 0;
        for (; i + 4 <= M; i += 4) {
            float* c = C + i * ldc + j;
            vfloat32m4_t a0 = __riscv_vle32_v_f32m4(c, vl), a1 = __riscv_vle32_v_f32m4(c + ldc, vl);
            vfloat32m4_t a2 = __riscv_vle32_v_f32m4(c + 2 * ldc, vl), a3 = __riscv_vle32_v_f32m4(c + 3 * ldc, vl);
            for (int64_t t = 0; t < T; ++t) {
                const vfloat32m4_t b = __riscv_vle32_v_f32m4(B + t * ldb + j, vl);
                const float* at = A + t * lda + i;
                a0 = __riscv_vfmacc_vf_f32m4(a0, at[0], b, vl), a1 = __riscv_vfmacc_vf_f32m4(a1, at[1], b, vl);
                a2 = __riscv_vfmacc_vf_f32m4(a2, at[2], b, vl), a3 = __riscv_vfmacc_vf_f32m4(a3, at[3], b, vl);
            }
            __riscv_vse32_v_f32m4(c, a0, vl), __riscv_vse32_v_f32m4(c + ldc, a1, vl);
            __riscv_vse32_v_f32m4(c + 2 * ldc, a2, vl), __riscv_vse32_v_f32m4(c + 3 * ldc, a3, vl);
        }
        for (; i < M; ++i) {
            float* c = C + i * ldc + j;
            vfloat32m4_t a = __riscv_vle32_v_f32m4(c, vl);
            for (int64_t t = 0; t < T; ++t) a = __riscv_vfmacc_vf_f32m4(a, A[t * lda + i], __riscv_vle32_v_f32m4(B + t * ldb + j, vl), vl);
            __riscv_vse32_v_f32m4(c, a, vl);
        }
        j += (int64_t)vl;
    }
}

}  // namespace edge
