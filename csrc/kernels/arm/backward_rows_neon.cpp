// backward_rows_neon.cpp — the per-row training kernels of backward.h with armv8.0 ASIMD, 4 lanes and a
// scalar tail: rmsnorm_bwd, silu_mul_bwd, lse_update, xent_grad, adamw. Sums are 4 partial sums added
// at the end (reordered vs the reference); exp is the polynomial exp4 (neon_util.h, rel. err < 2e-7,
// clamped: e^-inf comes out ~1e-38, far under every bound). Bounds: backward.h's. Pointers: naturally
// aligned floats; silu_mul_bwd's dg / du may alias g / u.
#include <arm_neon.h>

#include <cmath>

#include "arm.h"
#include "neon_util.h"

namespace edge {

void rmsnorm_bwd_neon(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw) {
    float32x4_t ss4 = vdupq_n_f32(0.f), sg4 = vdupq_n_f32(0.f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t xv = vld1q_f32(x + i), d = vld1q_f32(dy + i);
        const float32x4_t g = w ? vmulq_f32(d, vld1q_f32(w + i)) : d;
        ss4 = vfmaq_f32(ss4, xv, xv);
        sg4 = vfmaq_f32(sg4, g, xv);
    }
    float ss = vaddvq_f32(ss4), sgx = vaddvq_f32(sg4);
    for (; i < n; ++i) ss += x[i] * x[i], sgx += dy[i] * (w ? w[i] : 1.0f) * x[i];
    const float inv = 1.0f / std::sqrt(ss / (float)n + eps);
    const float k = inv * inv * inv * sgx / (float)n;
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t xv = vld1q_f32(x + i), d = vld1q_f32(dy + i);
        const float32x4_t g = w ? vmulq_f32(d, vld1q_f32(w + i)) : d;
        vst1q_f32(dx + i, vaddq_f32(vld1q_f32(dx + i), vfmsq_n_f32(vmulq_n_f32(g, inv), xv, k)));
        if (dw) vst1q_f32(dw + i, vfmaq_n_f32(vld1q_f32(dw + i), vmulq_f32(d, xv), inv));
    }
    for (; i < n; ++i) {
        dx[i] += inv * (dy[i] * (w ? w[i] : 1.0f)) - x[i] * k;
        if (dw) dw[i] += dy[i] * x[i] * inv;
    }
}

void silu_mul_bwd_neon(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t gv = vld1q_f32(g + i), uv = vld1q_f32(u + i), d = vld1q_f32(dy + i);
        const float32x4_t s = vdivq_f32(one, vaddq_f32(one, arm::exp4(vnegq_f32(gv))));
        const float32x4_t ds = vmulq_f32(d, s);
        vst1q_f32(dg + i, vmulq_f32(vmulq_f32(ds, uv), vfmaq_f32(one, gv, vsubq_f32(one, s))));
        vst1q_f32(du + i, vmulq_f32(ds, gv));
    }
    for (; i < n; ++i) {
        const float gi = g[i], ui = u[i], d = dy[i];
        const float s = 1.0f / (1.0f + std::exp(-gi));
        dg[i] = d * ui * s * (1.0f + gi * (1.0f - s));
        du[i] = d * gi * s;
    }
}

void lse_update_neon(const float* l, int64_t n, float* m, float* s) {
    float32x4_t mx4 = vdupq_n_f32(*m);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) mx4 = vmaxq_f32(mx4, vld1q_f32(l + i));
    float mx = vmaxvq_f32(mx4);
    for (; i < n; ++i) mx = l[i] > mx ? l[i] : mx;
    if (mx == -INFINITY) return;  // as the reference: nothing finite yet
    float32x4_t s4 = vdupq_n_f32(0.f);
    const float32x4_t mv = vdupq_n_f32(mx);
    for (i = 0; i + 4 <= n; i += 4) s4 = vaddq_f32(s4, arm::exp4(vsubq_f32(vld1q_f32(l + i), mv)));
    float sum = (*s == 0.f ? 0.f : *s * std::exp(*m - mx)) + vaddvq_f32(s4);
    for (; i < n; ++i) sum += std::exp(l[i] - mx);
    *m = mx;
    *s = sum;
}

void xent_grad_neon(const float* l, int64_t n, float lse, float scale, float* dl) {
    const float32x4_t lv = vdupq_n_f32(lse);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dl + i, vmulq_n_f32(arm::exp4(vsubq_f32(vld1q_f32(l + i), lv)), scale));
    for (; i < n; ++i) dl[i] = scale * std::exp(l[i] - lse);
}

void adamw_neon(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a) {
    const float c1 = 1.0f - a.b1, c2 = 1.0f - a.b2, ibc1 = 1.0f / a.bc1, ibc2 = 1.0f / a.bc2;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t gv = vld1q_f32(g + i), pv = vld1q_f32(p + i);
        const float32x4_t mv = vfmaq_n_f32(vmulq_n_f32(gv, c1), vld1q_f32(m + i), a.b1);
        const float32x4_t vv = vfmaq_n_f32(vmulq_n_f32(vmulq_f32(gv, gv), c2), vld1q_f32(v + i), a.b2);
        const float32x4_t den = vaddq_f32(vsqrtq_f32(vmulq_n_f32(vv, ibc2)), vdupq_n_f32(a.eps));
        const float32x4_t upd = vfmaq_n_f32(vdivq_f32(vmulq_n_f32(mv, ibc1), den), pv, a.wd);
        vst1q_f32(m + i, mv);
        vst1q_f32(v + i, vv);
        vst1q_f32(p + i, vfmsq_n_f32(pv, upd, a.lr));
    }
    for (; i < n; ++i) {
        const float gi = g[i];
        m[i] = a.b1 * m[i] + (1.0f - a.b1) * gi;
        v[i] = a.b2 * v[i] + (1.0f - a.b2) * gi * gi;
        p[i] -= a.lr * ((m[i] / a.bc1) / (std::sqrt(v[i] / a.bc2) + a.eps) + a.wd * p[i]);
    }
}

}  // namespace edge
