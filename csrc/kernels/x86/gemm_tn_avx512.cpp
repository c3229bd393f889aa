// gemm_tn_avx512.cpp — gemm_tn_f32_fn (backward.h) with AVX-512 (F):
//   C[i·ldc + j] += Σ_{t < T} A[t·lda + i] · B[t·ldb + j]        i < M, j < N
// Register tile of 4 rows of C × 32 columns (8 accumulators, started from C); the last columns with
// masked loads / stores (16 lanes, one row at a time). Order and bound as gemm_tn_avx2.cpp.
#include "avx512_util.h"
#include "x86.h"

namespace edge {

void gemm_tn_f32_avx512(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C,
                        int64_t ldc) {
    int64_t j = 0;
    for (; j + 32 <= N; j += 32) {
        int64_t i = 0;
        for (; i + 4 <= M; i += 4) {
            float* c = C + i * ldc + j;
            __m512 a0 = _mm512_loadu_ps(c), a1 = _mm512_loadu_ps(c + 16);
            __m512 b0 = _mm512_loadu_ps(c + ldc), b1 = _mm512_loadu_ps(c + ldc + 16);
            __m512 c0 = _mm512_loadu_ps(c + 2 * ldc), c1 = _mm512_loadu_ps(c + 2 * ldc + 16);
            __m512 e0 = _mm512_loadu_ps(c + 3 * ldc), e1 = _mm512_loadu_ps(c + 3 * ldc + 16);
            for (int64_t t = 0; t < T; ++t) {
                const float* bt = B + t * ldb + j;
                const float* at = A + t * lda + i;
                const __m512 w0 = _mm512_loadu_ps(bt), w1 = _mm512_loadu_ps(bt + 16);
                __m512 d = _mm512_set1_ps(at[0]);
                a0 = _mm512_fmadd_ps(w0, d, a0), a1 = _mm512_fmadd_ps(w1, d, a1);
                d = _mm512_set1_ps(at[1]);
                b0 = _mm512_fmadd_ps(w0, d, b0), b1 = _mm512_fmadd_ps(w1, d, b1);
                d = _mm512_set1_ps(at[2]);
                c0 = _mm512_fmadd_ps(w0, d, c0), c1 = _mm512_fmadd_ps(w1, d, c1);
                d = _mm512_set1_ps(at[3]);
                e0 = _mm512_fmadd_ps(w0, d, e0), e1 = _mm512_fmadd_ps(w1, d, e1);
            }
            _mm512_storeu_ps(c, a0), _mm512_storeu_ps(c + 16, a1);
            _mm512_storeu_ps(c + ldc, b0), _mm512_storeu_ps(c + ldc + 16, b1);
            _mm512_storeu_ps(c + 2 * ldc, c0), _mm512_storeu_ps(c + 2 * ldc + 16, c1);
            _mm512_storeu_ps(c + 3 * ldc, e0), _mm512_storeu_ps(c + 3 * ldc + 16, e1);
        }
        for (; i < M; ++i) {
            float* c = C + i * ldc + j;
            __m512 a0 = _mm512_loadu_ps(c), a1 = _mm512_loadu_ps(c + 16);
            for (int64_t t = 0; t < T; ++t) {
                const __m512 d = _mm512_set1_ps(A[t * lda + i]);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(B + t * ldb + j), d, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(B + t * ldb + j + 16), d, a1);
            }
            _mm512_storeu_ps(c, a0), _mm512_storeu_ps(c + 16, a1);
        }
    }
    for (; j < N; j += 16) {
        const __mmask16 m = N - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (N - j)) - 1);
        for (int64_t i = 0; i < M; ++i) {
            float* c = C + i * ldc + j;
            __m512 a = _mm512_maskz_loadu_ps(m, c);
            for (int64_t t = 0; t < T; ++t)
                a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, B + t * ldb + j), _mm512_set1_ps(A[t * lda + i]), a);
            _mm512_mask_storeu_ps(c, m, a);
        }
    }
}

}  // namespace edge
