// gemm_tn_avx2.cpp — gemm_tn_f32_fn (backward.h) with AVX2 + FMA:
//   C[i·ldc + j] += Σ_{t < T} A[t·lda + i] · B[t·ldb + j]        i < M, j < N
// Register tile of 4 rows of C × 16 columns (8 accumulators, started from C): per t, two loads of B,
// four broadcasts of A, eight FMAs. Tails: one row at a time, then 8 lanes, then scalar. Order: t
// ascending per element (as the reference) with FMA, so |Δ| ≤ T · 2^-24 · Σ_t|A·B| ≤ backward.h's bound
// for T < 160. Pointers: naturally aligned floats, any strides.
#include "avx2_util.h"
#include "x86.h"

namespace edge {

void gemm_tn_f32_avx2(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t T, int64_t M, int64_t N, float* C,
                      int64_t ldc) {
    int64_t j = 0;
    for (; j + 16 <= N; j += 16) {
        int64_t i = 0;
        for (; i + 4 <= M; i += 4) {
            float* c = C + i * ldc + j;
            __m256 a0 = _mm256_loadu_ps(c), a1 = _mm256_loadu_ps(c + 8);
            __m256 b0 = _mm256_loadu_ps(c + ldc), b1 = _mm256_loadu_ps(c + ldc + 8);
            __m256 c0 = _mm256_loadu_ps(c + 2 * ldc), c1 = _mm256_loadu_ps(c + 2 * ldc + 8);
            __m256 e0 = _mm256_loadu_ps(c + 3 * ldc), e1 = _mm256_loadu_ps(c + 3 * ldc + 8);
            for (int64_t t = 0; t < T; ++t) {
                const float* bt = B + t * ldb + j;
                const float* at = A + t * lda + i;
                const __m256 w0 = _mm256_loadu_ps(bt), w1 = _mm256_loadu_ps(bt + 8);
                __m256 d = _mm256_broadcast_ss(at);
                a0 = _mm256_fmadd_ps(w0, d, a0), a1 = _mm256_fmadd_ps(w1, d, a1);
                d = _mm256_broadcast_ss(at + 1);
                b0 = _mm256_fmadd_ps(w0, d, b0), b1 = _mm256_fmadd_ps(w1, d, b1);
                d = _mm256_broadcast_ss(at + 2);
                c0 = _mm256_fmadd_ps(w0, d, c0), c1 = _mm256_fmadd_ps(w1, d, c1);
                d = _mm256_broadcast_ss(at + 3);
                e0 = _mm256_fmadd_ps(w0, d, e0), e1 = _mm256_fmadd_ps(w1, d, e1);
            }
            _mm256_storeu_ps(c, a0), _mm256_storeu_ps(c + 8, a1);
            _mm256_storeu_ps(c + ldc, b0), _mm256_storeu_ps(c + ldc + 8, b1);
            _mm256_storeu_ps(c + 2 * ldc, c0), _mm256_storeu_ps(c + 2 * ldc + 8, c1);
            _mm256_storeu_ps(c + 3 * ldc, e0), _mm256_storeu_ps(c + 3 * ldc + 8, e1);
        }
        for (; i < M; ++i) {
            float* c = C + i * ldc + j;
            __m256 a0 = _mm256_loadu_ps(c), a1 = _mm256_loadu_ps(c + 8);
            for (int64_t t = 0; t < T; ++t) {
                const __m256 d = _mm256_broadcast_ss(A + t * lda + i);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(B + t * ldb + j), d, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(B + t * ldb + j + 8), d, a1);
            }
            _mm256_storeu_ps(c, a0), _mm256_storeu_ps(c + 8, a1);
        }
    }
    for (; j + 8 <= N; j += 8)
        for (int64_t i = 0; i < M; ++i) {
            float* c = C + i * ldc + j;
            __m256 a = _mm256_loadu_ps(c);
            for (int64_t t = 0; t < T; ++t) a = _mm256_fmadd_ps(_mm256_loadu_ps(B + t * ldb + j), _mm256_broadcast_ss(A + t * lda + i), a);
            _mm256_storeu_ps(c, a);
        }
    for (; j < N; ++j)
        for (int64_t i = 0; i < M; ++i) {
            float a = C[i * ldc + j];
            for (int64_t t = 0; t < T; ++t) a += A[t * lda + i] * B[t * ldb + j];
            C[i * ldc + j] = a;
        }
}

}  // namespace edge
