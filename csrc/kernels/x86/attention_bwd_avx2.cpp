// attention_bwd_avx2.cpp — attention_bwd_fn (backward.h) with AVX2 + FMA: one query row of one head,
// K / V as plain rows. Dots over Dh in 8 lanes (+ a scalar tail) with one horizontal sum per position;
// the softmax itself is scalar with expf (n_pos values, as the reference); the updates of dq, dK_j and
// dV_j are 8-lane FMAs. Bound: backward.h's (the dots are reordered, FMA-rounded).
// scratch: 2·n_pos floats (probabilities, then ds_j). Pointers: naturally aligned floats.
#include <cmath>

#include "avx2_util.h"
#include "x86.h"

namespace edge {

namespace {

float dot(const float* a, const float* b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = x86::hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

// y[0..n) += a · x[0..n)
void axpy(float* y, float a, const float* x, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

void attention_bwd_avx2(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
                        int64_t n_pos, int64_t Dh, float scale, const float* dout, float* scratch, float* dq, float* dk, float* dv) {
    float* p = scratch;
    float* ds = scratch + n_pos;
    float m = -INFINITY;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        p[j] = scale * dot(q, k + j * k_stride, Dh);
        m = p[j] > m ? p[j] : m;
    }
    float sum = 0.f;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        p[j] = std::exp(p[j] - m);
        sum += p[j];
    }
    const float inv = 1.0f / sum;
    float dout_o = 0.f;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        p[j] *= inv;
        ds[j] = dot(dout, v + j * v_stride, Dh);
        dout_o += p[j] * ds[j];
    }
    for (int64_t i = 0; i < Dh; ++i) dq[i] = 0.f;
    for (int64_t j = p_begin; j < n_pos; ++j) {
        const float d = scale * p[j] * (ds[j] - dout_o);
        axpy(dq, d, k + j * k_stride, Dh);
        axpy(dk + j * k_stride, d, q, Dh);
        axpy(dv + j * v_stride, p[j], dout, Dh);
    }
}

}  // namespace edge
