// test_backward.cpp — every level's training kernels (kernels/backward.h) against the scalar reference.
//
//   edge_test_backward [--level NAME] [--seed S] [--verbose]
// Exit status 0 when every check passes, 1 on any failure, 2 on bad arguments. Output as
// edge_test_kernels: "levels: ... (best: X)", "level X: N checks ok (K slots ...)", "all ok". Portable
// C++ (no intrinsics), run natively and under qemu (aarch64, riscv64) by the pytest cross tests.
//
// What is checked (each distinct function once, at the lowest level holding it; the Python test
// tests/test_backward_kernels.py checks "ref" itself against torch autograd):
//   gemm_t       every stored dtype; rows 1..33 and 67, ncols 1..5 and 9, n one block to several
//                (odd n for f32/f16/bf16); W misaligned by 0..3 bytes and at a stride > a row; dY/dX at
//                strides > their rows (the gaps must stay untouched); dX starting non-zero.
//                "ref" vs float64: |Δ| <= (rows + 2)·2^-24·(Σ|w·dy| + |dx0|); others vs ref:
//                |Δ| <= 1e-5·Σ_r|W[r][j]·dY[r]| + 2^-23·|dx| + 1e-30 (backward.h, plus the "+=" rounding)
//   gemm_tn_f32  T, M, N in 1..67; same bounds with Σ_t|A·B|
//   rmsnorm_bwd, silu_mul_bwd (also in place), attention_bwd (p_begin > 0 too), lse_update, xent_grad,
//   adamw: vs ref within backward.h's bounds; outputs guarded by canaries.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels/kernels.h"
#include "quant.h"
#include "test_levels.h"
#include "test_util.h"

using namespace edge;
using namespace edge::test;

namespace {

const KernelTable* ref_table() { return kernels_for("ref"); }
constexpr double kU = 1.0 / 16777216.0;  // 2^-24
constexpr float kCanary = -12345.0f;

// Compares got[i] with want[i] within bound[i]; reports the first failure of the case.
bool within(LevelRun& L, const char* what, const float* got, const double* want, const double* bound, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const double err = std::fabs((double)got[i] - want[i]);
        if (!(err <= bound[i])) {
            fail(L, "%s: [%" PRId64 "] = %.9g, want %.9g, |d| = %.3g > %.3g", what, i, got[i], want[i], err, bound[i]);
            return false;
        }
    }
    return true;
}

// Random weight rows of any dtype, moderate magnitudes, zero blocks (test_kernels.cpp's generator, in short).
void fill_w(Rng& g, int dt, uint8_t* row, int64_t n) {
    const DTypeTraits& tr = dtype_traits(dt);
    if (dt == EDGE_DTYPE_F32) {
        for (int64_t i = 0; i < n; ++i) {
            const float v = g.sym(2.0f);
            std::memcpy(row + 4 * i, &v, 4);
        }
        return;
    }
    if (dt == EDGE_DTYPE_F16 || dt == EDGE_DTYPE_BF16) {
        for (int64_t i = 0; i < n; ++i) {
            const uint16_t h = dt == EDGE_DTYPE_F16 ? g.f16(5, 17)
                                                    : (uint16_t)((g.u32() & 0x8000) | (uint32_t)g.range(117, 128) << 7 | (g.u32() & 0x7F));
            std::memcpy(row + 2 * i, &h, 2);
        }
        return;
    }
    for (int64_t b = 0; b < n / tr.block; ++b) {
        uint8_t* p = row + b * tr.block_bytes;
        for (int i = 0; i < tr.block_bytes; ++i) p[i] = (uint8_t)g.u32();
        if (is_mx(dt)) {
            p[0] = (uint8_t)(g.range(0, 15) == 0 ? g.range(0, 3) : g.range(112, 136));
            if (dt == EDGE_DTYPE_MXFP8)
                for (int i = 1; i < tr.block_bytes; ++i)
                    if ((p[i] & 0x7F) == 0x7F) p[i] ^= 1;
        } else {
            const uint16_t d = g.f16(g.range(0, 9) == 0 ? 0 : 5, 16);
            std::memcpy(dt == EDGE_DTYPE_Q6_K ? p + tr.block_bytes - 2 : p, &d, 2);  // q6_k's d is last
            if (is_int4a(dt) || dt == EDGE_DTYPE_Q4_K) {  // int4a's offset m, q4_k's dmin
                const uint16_t m = g.f16(5, 17);
                std::memcpy(p + 2, &m, 2);
            }
            if (g.range(0, 9) == 0) std::memset(p, 0, tr.block_bytes);  // a zero block
        }
    }
}

// ---------------------------------------------------------------- gemm_t

void test_gemm_t(Rng& g, int dt, int64_t rows, int64_t n, int64_t ncols) {
    const DTypeTraits& tr = dtype_traits(dt);
    const int64_t rb = (int64_t)dtype_row_bytes(dt, n), w_stride = rb + g.range(0, 5), mis = g.range(0, 3);
    const int64_t ldy = rows + g.range(0, 3), ldx = n + g.range(0, 3);
    std::vector<uint8_t> wmem((size_t)(w_stride * rows + 64));
    uint8_t* W = wmem.data() + mis;
    for (int64_t r = 0; r < rows; ++r) fill_w(g, dt, W + r * w_stride, n);
    std::vector<float> dy((size_t)(ldy * ncols + 1), NAN), dx0((size_t)(ldx * ncols + 1), kCanary);
    for (int64_t c = 0; c < ncols; ++c) {
        const float amp = (float)std::ldexp(1.0, g.range(-6, 6));
        for (int64_t r = 0; r < rows; ++r) dy[1 + c * ldy + r] = g.range(0, 9) ? g.sym(amp) : 0.0f;
        for (int64_t j = 0; j < n; ++j) dx0[1 + c * ldx + j] = (c & 1) ? g.sym(1.0f) : 0.0f;
    }
    // float64 value and Σ|terms| from the reference dequant
    std::vector<double> want((size_t)(ncols * n)), terms(want.size());
    std::vector<float> wdeq((size_t)n);
    for (int64_t c = 0; c < ncols; ++c)
        for (int64_t j = 0; j < n; ++j) want[c * n + j] = dx0[1 + c * ldx + j];
    for (int64_t r = 0; r < rows; ++r) {
        ref_table()->dequant[dt].fn(W + r * w_stride, wdeq.data(), n);
        for (int64_t c = 0; c < ncols; ++c)
            for (int64_t j = 0; j < n; ++j) {
                const double p = (double)wdeq[j] * dy[1 + c * ldy + r];
                want[c * n + j] += p;
                terms[c * n + j] += std::fabs(p);
            }
    }
    auto run = [&](gemm_t_fn f) {
        std::vector<float> dx(dx0);
        f(W, w_stride, rows, n, dy.data() + 1, ldy, ncols, dx.data() + 1, ldx);
        return dx;
    };
    const std::vector<float> xr = run(ref_table()->gemm_t[dt].fn);
    for_each_distinct_dtype(&KernelTable::gemm_t, dt, [&](LevelRun& L, gemm_t_fn f) {
        const bool is_ref = f == ref_table()->gemm_t[dt].fn;
        const std::vector<float> dx = run(f);
        char what[160];
        std::snprintf(what, sizeof what, "gemm_t[%s] (%s) rows=%" PRId64 " n=%" PRId64 " ncols=%" PRId64 " ldx=%" PRId64, tr.name,
                      is_ref ? "vs float64" : "vs ref", rows, n, ncols, ldx);
        std::vector<double> w((size_t)n), b((size_t)n);
        for (int64_t c = 0; c < ncols; ++c) {
            for (int64_t j = 0; j < n; ++j) {
                const double x0 = std::fabs((double)dx0[1 + c * ldx + j]), xref = xr[1 + c * ldx + j];
                w[j] = is_ref ? want[c * n + j] : xref;
                b[j] = is_ref ? (rows + 2) * kU * (terms[c * n + j] + x0) + 1e-30
                              : 1e-5 * terms[c * n + j] + 2 * kU * std::fabs(xref) + 1e-30;
            }
            if (!within(L, what, dx.data() + 1 + c * ldx, w.data(), b.data(), n)) break;
            for (int64_t j = n; j < ldx && c + 1 < ncols; ++j)
                if (dx[1 + c * ldx + j] != kCanary) {
                    fail(L, "%s: wrote dX[c=%" PRId64 "] past n", what, c);
                    break;
                }
        }
        if (dx[0] != kCanary) fail(L, "%s: wrote before dX", what);
        L.checks++;
    });
}

void test_gemm_ts(Rng& g) {
    const int64_t rows_list[] = {1, 3, 33, 67};
    const int64_t ncols_list[] = {1, 2, 5, 9};
    for (int dt = 0; dt < (int)EDGE_DTYPE_COUNT; ++dt) {
        if (!ref_table()->gemm_t[dt].fn) continue;
        const int B = dtype_traits(dt).block;
        std::vector<int64_t> ns = B == 1 ? std::vector<int64_t>{1, 3, 8, 31, 33, 100} : std::vector<int64_t>{B, 3 * B, 256 + B};
        for (int64_t n : ns)
            for (int64_t rows : rows_list) test_gemm_t(g, dt, rows, n, ncols_list[g.range(0, 3)]);
    }
}

// ---------------------------------------------------------------- gemm_tn_f32

void test_gemm_tn(Rng& g) {
    const int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 33}, {17, 31, 3}, {67, 8, 65}, {2, 33, 16}, {9, 1, 100}};
    for (const auto& s : sizes) {
        const int64_t T = s[0], M = s[1], N = s[2], lda = M + g.range(0, 2), ldb = N + g.range(0, 2), ldc = N + g.range(0, 3);
        std::vector<float> A((size_t)(T * lda + 1)), B((size_t)(T * ldb + 1)), C0((size_t)(M * ldc + 1), kCanary);
        for (float& v : A) v = g.range(0, 7) ? g.sym(2.0f) : 0.0f;
        for (float& v : B) v = g.sym(3.0f);
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) C0[1 + i * ldc + j] = g.sym(1.0f);
        std::vector<double> want((size_t)(M * N)), terms(want.size());
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double v = C0[1 + i * ldc + j], t = 0;
                for (int64_t k = 0; k < T; ++k) {
                    const double p = (double)A[1 + k * lda + i] * B[1 + k * ldb + j];
                    v += p;
                    t += std::fabs(p);
                }
                want[i * N + j] = v, terms[i * N + j] = t;
            }
        auto run = [&](gemm_tn_f32_fn f) {
            std::vector<float> C(C0);
            f(A.data() + 1, lda, B.data() + 1, ldb, T, M, N, C.data() + 1, ldc);
            return C;
        };
        const std::vector<float> cr = run(ref_table()->gemm_tn_f32.fn);
        for_each_distinct(&KernelTable::gemm_tn_f32, [&](LevelRun& L, gemm_tn_f32_fn f) {
            const bool is_ref = f == ref_table()->gemm_tn_f32.fn;
            const std::vector<float> C = run(f);
            char what[128];
            std::snprintf(what, sizeof what, "gemm_tn_f32 (%s) T=%" PRId64 " M=%" PRId64 " N=%" PRId64, is_ref ? "vs float64" : "vs ref", T, M, N);
            std::vector<double> w((size_t)N), b((size_t)N);
            for (int64_t i = 0; i < M; ++i) {
                for (int64_t j = 0; j < N; ++j) {
                    const double c0 = std::fabs((double)C0[1 + i * ldc + j]), cref = cr[1 + i * ldc + j];
                    w[j] = is_ref ? want[i * N + j] : cref;
                    b[j] = is_ref ? (T + 2) * kU * (terms[i * N + j] + c0) + 1e-30 : 1e-5 * terms[i * N + j] + 2 * kU * std::fabs(cref) + 1e-30;
                }
                if (!within(L, what, C.data() + 1 + i * ldc, w.data(), b.data(), N)) break;
                for (int64_t j = N; j < ldc && i + 1 < M; ++j)
                    if (C[1 + i * ldc + j] != kCanary) {
                        fail(L, "%s: wrote C past N", what);
                        break;
                    }
            }
            L.checks++;
        });
    }
}

// ---------------------------------------------------------------- element-wise and per-row ops

const int64_t kLens[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 100, 1023};

void test_rmsnorm_bwd(Rng& g) {
    for (int64_t n : kLens)
        for (int with_w = 0; with_w < 2; ++with_w) {
            std::vector<float> x((size_t)n + 1), w((size_t)n + 1), dy((size_t)n + 1), dx0((size_t)n + 2), dw0((size_t)n + 2);
            for (int64_t i = 0; i <= n; ++i) x[i] = g.sym(3.0f), w[i] = g.sym(1.5f), dy[i] = g.sym(1.0f);
            for (int64_t i = 0; i < n + 2; ++i) dx0[i] = g.sym(1.0f), dw0[i] = g.sym(1.0f);
            dx0[0] = dw0[0] = dx0[n + 1] = dw0[n + 1] = kCanary;
            const float eps = 1e-6f;
            auto run = [&](rmsnorm_bwd_fn f, std::vector<float>& dx, std::vector<float>& dw) {
                dx = dx0, dw = dw0;
                f(x.data() + 1, with_w ? w.data() + 1 : nullptr, eps, n, dy.data() + 1, dx.data() + 1, with_w ? dw.data() + 1 : nullptr);
            };
            std::vector<float> rx, rw;
            run(ref_table()->rmsnorm_bwd.fn, rx, rw);
            double ss = 0, sgx = 0;
            for (int64_t i = 1; i <= n; ++i) ss += (double)x[i] * x[i], sgx += std::fabs((double)dy[i] * (with_w ? w[i] : 1.0f) * x[i]);
            const double inv = 1.0 / std::sqrt(ss / n + eps);
            for_each_distinct(&KernelTable::rmsnorm_bwd, [&](LevelRun& L, rmsnorm_bwd_fn f) {
                if (f == ref_table()->rmsnorm_bwd.fn) return;
                std::vector<float> dx, dw;
                run(f, dx, dw);
                std::vector<double> wx((size_t)n), bx((size_t)n), ww((size_t)n), bw((size_t)n);
                for (int64_t i = 0; i < n; ++i) {
                    const double gi = (double)dy[1 + i] * (with_w ? w[1 + i] : 1.0f), xi = x[1 + i];
                    wx[i] = rx[1 + i], ww[i] = rw[1 + i];
                    bx[i] = 1e-5 * (inv * std::fabs(gi) + std::fabs(xi) * inv * inv * inv * sgx / n) + 2 * kU * std::fabs(wx[i]) + 1e-30;
                    bw[i] = 1e-6 * std::fabs(dy[1 + i] * xi * inv) + 2 * kU * std::fabs(ww[i]) + 1e-30;
                }
                char what[96];
                std::snprintf(what, sizeof what, "rmsnorm_bwd n=%" PRId64 " w=%d dx", n, with_w);
                within(L, what, dx.data() + 1, wx.data(), bx.data(), n);
                what[std::strlen(what) - 2] = 0;
                std::strcat(what, "dw");
                if (with_w) within(L, what, dw.data() + 1, ww.data(), bw.data(), n);
                if (dx[0] != kCanary || dx[n + 1] != kCanary || dw[0] != kCanary || dw[n + 1] != kCanary || (!with_w && dw != dw0))
                    fail(L, "rmsnorm_bwd n=%" PRId64 ": wrote outside dx / dw", n);
                L.checks++;
            });
        }
}

void test_silu_mul_bwd(Rng& g) {
    for (int64_t n : kLens)
        for (int inplace = 0; inplace < 2; ++inplace) {
            std::vector<float> gv((size_t)n + 1), uv((size_t)n + 1), dy((size_t)n + 1);
            for (int64_t i = 0; i <= n; ++i) {
                gv[i] = g.range(0, 15) == 0 ? g.sym(100.0f) : g.sym(12.0f);
                uv[i] = g.sym(5.0f), dy[i] = g.sym(2.0f);
            }
            if (n > 3) gv[1] = 0.0f, gv[2] = -88.0f, gv[3] = 88.0f;
            auto run = [&](silu_mul_bwd_fn f, std::vector<float>& dg, std::vector<float>& du) {
                std::vector<float> gc(gv), uc(uv);
                dg.assign((size_t)n + 2, kCanary), du.assign((size_t)n + 2, kCanary);
                if (inplace) {
                    f(gc.data() + 1, uc.data() + 1, dy.data() + 1, n, gc.data() + 1, uc.data() + 1);
                    std::memcpy(dg.data() + 1, gc.data() + 1, (size_t)n * 4), std::memcpy(du.data() + 1, uc.data() + 1, (size_t)n * 4);
                } else {
                    f(gc.data() + 1, uc.data() + 1, dy.data() + 1, n, dg.data() + 1, du.data() + 1);
                }
            };
            std::vector<float> rg, ru;
            run(ref_table()->silu_mul_bwd.fn, rg, ru);
            for_each_distinct(&KernelTable::silu_mul_bwd, [&](LevelRun& L, silu_mul_bwd_fn f) {
                if (f == ref_table()->silu_mul_bwd.fn) return;
                std::vector<float> dg, du;
                run(f, dg, du);
                std::vector<double> wg((size_t)n), wu((size_t)n), b((size_t)n);
                for (int64_t i = 0; i < n; ++i) {
                    const double gi = gv[1 + i], ui = uv[1 + i], d = dy[1 + i];
                    wg[i] = rg[1 + i], wu[i] = ru[1 + i];
                    b[i] = 1e-6 * (std::fabs(d * ui) * (1 + std::fabs(gi)) + std::fabs(d * gi)) + 1e-30;
                }
                char what[96];
                std::snprintf(what, sizeof what, "silu_mul_bwd n=%" PRId64 "%s", n, inplace ? " in place" : "");
                within(L, what, dg.data() + 1, wg.data(), b.data(), n);
                within(L, what, du.data() + 1, wu.data(), b.data(), n);
                if (dg[0] != kCanary || dg[n + 1] != kCanary || du[0] != kCanary || du[n + 1] != kCanary) fail(L, "%s: wrote outside", what);
                L.checks++;
            });
        }
}

// max |a[r·stride + i]| over r < rows, i < n. (Its own function, not vectorized: GCC 12 for aarch64 hit an
// internal compiler error vectorizing two fmax reductions in one loop here.)
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
double max_abs(const float* a, int64_t rows, int64_t n, int64_t stride) {
    double m = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) {
            const double x = std::fabs((double)a[r * stride + i]);
            if (x > m) m = x;
        }
    return m;
}

void test_attention_bwd(Rng& g) {
    const int64_t cases[][3] = {{1, 1, 0}, {2, 3, 0}, {17, 64, 0}, {100, 64, 37}, {33, 31, 32}, {20, 17, 19}, {5, 130, 2}, {40, 8, 0}};
    for (const auto& cs : cases) {
        const int64_t n_pos = cs[0], dh = cs[1], p_begin = cs[2], ks = dh + g.range(0, 3), vs = dh + g.range(0, 3);
        std::vector<float> q((size_t)dh), dout((size_t)dh), k((size_t)(n_pos * ks)), v((size_t)(n_pos * vs));
        for (float& x : q) x = g.sym(2.0f);
        for (float& x : dout) x = g.sym(1.0f);
        for (float& x : k) x = g.sym(2.0f);
        for (float& x : v) x = g.sym(1.0f);
        std::vector<float> dk0(k.size()), dv0(v.size());
        for (float& x : dk0) x = g.sym(1.0f);
        for (float& x : dv0) x = g.sym(1.0f);
        const float scale = 1.0f / std::sqrt((float)dh);
        const double vmax = max_abs(v.data() + p_begin * vs, n_pos - p_begin, dh, vs);
        const double kmax = max_abs(k.data() + p_begin * ks, n_pos - p_begin, dh, ks), dmax = max_abs(dout.data(), 1, dh, dh);
        double d1 = 0;
        for (float x : dout) d1 += std::fabs(x);
        const double base = 1e-5 * (vmax * d1 * scale * kmax * dh + dmax);
        auto run = [&](attention_bwd_fn f, std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv) {
            dq.assign((size_t)dh + 2, kCanary), dk = dk0, dv = dv0;
            std::vector<float> scratch((size_t)(2 * n_pos), NAN);
            f(q.data(), k.data(), ks, v.data(), vs, p_begin, n_pos, dh, scale, dout.data(), scratch.data(), dq.data() + 1, dk.data(), dv.data());
        };
        std::vector<float> rq, rk, rv;
        run(ref_table()->attention_bwd.fn, rq, rk, rv);
        for_each_distinct(&KernelTable::attention_bwd, [&](LevelRun& L, attention_bwd_fn f) {
            if (f == ref_table()->attention_bwd.fn) return;
            std::vector<float> dq, dk, dv;
            run(f, dq, dk, dv);
            char what[96];
            std::snprintf(what, sizeof what, "attention_bwd n_pos=%" PRId64 " Dh=%" PRId64 " p_begin=%" PRId64, n_pos, dh, p_begin);
            auto cmp = [&](const char* name, const float* got, const float* ref, int64_t cnt) {
                std::vector<double> w((size_t)cnt), b((size_t)cnt);
                for (int64_t i = 0; i < cnt; ++i) w[i] = ref[i], b[i] = base + 2 * kU * std::fabs(ref[i]) + 1e-30;
                std::string s = std::string(what) + " " + name;
                within(L, s.c_str(), got, w.data(), b.data(), cnt);
            };
            cmp("dq", dq.data() + 1, rq.data() + 1, dh);
            cmp("dk", dk.data(), rk.data(), (int64_t)dk.size());
            cmp("dv", dv.data(), rv.data(), (int64_t)dv.size());
            if (dq[0] != kCanary || dq[dh + 1] != kCanary) fail(L, "%s: wrote outside dq", what);
            for (int64_t j = 0; j < n_pos; ++j)
                for (int64_t i = dh; i < ks; ++i)
                    if (dk[j * ks + i] != dk0[j * ks + i]) {
                        fail(L, "%s: wrote a dK gap", what);
                        j = n_pos;
                        break;
                    }
            L.checks++;
        });
    }
}

void test_xent(Rng& g) {
    for (int64_t n : kLens) {
        std::vector<float> l((size_t)n + 1);
        for (float& x : l) x = g.range(0, 19) ? g.sym(20.0f) : -INFINITY;
        l[1] = g.sym(20.0f);  // one finite logit at least
        const float m0s[] = {-INFINITY, 3.0f, 40.0f};
        for (float m0 : m0s) {
            const float s0 = m0 == -INFINITY ? 0.0f : 2.5f;
            float rm = m0, rs = s0;
            ref_table()->lse_update.fn(l.data() + 1, n, &rm, &rs);
            for_each_distinct(&KernelTable::lse_update, [&](LevelRun& L, lse_update_fn f) {
                if (f == ref_table()->lse_update.fn) return;
                float m = m0, s = s0;
                f(l.data() + 1, n, &m, &s);
                if (m != rm || !(std::fabs((double)s - rs) <= 1e-6 * rs))
                    fail(L, "lse_update n=%" PRId64 " m0=%g: (m, s) = (%.9g, %.9g), ref (%.9g, %.9g)", n, m0, m, s, rm, rs);
                L.checks++;
            });
        }
        const float lse = 5.0f, scale = 0.125f;
        std::vector<float> rd((size_t)n + 2, kCanary);
        ref_table()->xent_grad.fn(l.data() + 1, n, lse, scale, rd.data() + 1);
        for_each_distinct(&KernelTable::xent_grad, [&](LevelRun& L, xent_grad_fn f) {
            if (f == ref_table()->xent_grad.fn) return;
            std::vector<float> d((size_t)n + 2, kCanary);
            f(l.data() + 1, n, lse, scale, d.data() + 1);
            std::vector<double> w((size_t)n), b((size_t)n);
            for (int64_t i = 0; i < n; ++i) w[i] = rd[1 + i], b[i] = 1e-6 * std::fabs(rd[1 + i]) + 1e-30;
            char what[64];
            std::snprintf(what, sizeof what, "xent_grad n=%" PRId64, n);
            within(L, what, d.data() + 1, w.data(), b.data(), n);
            if (d[0] != kCanary || d[n + 1] != kCanary) fail(L, "%s: wrote outside dl", what);
            L.checks++;
        });
    }
}

void test_adamw(Rng& g) {
    for (int64_t n : kLens) {
        std::vector<float> p0((size_t)n + 2, kCanary), gr((size_t)n), m0((size_t)n + 2, kCanary), v0((size_t)n + 2, kCanary);
        for (int64_t i = 0; i < n; ++i) {
            p0[1 + i] = g.sym(1.0f), gr[i] = g.range(0, 9) ? g.sym(0.1f) : 0.0f;
            m0[1 + i] = g.sym(0.05f), v0[1 + i] = (float)g.uniform() * 1e-3f;
        }
        const AdamParams a{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - 0.9f * 0.9f * 0.9f, 1.0f - 0.999f * 0.999f * 0.999f};
        std::vector<float> rp(p0), rm(m0), rv(v0);
        ref_table()->adamw.fn(rp.data() + 1, gr.data(), rm.data() + 1, rv.data() + 1, n, a);
        for_each_distinct(&KernelTable::adamw, [&](LevelRun& L, adamw_fn f) {
            if (f == ref_table()->adamw.fn) return;
            std::vector<float> p(p0), m(m0), v(v0);
            f(p.data() + 1, gr.data(), m.data() + 1, v.data() + 1, n, a);
            std::vector<double> w((size_t)n), b((size_t)n), wm((size_t)n), bm((size_t)n), wv((size_t)n), bv((size_t)n);
            for (int64_t i = 0; i < n; ++i) {
                w[i] = rp[1 + i];
                b[i] = 1e-6 * a.lr * (std::fabs(rm[1 + i] / a.bc1) / (std::sqrt(rv[1 + i] / a.bc2) + a.eps) + std::fabs(a.wd * p0[1 + i])) +
                       2 * kU * std::fabs(rp[1 + i]) + 1e-30;
                wm[i] = rm[1 + i], bm[i] = 4 * kU * (std::fabs(m0[1 + i]) + std::fabs(gr[i])) + 1e-30;
                wv[i] = rv[1 + i], bv[i] = 4 * kU * (std::fabs(v0[1 + i]) + (double)gr[i] * gr[i]) + 1e-30;
            }
            char what[64];
            std::snprintf(what, sizeof what, "adamw n=%" PRId64, n);
            within(L, (std::string(what) + " p").c_str(), p.data() + 1, w.data(), b.data(), n);
            within(L, (std::string(what) + " m").c_str(), m.data() + 1, wm.data(), bm.data(), n);
            within(L, (std::string(what) + " v").c_str(), v.data() + 1, wv.data(), bv.data(), n);
            if (p[0] != kCanary || p[n + 1] != kCanary || m[n + 1] != kCanary || v[n + 1] != kCanary) fail(L, "%s: wrote outside", what);
            L.checks++;
        });
    }
}

// Backward slots whose implementation is this level's own (differs from the level below).
int own_slots(size_t li) {
    const KernelTable* t = g_levels[li].t;
    const KernelTable* b = li ? g_levels[li - 1].t : nullptr;
    int k = 0;
    for (int d = 0; d < (int)EDGE_DTYPE_COUNT; ++d) k += t->gemm_t[d].fn && (!b || t->gemm_t[d].fn != b->gemm_t[d].fn);
    auto own = [&](auto KernelTable::*slot) { return (t->*slot).fn && (!b || (t->*slot).fn != (b->*slot).fn) ? 1 : 0; };
    return k + own(&KernelTable::gemm_tn_f32) + own(&KernelTable::rmsnorm_bwd) + own(&KernelTable::silu_mul_bwd) +
           own(&KernelTable::attention_bwd) + own(&KernelTable::lse_update) + own(&KernelTable::xent_grad) + own(&KernelTable::adamw);
}

}  // namespace

int main(int argc, char** argv) {
    const char* only = nullptr;
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--level") && i + 1 < argc) only = argv[++i];
        else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
        else if (!std::strcmp(argv[i], "--verbose")) g_verbose = true;
        else {
            std::fprintf(stderr, "usage: %s [--level NAME] [--seed S] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    const char* names[16];
    const int nl = kernels_levels(names, 16);
    std::printf("levels:");
    for (int i = 0; i < nl; ++i) std::printf(" %s", names[i]);
    std::printf(" (best: %s)\n", names[nl - 1]);
    if (only && !kernels_for(only)) {
        std::fprintf(stderr, "level '%s' is not supported on this CPU\n", only);
        return 2;
    }
    for (int i = 0; i < nl; ++i)
        if (!only || !std::strcmp(names[i], "ref") || !std::strcmp(names[i], only))
            g_levels.push_back(LevelRun{names[i], kernels_for(names[i]), !only || !std::strcmp(names[i], only)});
    Rng g{seed * 0x9E3779B97F4A7C15ull + 7};
    test_gemm_ts(g);
    test_gemm_tn(g);
    test_rmsnorm_bwd(g);
    test_silu_mul_bwd(g);
    test_attention_bwd(g);
    test_xent(g);
    test_adamw(g);
    int64_t failures = 0;
    for (size_t i = 0; i < g_levels.size(); ++i) {
        LevelRun& L = g_levels[i];
        if (!L.tested) continue;
        failures += L.failures;
        const KernelTable* t = L.t;
        if (L.failures)
            std::printf("level %s: %" PRId64 " of %" PRId64 " checks FAILED\n", L.name.c_str(), L.failures, L.checks);
        else if (i == 0)
            std::printf("level %s: %" PRId64 " checks ok (%d slots, the spec)\n", L.name.c_str(), L.checks, own_slots(i));
        else
            std::printf("level %s: %" PRId64 " checks ok (%d slots differ from %s)\n", L.name.c_str(), L.checks, own_slots(i),
                        g_levels[i - 1].name.c_str());
        if (g_verbose) {
            std::printf("  gemm_tn_f32=%s rmsnorm_bwd=%s silu_mul_bwd=%s attention_bwd=%s lse_update=%s xent_grad=%s adamw=%s\n",
                        t->gemm_tn_f32.impl, t->rmsnorm_bwd.impl, t->silu_mul_bwd.impl, t->attention_bwd.impl, t->lse_update.impl,
                        t->xent_grad.impl, t->adamw.impl);
            for (int d = 0; d < (int)EDGE_DTYPE_COUNT; ++d)
                if (t->gemm_t[d].fn) std::printf("  %-10s gemm_t=%s\n", dtype_traits(d).name, t->gemm_t[d].impl);
        }
    }
    std::printf(failures ? "FAILED\n" : "all ok\n");
    return failures ? 1 : 0;
}
