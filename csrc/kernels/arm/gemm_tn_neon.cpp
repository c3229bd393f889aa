// gemm_tn_neon.cpp — gemm_tn_f32_fn (backward.h) with armv8.0 ASIMD:
//   C[i·ldc + j] += Σ_{t < T} A[t·lda + i] · B[t·ldb + j]        i < M, j < N
// Register tile of 4 rows of C × 16 columns (16 accumulators started from C; per t four loads of B,
// one load of 4 A values, 16 lane-FMAs), then one row at a time, 4 lanes, scalar. Order: t ascending
// per element with FMA (bound as gemm_tn_avx2.cpp). Pointers: naturally aligned floats, any strides.
#include <arm_neon.h>

#include "arm.h"

namespace edge {

void gemm_tn_f32_neon(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C,
                      int64_t ldc) {
    int64_t j = 0;
    for (; j + 16 <= N; j += 16) {
        int64_t i = 0;
        for (; i + 4 <= M; i += 4) {
            float32x4_t acc[4][4];
            for (int a = 0; a < 4; ++a)
                for (int k = 0; k < 4; ++k) acc[a][k] = vld1q_f32(C + (i + a) * ldc + j + 4 * k);
            for (int64_t t = 0; t < T; ++t) {
                const float* bt = B + t * ldb + j;
                const float32x4_t b0 = vld1q_f32(bt), b1 = vld1q_f32(bt + 4), b2 = vld1q_f32(bt + 8), b3 = vld1q_f32(bt + 12);
                const float32x4_t av = vld1q_f32(A + t * lda + i);
#define EDGE_ROW(a)                                            \
    acc[a][0] = vfmaq_laneq_f32(acc[a][0], b0, av, a);         \
    acc[a][1] = vfmaq_laneq_f32(acc[a][1], b1, av, a);         \
    acc[a][2] = vfmaq_laneq_f32(acc[a][2], b2, av, a);         \
    acc[a][3] = vfmaq_laneq_f32(acc[a][3], b3, av, a);
                EDGE_ROW(0) EDGE_ROW(1) EDGE_ROW(2) EDGE_ROW(3)
#undef EDGE_ROW
            }
            for (int a = 0; a < 4; ++a)
                for (int k = 0; k < 4; ++k) vst1q_f32(C + (i + a) * ldc + j + 4 * k, acc[a][k]);
        }
        for (; i < M; ++i) {
            float* c = C + i * ldc + j;
            float32x4_t a0 = vld1q_f32(c), a1 = vld1q_f32(c + 4), a2 = vld1q_f32(c + 8), a3 = vld1q_f32(c + 12);
            for (int64_t t = 0; t < T; ++t) {
                const float* bt = B + t * ldb + j;
                const float d = A[t * lda + i];
                a0 = vfmaq_n_f32(a0, vld1q_f32(bt), d), a1 = vfmaq_n_f32(a1, vld1q_f32(bt + 4), d);
                a2 = vfmaq_n_f32(a2, vld1q_f32(bt + 8), d), a3 = vfmaq_n_f32(a3, vld1q_f32(bt + 12), d);
            }
            vst1q_f32(c, a0), vst1q_f32(c + 4, a1), vst1q_f32(c + 8, a2), vst1q_f32(c + 12, a3);
        }
    }
    for (; j + 4 <= N; j += 4)
        for (int64_t i = 0; i < M; ++i) {
            float32x4_t a = vld1q_f32(C + i * ldc + j);
            for (int64_t t = 0; t < T; ++t) a = vfmaq_n_f32(a, vld1q_f32(B + t * ldb + j), A[t * lda + i]);
            vst1q_f32(C + i * ldc + j, a);
        }
    for (; j < N; ++j)
        for (int64_t i = 0; i < M; ++i) {
            float a = C[i * ldc + j];
            for (int64_t t = 0; t < T; ++t) a += A[t * lda + i] * B[t * ldb + j];
            C[i * ldc + j] = a;
        }
}

}  // namespace edge
