// backward_rows_rvv.cpp — the per-row training kernels of backward.h with RVV 1.0 (vector-length
// agnostic, vl from vsetvl_e32m2, no scalar tail): rmsnorm_bwd, silu_mul_bwd, lse_update, xent_grad,
// adamw. Sums accumulate per lane and reduce once (vfredusum: reordered vs the reference); exp is the
// polynomial exp_f32m2 (rvv_util.h, rel. err < 2e-7, clamped: e^-inf comes out ~1e-38, far under every
// bound); scalar exp / sqrt are libm's expf / sqrtf (see rvv_util.h, Linkage). Bounds: backward.h's.
// Naturally aligned floats (vle32 / vse32); silu_mul_bwd's dg / du may alias g / u.
#include <math.h>

#include "rvv.h"
#include "rvv_util.h"

namespace edge {

namespace {

inline float sum_m2(vfloat32m2_t v, size_t vlmax) {
    return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m2_f32m1(v, __riscv_vfmv_v_f_f32m1(0.0f, 1), vlmax));
}

}  // namespace

void rmsnorm_bwd_rvv(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw) {
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t ss = __riscv_vfmv_v_f_f32m2(0.f, vlmax), sg = __riscv_vfmv_v_f_f32m2(0.f, vlmax);
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vfloat32m2_t xv = __riscv_vle32_v_f32m2(x + i, vl);
        vfloat32m2_t g = __riscv_vle32_v_f32m2(dy + i, vl);
        if (w) g = __riscv_vfmul_vv_f32m2(g, __riscv_vle32_v_f32m2(w + i, vl), vl);
        ss = __riscv_vfmacc_vv_f32m2_tu(ss, xv, xv, vl);  // tail-undisturbed: lanes past vl keep their sums
        sg = __riscv_vfmacc_vv_f32m2_tu(sg, g, xv, vl);
        i += (int64_t)vl;
    }
    const float inv = 1.0f / sqrtf(sum_m2(ss, vlmax) / (float)n + eps);
    const float k = inv * inv * inv * sum_m2(sg, vlmax) / (float)n;
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vfloat32m2_t xv = __riscv_vle32_v_f32m2(x + i, vl), d = __riscv_vle32_v_f32m2(dy + i, vl);
        const vfloat32m2_t g = w ? __riscv_vfmul_vv_f32m2(d, __riscv_vle32_v_f32m2(w + i, vl), vl) : d;
        const vfloat32m2_t t = __riscv_vfnmsac_vf_f32m2(__riscv_vfmul_vf_f32m2(g, inv, vl), k, xv, vl);  // inv·g − k·x
        __riscv_vse32_v_f32m2(dx + i, __riscv_vfadd_vv_f32m2(__riscv_vle32_v_f32m2(dx + i, vl), t, vl), vl);
        if (dw) __riscv_vse32_v_f32m2(dw + i, __riscv_vfmacc_vf_f32m2(__riscv_vle32_v_f32m2(dw + i, vl), inv, __riscv_vfmul_vv_f32m2(d, xv, vl), vl), vl);
        i += (int64_t)vl;
    }
}

void silu_mul_bwd_rvv(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du) {
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vfloat32m2_t gv = __riscv_vle32_v_f32m2(g + i, vl), uv = __riscv_vle32_v_f32m2(u + i, vl), d = __riscv_vle32_v_f32m2(dy + i, vl);
        const vfloat32m2_t den = __riscv_vfadd_vf_f32m2(rvv::exp_f32m2(__riscv_vfneg_v_f32m2(gv, vl), vl), 1.0f, vl);
        const vfloat32m2_t s = __riscv_vfrdiv_vf_f32m2(den, 1.0f, vl);
        const vfloat32m2_t ds = __riscv_vfmul_vv_f32m2(d, s, vl);
        const vfloat32m2_t one_m_s = __riscv_vfrsub_vf_f32m2(s, 1.0f, vl);
        const vfloat32m2_t f = __riscv_vfmacc_vv_f32m2(__riscv_vfmv_v_f_f32m2(1.0f, vl), gv, one_m_s, vl);  // 1 + g(1−s)
        __riscv_vse32_v_f32m2(dg + i, __riscv_vfmul_vv_f32m2(__riscv_vfmul_vv_f32m2(ds, uv, vl), f, vl), vl);
        __riscv_vse32_v_f32m2(du + i, __riscv_vfmul_vv_f32m2(ds, gv, vl), vl);
        i += (int64_t)vl;
    }
}

void lse_update_rvv(const float* l, int64_t n, float* m, float* s) {
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t mx = __riscv_vfmv_v_f_f32m2(*m, vlmax);
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        mx = __riscv_vfmax_vv_f32m2_tu(mx, mx, __riscv_vle32_v_f32m2(l + i, vl), vl);
        i += (int64_t)vl;
    }
    const float mv = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredmax_vs_f32m2_f32m1(mx, __riscv_vfmv_v_f_f32m1(*m, 1), vlmax));
    if (mv == -INFINITY) return;  // as the reference: nothing finite yet
    vfloat32m2_t acc = __riscv_vfmv_v_f_f32m2(0.f, vlmax);
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        acc = __riscv_vfadd_vv_f32m2_tu(acc, acc, rvv::exp_f32m2(__riscv_vfsub_vf_f32m2(__riscv_vle32_v_f32m2(l + i, vl), mv, vl), vl), vl);
        i += (int64_t)vl;
    }
    *s = (*s == 0.f ? 0.f : *s * expf(*m - mv)) + sum_m2(acc, vlmax);
    *m = mv;
}

void xent_grad_rvv(const float* l, int64_t n, float lse, float scale, float* dl) {
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vfloat32m2_t e = rvv::exp_f32m2(__riscv_vfsub_vf_f32m2(__riscv_vle32_v_f32m2(l + i, vl), lse, vl), vl);
        __riscv_vse32_v_f32m2(dl + i, __riscv_vfmul_vf_f32m2(e, scale, vl), vl);
        i += (int64_t)vl;
    }
}

void adamw_rvv(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a) {
    const float c1 = 1.0f - a.b1, c2 = 1.0f - a.b2, ibc1 = 1.0f / a.bc1, ibc2 = 1.0f / a.bc2;
    for (int64_t i = 0; i < n;) {
        const size_t vl = __riscv_vsetvl_e32m2((size_t)(n - i));
        const vfloat32m2_t gv = __riscv_vle32_v_f32m2(g + i, vl), pv = __riscv_vle32_v_f32m2(p + i, vl);
        const vfloat32m2_t mv = __riscv_vfmacc_vf_f32m2(__riscv_vfmul_vf_f32m2(gv, c1, vl), a.b1, __riscv_vle32_v_f32m2(m + i, vl), vl);
        const vfloat32m2_t vv = __riscv_vfmacc_vf_f32m2(__riscv_vfmul_vf_f32m2(__riscv_vfmul_vv_f32m2(gv, gv, vl), c2, vl), a.b2,
                                                        __riscv_vle32_v_f32m2(v + i, vl), vl);
        const vfloat32m2_t den = __riscv_vfadd_vf_f32m2(__riscv_vfsqrt_v_f32m2(__riscv_vfmul_vf_f32m2(vv, ibc2, vl), vl), a.eps, vl);
        const vfloat32m2_t upd = __riscv_vfmacc_vf_f32m2(__riscv_vfdiv_vv_f32m2(__riscv_vfmul_vf_f32m2(mv, ibc1, vl), den, vl), a.wd, pv, vl);
        __riscv_vse32_v_f32m2(m + i, mv, vl);
        __riscv_vse32_v_f32m2(v + i, vv, vl);
        __riscv_vse32_v_f32m2(p + i, __riscv_vfnmsac_vf_f32m2(pv, a.lr, upd, vl), vl);
        i += (int64_t)vl;
    }
}

}  // namespace edge
