// attention_bwd_neon.cpp — attention_bwd_fn (backward.h) with armv8.0 ASIMD: one query row of one head,
// K / V as plain rows. Dots over Dh in 4 lanes (+ scalar tail), the softmax scalar with expf (as the
// reference), the dq / dK_j / dV_j updates 4-lane FMAs. Bound: backward.h's. scratch: 2·n_pos floats.
#include <arm_neon.h>

#include <cmath>

#include "arm.h"

namespace edge {

namespace {

float dot(const float* a, const float* b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0.f), s1 = vdupq_n_f32(0.f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

void axpy(float* y, float a, const float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

void attention_bwd_neon(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
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
