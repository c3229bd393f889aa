// attention_bwd_rvv.cpp — attention_bwd_fn (backward.h) with RVV 1.0 (vector-length agnostic): one query
// row of one head, K / V as plain rows. Dots over Dh accumulate per lane (vl from vsetvl_e32m2, tail
// undisturbed) and reduce once per position; the softmax is scalar with libm's expf (as the reference);
// the dq / dK_j / dV_j updates are vfmacc.vf. Bound: backward.h's. scratch: 2·n_pos floats. Naturally
// aligned floats (vle32 / vse32).
#include <math.h>

#include "rvv.h"
#include "rvv_util.h"

namespace edge {

namespace {

float dot(const float* a, const float* b, int64_t n) {
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t acc = __riscv_vfmv_v_f_f32m2(0.f, vlmax);
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        acc = __riscv_vfmacc_vv_f32m2_tu(acc, __riscv_vle32_v_f32m2(a + i, vl), __riscv_vle32_v_f32m2(b + i, vl), vl);
        i += (int64_t)vl;
    }
    return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m2_f32m1(acc, __riscv_vfmv_v_f_f32m1(0.0f, 1), vlmax));
}

// y[0..n) += a · x[0..n)
void axpy(float* y, float a, const float* x, int64_t n) {
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        __riscv_vse32_v_f32m2(y + i, __riscv_vfmacc_vf_f32m2(__riscv_vle32_v_f32m2(y + i, vl), a, __riscv_vle32_v_f32m2(x + i, vl), vl), vl);
        i += (int64_t)vl;
    }
}

}  // namespace

void attention_bwd_rvv(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t p_begin,
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
        p[j] = expf(p[j] - m);
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
