// backward_rows_avx2.cpp — the per-row training kernels of backward.h with AVX2 + FMA, 8 lanes and a
// scalar tail: rmsnorm_bwd, silu_mul_bwd, lse_update, xent_grad, adamw. Sums are 8 partial sums added
// at the end (reordered vs the reference); exp is the polynomial exp8 (avx2_util.h, rel. err < 2e-7,
// inputs clamped to [-87.3, 88.4]: e^-inf comes out as ~1e-38 instead of 0, far under every bound).
// The bounds are backward.h's. Pointers: naturally aligned floats; silu_mul_bwd's dg / du may alias g / u.
#include <cmath>

#include "avx2_util.h"
#include "x86.h"

namespace edge {

namespace {
inline float exp_scalar(float x) { return std::exp(x); }
}  // namespace

void rmsnorm_bwd_avx2(const float* x, const float* w, float eps, int64_t n, const float* dy, float* dx, float* dw) {
    __m256 ss8 = _mm256_setzero_ps(), sg8 = _mm256_setzero_ps();
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i), g = _mm256_mul_ps(_mm256_loadu_ps(dy + i), w ? _mm256_loadu_ps(w + i) : one);
        ss8 = _mm256_fmadd_ps(xv, xv, ss8);
        sg8 = _mm256_fmadd_ps(g, xv, sg8);
    }
    float ss = x86::hsum8(ss8), sgx = x86::hsum8(sg8);
    for (; i < n; ++i) ss += x[i] * x[i], sgx += dy[i] * (w ? w[i] : 1.0f) * x[i];
    const float inv = 1.0f / std::sqrt(ss / (float)n + eps);
    const float k = inv * inv * inv * sgx / (float)n;
    const __m256 inv8 = _mm256_set1_ps(inv), k8 = _mm256_set1_ps(k);
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i), d = _mm256_loadu_ps(dy + i);
        const __m256 g = w ? _mm256_mul_ps(d, _mm256_loadu_ps(w + i)) : d;
        _mm256_storeu_ps(dx + i, _mm256_add_ps(_mm256_loadu_ps(dx + i), _mm256_fnmadd_ps(xv, k8, _mm256_mul_ps(inv8, g))));
        if (dw) _mm256_storeu_ps(dw + i, _mm256_fmadd_ps(_mm256_mul_ps(d, xv), inv8, _mm256_loadu_ps(dw + i)));
    }
    for (; i < n; ++i) {
        dx[i] += inv * (dy[i] * (w ? w[i] : 1.0f)) - x[i] * k;
        if (dw) dw[i] += dy[i] * x[i] * inv;
    }
}

void silu_mul_bwd_avx2(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i), d = _mm256_loadu_ps(dy + i);
        const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, x86::exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
        const __m256 ds = _mm256_mul_ps(d, s);
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(ds, uv), _mm256_fmadd_ps(gv, _mm256_sub_ps(one, s), one)));
        _mm256_storeu_ps(du + i, _mm256_mul_ps(ds, gv));
    }
    for (; i < n; ++i) {
        const float gi = g[i], ui = u[i], d = dy[i];
        const float s = 1.0f / (1.0f + exp_scalar(-gi));
        dg[i] = d * ui * s * (1.0f + gi * (1.0f - s));
        du[i] = d * gi * s;
    }
}

void lse_update_avx2(const float* l, int64_t n, float* m, float* s) {
    __m256 mx8 = _mm256_set1_ps(*m);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(l + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx8), _mm256_extractf128_ps(mx8, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mx = _mm_cvtss_f32(h);
    for (; i < n; ++i) mx = l[i] > mx ? l[i] : mx;
    if (mx == -INFINITY) return;  // as the reference: nothing finite yet
    const __m256 mv = _mm256_set1_ps(mx);
    __m256 s8 = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) s8 = _mm256_add_ps(s8, x86::exp8(_mm256_sub_ps(_mm256_loadu_ps(l + i), mv)));
    float sum = (*s == 0.f ? 0.f : *s * exp_scalar(*m - mx)) + x86::hsum8(s8);
    for (; i < n; ++i) sum += exp_scalar(l[i] - mx);
    *m = mx;
    *s = sum;
}

void xent_grad_avx2(const float* l, int64_t n, float lse, float scale, float* dl) {
    const __m256 lv = _mm256_set1_ps(lse), sc = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dl + i, _mm256_mul_ps(sc, x86::exp8(_mm256_sub_ps(_mm256_loadu_ps(l + i), lv))));
    for (; i < n; ++i) dl[i] = scale * exp_scalar(l[i] - lse);
}

void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a) {
    const __m256 b1 = _mm256_set1_ps(a.b1), c1 = _mm256_set1_ps(1.0f - a.b1), b2 = _mm256_set1_ps(a.b2), c2 = _mm256_set1_ps(1.0f - a.b2);
    const __m256 ibc1 = _mm256_set1_ps(1.0f / a.bc1), ibc2 = _mm256_set1_ps(1.0f / a.bc2), eps = _mm256_set1_ps(a.eps);
    const __m256 lr = _mm256_set1_ps(a.lr), wd = _mm256_set1_ps(a.wd);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i), pv = _mm256_loadu_ps(p + i);
        const __m256 mv = _mm256_fmadd_ps(b1, _mm256_loadu_ps(m + i), _mm256_mul_ps(c1, gv));
        const __m256 vv = _mm256_fmadd_ps(b2, _mm256_loadu_ps(v + i), _mm256_mul_ps(_mm256_mul_ps(c2, gv), gv));
        const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vv, ibc2)), eps);
        const __m256 upd = _mm256_fmadd_ps(wd, pv, _mm256_div_ps(_mm256_mul_ps(mv, ibc1), den));
        _mm256_storeu_ps(m + i, mv);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(p + i, _mm256_fnmadd_ps(lr, upd, pv));
    }
    for (; i < n; ++i) {
        const float gi = g[i];
        m[i] = a.b1 * m[i] + (1.0f - a.b1) * gi;
        v[i] = a.b2 * v[i] + (1.0f - a.b2) * gi * gi;
        p[i] -= a.lr * ((m[i] / a.bc1) / (std::sqrt(v[i] / a.bc2) + a.eps) + a.wd * p[i]);
    }
}

}  // namespace edge
