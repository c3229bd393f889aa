// test_kernels.cpp — every kernel level this CPU runs, every table slot, against the scalar reference.
//
//   edge_test_kernels [--level NAME] [--seed S] [--verbose]
// Exit status 0 when every check passes, 1 on any failure, 2 on bad arguments. Prints one line per
// level: "level X: N checks ok (K own slots)" (or the failures). Portable C++ (no intrinsics, no
// framework), so it runs natively (x86-64) and under qemu (aarch64, riscv64) unchanged.
//
// What is checked (each distinct function pointer once: a slot a level inherits from the level below
// is the same code and was already checked there; "ref" is checked against float64 where it can be):
//   gemm      every dtype with a gemm; rows odd, ncols 1..9 and 19, n = one weight block and many
//             (incl. > 2048, past the x86 k-chunk), f32/f16/bf16 also odd n; one 133-row × 6-column case
//             per dtype spans several L2 row blocks; W, X and Y misaligned by 0..3 bytes (aligned fast paths too), W/X strides
//             larger than a row, ldy > rows (the gap between columns must stay untouched).
//             Bound (kernels.h): |y - y_ref| <= 1e-5 * T + 1e-30, T = Σ|block terms| in float64 from
//             the reference dequant: per activation block |Σ_i (w_i - m)·x.d·q_i| + |m·x.s| (int-dot;
//             m = int4a offset, else 0) or Σ_i |w_i·x_i| (float dtypes). "ref" is checked the same
//             way against the float64 value.
//   dequant   bit-exact vs the reference (random bytes: any codes, f16/bf16 NaN payloads and inf,
//             E8M0 0..254, E4M3 NaN codes), misaligned source and destination.
//   quantize  bit-exact block_q8x bytes (random magnitudes, zero blocks, round-half-even ties).
//   attention vs a float64 softmax: |Δout| <= 1e-5 · max_p ||V_p||_inf over p in [p_begin, n_pos);
//             head_dim 1..130, p_begin inside a tile; K lanes outside [p_begin, n_pos) and V rows
//             before p_begin are NaN (must never reach the result); scratch/out guarded by canaries.
//   attention_block (f32 / f16 / q8, test_attention_block.h) vs float64 row by row, split and shifted blocks bit for bit.
//   attention_kivi4 / 2 and attention_block_kivi4 / 2 (test_kivi_cases.h) vs float64 on the dequantized cache, the
//             blocked form also vs the level's per-token form, row by row.
//   silu_mul  |Δy| <= 1e-6·|g·u| + 1e-30 vs the reference ("ref" vs float64), also in place (y == g).
#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels/kernels.h"
#include "quant.h"
#include "test_attention_block.h"
#include "test_levels.h"
#include "test_util.h"
#include "test_kivi_cases.h"

using namespace edge;
using namespace edge::test;

namespace {


const KernelTable* ref_table() { return kernels_for("ref"); }

float bits_f32(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

// A byte buffer whose data starts `mis` bytes past a 64-byte boundary.
struct Buf {
    std::vector<uint8_t> mem;
    uint8_t* p;
    Buf(size_t bytes, int mis) : mem(bytes + 128) {
        uintptr_t a = ((uintptr_t)mem.data() + 63) & ~(uintptr_t)63;
        p = (uint8_t*)a + mis;
    }
};

// ---------------------------------------------------------------- random weight rows


// Fills one row of n elements of dtype dt. for_gemm: finite values in a moderate range (so the f32
// sums neither overflow nor vanish); otherwise any valid bytes (every code, NaN/inf halves, E8M0 0..254).
void fill_row(Rng& g, int dt, uint8_t* row, int64_t n, bool for_gemm) {
    const DTypeTraits& tr = dtype_traits(dt);
    if (dt == EDGE_DTYPE_F32) {
        for (int64_t i = 0; i < n; ++i) {
            float v = for_gemm ? g.sym(2.0f) : bits_f32(g.u32());
            if (!for_gemm && g.range(0, 7) == 0) v = g.sym(1.0f);
            std::memcpy(row + 4 * i, &v, 4);
        }
        return;
    }
    if (dt == EDGE_DTYPE_F16 || dt == EDGE_DTYPE_BF16) {
        for (int64_t i = 0; i < n; ++i) {
            uint16_t h;
            if (!for_gemm) h = (uint16_t)g.u32();
            else if (dt == EDGE_DTYPE_F16) h = g.f16(5, 17);
            else h = (uint16_t)((g.u32() & 0x8000) | (uint32_t)g.range(117, 128) << 7 | (g.u32() & 0x7F));
            std::memcpy(row + 2 * i, &h, 2);
        }
        return;
    }
    const int64_t nb = n / tr.block;
    for (int64_t b = 0; b < nb; ++b) {
        uint8_t* p = row + b * tr.block_bytes;
        for (int i = 0; i < tr.block_bytes; ++i) p[i] = (uint8_t)g.u32();
        if (is_mx(dt)) {
            p[0] = for_gemm ? (uint8_t)(g.range(0, 15) == 0 ? g.range(0, 3) : g.range(112, 136)) : (uint8_t)g.range(0, 254);
            if (dt == EDGE_DTYPE_MXFP8 && for_gemm)
                for (int i = 1; i < tr.block_bytes; ++i)
                    if ((p[i] & 0x7F) == 0x7F) p[i] ^= 1;  // NaN codes are never written: not a gemm input
        } else {  // f16 scale (and int4a offset) first
            uint16_t d = for_gemm ? g.f16(g.range(0, 9) == 0 ? 0 : 5, 16) : g.f16(0, 30);
            std::memcpy(dt == EDGE_DTYPE_Q6_K ? p + tr.block_bytes - 2 : p, &d, 2);  // q6_k's d is last
            if (is_int4a(dt) || dt == EDGE_DTYPE_Q4_K) {  // int4a's offset m, q4_k's dmin
                uint16_t m = for_gemm ? g.f16(5, 17) : g.f16(0, 30);
                std::memcpy(p + 2, &m, 2);
            }
            if (for_gemm && g.range(0, 19) == 0) std::memset(p + 2, 0, tr.block_bytes - 2);  // a zero block
        }
    }
}

// ---------------------------------------------------------------- gemm

struct GemmCase {
    int dt;
    int64_t rows, n, ncols;
};

void test_gemm(Rng& g, const GemmCase& gc) {
    const DTypeTraits& tr = dtype_traits(gc.dt);
    const int64_t rb = (int64_t)dtype_row_bytes(gc.dt, gc.n);
    const int64_t w_stride = rb + g.range(0, 1) * (rb + 3) + g.range(0, 5);  // larger than a row
    const bool intdot = tr.int_dot;
    const int64_t x_unit = intdot ? (int64_t)sizeof(block_q8x) : 4;
    const int64_t x_len = intdot ? gc.n / 32 : gc.n;              // units per column
    const int64_t x_stride = x_len + g.range(0, 3);               // units
    const int64_t ldy = gc.rows + g.range(0, 3);

    Buf W((size_t)(w_stride * gc.rows), g.range(0, 3));
    Buf X((size_t)(x_stride * gc.ncols * x_unit), g.range(0, 3));
    for (int64_t r = 0; r < gc.rows; ++r) fill_row(g, gc.dt, W.p + r * w_stride, gc.n, true);
    std::vector<float> xf((size_t)gc.n);
    for (int64_t c = 0; c < gc.ncols; ++c) {
        uint8_t* col = X.p + c * x_stride * x_unit;
        const float amp = (float)std::ldexp(1.0, g.range(-6, 6));
        for (int64_t i = 0; i < gc.n; ++i) xf[i] = g.sym(amp);
        if (intdot) {
            for (int64_t k = 0; k < gc.n / 32; ++k)
                if (g.range(0, 15) == 0) std::memset(&xf[32 * k], 0, 32 * 4);  // an all-zero block: d = 0
            std::vector<block_q8x> q((size_t)(gc.n / 32));
            ref_table()->quantize_q8x.fn(xf.data(), q.data(), gc.n);
            std::memcpy(col, q.data(), q.size() * sizeof(block_q8x));
        } else {
            std::memcpy(col, xf.data(), (size_t)gc.n * 4);
        }
    }
    // float64 value and bound of every output
    std::vector<double> exact((size_t)(gc.rows * gc.ncols)), terms(exact.size());
    std::vector<float> wdeq((size_t)gc.n);
    for (int64_t r = 0; r < gc.rows; ++r) {
        ref_table()->dequant[gc.dt].fn(W.p + r * w_stride, wdeq.data(), gc.n);
        for (int64_t c = 0; c < gc.ncols; ++c)
            exact_dot(gc.dt, W.p + r * w_stride, wdeq.data(), gc.n, X.p + c * x_stride * x_unit,
                      &exact[c * gc.rows + r], &terms[c * gc.rows + r]);
    }
    const size_t ybytes = (size_t)(ldy * gc.ncols) * 4;
    std::vector<float> yref((size_t)(gc.rows * gc.ncols));
    auto run = [&](gemm_fn f, Buf& Y) {
        std::memset(Y.p, 0xA5, ybytes);
        f(W.p, w_stride, gc.rows, gc.n, X.p, x_stride, gc.ncols, (float*)Y.p, ldy);
    };
    {
        Buf Y(ybytes, g.range(0, 3));
        run(ref_table()->gemm[gc.dt].fn, Y);
        for (int64_t c = 0; c < gc.ncols; ++c)
            for (int64_t r = 0; r < gc.rows; ++r) std::memcpy(&yref[c * gc.rows + r], Y.p + (c * ldy + r) * 4, 4);
    }
    for_each_distinct_dtype(&KernelTable::gemm, gc.dt, [&](LevelRun& L, gemm_fn f) {
        const bool is_ref = f == ref_table()->gemm[gc.dt].fn;
        Buf Y(ybytes, g.range(0, 3));
        run(f, Y);
        int64_t bad = 0;
        for (int64_t c = 0; c < gc.ncols; ++c) {
            for (int64_t r = 0; r < ldy; ++r) {
                const uint8_t* yp = Y.p + (c * ldy + r) * 4;
                if (r >= gc.rows) {  // the gap between columns is not ours to write
                    if (c + 1 < gc.ncols && (yp[0] != 0xA5 || yp[1] != 0xA5 || yp[2] != 0xA5 || yp[3] != 0xA5)) {
                        if (!bad++) fail(L, "gemm[%s] rows=%" PRId64 " n=%" PRId64 " ncols=%" PRId64 ": wrote Y[c=%" PRId64 ", r=%" PRId64 "] past rows",
                                         tr.name, gc.rows, gc.n, gc.ncols, c, r);
                    }
                    continue;
                }
                float y;
                std::memcpy(&y, yp, 4);
                const size_t i = (size_t)(c * gc.rows + r);
                const double want = is_ref ? exact[i] : (double)yref[i];
                const double bound = 1e-5 * terms[i] + 1e-30;
                const double err = std::fabs((double)y - want);
                if (!(err <= bound)) {
                    if (!bad++)
                        fail(L, "gemm[%s] (%s) rows=%" PRId64 " n=%" PRId64 " ncols=%" PRId64 " w_stride=%" PRId64 " x_stride=%" PRId64
                                ": Y[c=%" PRId64 ", r=%" PRId64 "] = %.9g, %s %.9g, |d| = %.3g > %.3g",
                             tr.name, is_ref ? "vs float64" : "vs ref", gc.rows, gc.n, gc.ncols, w_stride, x_stride, c, r, y,
                             is_ref ? "float64" : "ref", want, err, bound);
                }
            }
        }
        L.checks++;
        if (bad && g_verbose) std::fprintf(stderr, "  (%" PRId64 " bad outputs)\n", bad);
    });
}

void test_gemms(Rng& g, int dt_begin, int dt_end) {
    const int64_t rows_list[] = {1, 3, 7, 13};
    const int64_t ncols_list[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 19};
    for (int dt = dt_begin; dt < dt_end; ++dt) {
        if (!ref_table()->gemm[dt].fn) continue;
        const DTypeTraits& tr = dtype_traits(dt);
        std::vector<int64_t> ns;
        if (tr.block == 1) {
            ns = {1, 3, 17, 32, 67, 256, 1023};  // float dtypes take any n >= 1
        } else {
            const int64_t B = tr.block;
            ns = {B, 3 * B < 96 ? 96 : 3 * B, (2176 / B) * B};  // one block, a few, past 2048 elements
            if (B == 32) ns.push_back(320);
        }
        for (int64_t n : ns)
            for (int64_t rows : rows_list)
                for (int64_t ncols : ncols_list) {
                    // keep the large-n cases few: every ncols for small rows, a sample otherwise
                    if (n > 1024 && rows > 3 && ncols != 1 && ncols != 5 && ncols != 19) continue;
                    if (n > 1024 && rows == 13 && ncols == 19) continue;
                    test_gemm(g, GemmCase{dt, rows, n, ncols});
                }
        // many rows and more than one column group: several L2 row blocks (256-512 KiB of weights each)
        test_gemm(g, GemmCase{dt, 133, tr.block == 1 ? 2051 : (2176 / tr.block) * tr.block, 6});
    }
}

// ---------------------------------------------------------------- dequant

void test_dequant(Rng& g, int dt_begin, int dt_end) {
    for (int dt = dt_begin; dt < dt_end; ++dt) {
        if (!ref_table()->dequant[dt].fn) continue;
        const DTypeTraits& tr = dtype_traits(dt);
        std::vector<int64_t> ns;
        if (tr.block == 1) ns = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 129, 1023};
        else ns = {tr.block, 2 * tr.block, 5 * tr.block, (1056 / tr.block) * tr.block};
        for (int64_t n : ns) {
            const int64_t rb = (int64_t)dtype_row_bytes(dt, n);
            Buf src((size_t)rb, g.range(0, 3));
            fill_row(g, dt, src.p, n, false);
            Buf yr((size_t)n * 4 + 8, 4), y((size_t)n * 4 + 8, 4 * g.range(0, 3));
            ref_table()->dequant[dt].fn(src.p, (float*)yr.p, n);
            for_each_distinct_dtype(&KernelTable::dequant, dt, [&](LevelRun& L, dequant_fn f) {
                if (f == ref_table()->dequant[dt].fn) return;  // the spec itself
                std::memset(y.p, 0x5A, (size_t)n * 4 + 8);
                f(src.p, (float*)y.p, n);
                for (int64_t i = 0; i < n; ++i) {
                    uint32_t a, b;
                    std::memcpy(&a, y.p + 4 * i, 4);
                    std::memcpy(&b, yr.p + 4 * i, 4);
                    if (a != b) {
                        fail(L, "dequant[%s] n=%" PRId64 ": y[%" PRId64 "] bits %08x, ref %08x (%.9g vs %.9g)", tr.name, n, i, a,
                             b, bits_f32(a), bits_f32(b));
                        break;
                    }
                }
                for (int i = 0; i < 8; ++i)
                    if (y.p[n * 4 + i] != 0x5A) {
                        fail(L, "dequant[%s] n=%" PRId64 ": wrote past y[n-1]", tr.name, n);
                        break;
                    }
                L.checks++;
            });
        }
    }
}

// ---------------------------------------------------------------- quantize_q8x

void test_quantize(Rng& g) {
    const int64_t ns[] = {32, 64, 96, 160, 32 * 33, 2048 + 96};
    for (int64_t n : ns) {
        for (int variant = 0; variant < 3; ++variant) {
            Buf xb((size_t)n * 4, 4 * g.range(0, 3));
            float* x = (float*)xb.p;
            for (int64_t b = 0; b < n / 32; ++b) {
                float* xk = x + 32 * b;
                const int kind = variant == 0 ? 0 : g.range(0, 5);
                if (kind == 1) {  // zero block
                    for (int i = 0; i < 32; ++i) xk[i] = 0.0f;
                } else if (kind == 2) {  // halves in [-127, 127] with amax 127: d = 1, x*id = ties
                    for (int i = 0; i < 32; ++i) xk[i] = (float)g.range(-254, 254) * 0.5f;
                    xk[g.range(0, 31)] = g.range(0, 1) ? 127.0f : -127.0f;
                } else if (kind == 3) {  // one nonzero element
                    for (int i = 0; i < 32; ++i) xk[i] = 0.0f;
                    xk[g.range(0, 31)] = g.sym(1e3f);
                } else {  // random magnitudes 2^-30 .. 2^30
                    const float amp = (float)std::ldexp(1.0, g.range(-30, 30));
                    for (int i = 0; i < 32; ++i) xk[i] = g.sym(amp);
                }
            }
            std::vector<block_q8x> yr((size_t)(n / 32));
            ref_table()->quantize_q8x.fn(x, yr.data(), n);
            Buf yb((size_t)(n / 32) * sizeof(block_q8x) + 8, g.range(0, 3) * 4);
            for_each_distinct(&KernelTable::quantize_q8x, [&](LevelRun& L, quantize_q8x_fn f) {
                if (f == ref_table()->quantize_q8x.fn) return;
                std::memset(yb.p, 0x5A, (size_t)(n / 32) * sizeof(block_q8x) + 8);
                f(x, (block_q8x*)yb.p, n);
                for (int64_t b = 0; b < n / 32; ++b) {
                    if (std::memcmp(yb.p + b * sizeof(block_q8x), &yr[b], sizeof(block_q8x)) != 0) {
                        block_q8x got;
                        std::memcpy(&got, yb.p + b * sizeof(block_q8x), sizeof got);
                        int i = 0;
                        while (i < 32 && got.q[i] == yr[b].q[i]) ++i;
                        fail(L, "quantize_q8x n=%" PRId64 " block %" PRId64 ": d %.9g/%.9g s %.9g/%.9g first differing q[%d] %d/%d (x=%.9g)",
                             n, b, got.d, yr[b].d, got.s, yr[b].s, i, i < 32 ? got.q[i] : 0, i < 32 ? yr[b].q[i] : 0,
                             i < 32 ? x[32 * b + i] : 0.0f);
                        break;
                    }
                }
                if (yb.p[(n / 32) * sizeof(block_q8x)] != 0x5A) fail(L, "quantize_q8x n=%" PRId64 ": wrote past the end", n);
                L.checks++;
            });
        }
    }
}

// ---------------------------------------------------------------- attention

void test_attention(Rng& g) {
    const int64_t dims[] = {1, 3, 5, 7, 9, 15, 17, 31, 33, 47, 63, 64, 65, 81, 127, 128, 129, 130};
    const int64_t npos_list[] = {1, 2, 5, 16, 17, 31, 33, 70};
    const float nanf = std::nanf("");
    int which = 0;
    for (int64_t Dh : dims) {
        for (int64_t n_pos : npos_list) {
            // p_begin: 0, inside the last tile, inside an earlier tile
            std::vector<int64_t> begins = {0};
            if (n_pos > 1) begins.push_back(n_pos - 1 - (n_pos - 1) % 5);
            if (n_pos > 20) begins.push_back(19);
            for (int64_t p_begin : begins) {
                if (++which % 2 && Dh > 64 && p_begin == 0 && n_pos < 17) continue;  // fewer large-Dh tiny cases
                const int64_t tiles = (n_pos + kKTile - 1) / kKTile;
                const int64_t v_stride = Dh + g.range(0, 5);
                std::vector<float> q((size_t)Dh + 1), kt((size_t)(tiles * kKTile * Dh) + 1), v((size_t)(n_pos * v_stride) + 1);
                float* qp = q.data() + 1;  // 4 bytes past the allocation's alignment
                float* ktp = kt.data() + 1;
                float* vp = v.data() + 1;
                const float qs = 2.0f / std::sqrt((float)Dh);
                for (int64_t i = 0; i < Dh; ++i) qp[i] = g.sym(3.0f);
                for (int64_t p = 0; p < tiles * kKTile; ++p)
                    for (int64_t i = 0; i < Dh; ++i)
                        ktp[(p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile] =
                            p >= p_begin && p < n_pos ? g.sym(qs) : nanf;
                for (int64_t p = 0; p < n_pos; ++p)
                    for (int64_t i = 0; i < v_stride; ++i) vp[p * v_stride + i] = p >= p_begin && i < Dh ? g.sym(4.0f) : nanf;
                // float64 reference
                std::vector<double> s((size_t)n_pos), want((size_t)Dh, 0.0);
                double m = -INFINITY, sum = 0, vmax = 0;
                for (int64_t p = p_begin; p < n_pos; ++p) {
                    double d = 0;
                    for (int64_t i = 0; i < Dh; ++i) d += (double)qp[i] * ktp[(p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile];
                    s[p] = d / std::sqrt((double)Dh);
                    if (s[p] > m) m = s[p];
                    for (int64_t i = 0; i < Dh; ++i) {
                        const double a = std::fabs((double)vp[p * v_stride + i]);
                        if (a > vmax) vmax = a;
                    }
                }
                for (int64_t p = p_begin; p < n_pos; ++p) sum += (s[p] = std::exp(s[p] - m));
                for (int64_t p = p_begin; p < n_pos; ++p)
                    for (int64_t i = 0; i < Dh; ++i) want[i] += s[p] / sum * vp[p * v_stride + i];
                const double bound = 1e-5 * vmax;
                for_each_distinct(&KernelTable::attention, [&](LevelRun& L, attention_fn f) {
                    std::vector<float> scratch((size_t)n_pos + 9, -7.0f), out((size_t)Dh + 9, -7.0f);
                    f(qp, ktp, vp, v_stride, p_begin, n_pos, Dh, scratch.data() + 1, out.data() + 1);
                    if (scratch[0] != -7.0f || scratch[n_pos + 1] != -7.0f) fail(L, "attention Dh=%" PRId64 " n_pos=%" PRId64 ": wrote outside scratch[0, n_pos)", Dh, n_pos);
                    if (out[0] != -7.0f || out[Dh + 1] != -7.0f) fail(L, "attention Dh=%" PRId64 ": wrote outside out[0, Dh)", Dh);
                    for (int64_t i = 0; i < Dh; ++i) {
                        const double err = std::fabs((double)out[i + 1] - want[i]);
                        if (!(err <= bound)) {
                            fail(L, "attention Dh=%" PRId64 " n_pos=%" PRId64 " p_begin=%" PRId64 ": out[%" PRId64 "] = %.9g, float64 %.9g, |d| = %.3g > %.3g",
                                 Dh, n_pos, p_begin, i, out[i + 1], want[i], err, bound);
                            break;
                        }
                    }
                    L.checks++;
                });
            }
        }
    }
}

// ---------------------------------------------------------------- attention over an f16 / q8 KV cache
// Every level of attention_f16 / attention_q8 vs float64 attention on the cache as stored (f16 converted,
// int8 codes times their scale): |Δout| <= 1e-5 · max_p ||V_p||_inf (kernels.h), unused lanes NaN,
// unaligned q / scratch / out, V rows with a stride.

template <class T>
void kv_case(Rng& g, int64_t Dh, int64_t n_pos, int64_t p_begin, bool q8) {
    const int64_t tiles = (n_pos + kKTile - 1) / kKTile, v_stride = Dh + g.range(0, 5);
    std::vector<float> q((size_t)Dh + 1), kd((size_t)(n_pos * Dh)), vd((size_t)(n_pos * Dh));
    std::vector<T> kt((size_t)(tiles * kKTile * Dh)), v((size_t)(n_pos * v_stride));
    std::vector<float> ks((size_t)(tiles * kKTile), std::nanf("")), vs((size_t)(tiles * kKTile), std::nanf(""));
    float* qp = q.data() + 1;
    for (int64_t i = 0; i < Dh; ++i) qp[i] = g.sym(3.0f);
    const float qs = 2.0f / std::sqrt((float)Dh);
    auto enc = [&](float x, float d) -> T {
        if constexpr (sizeof(T) == 2) return (T)f32_to_f16(x);
        else return (T)std::max(-127.0f, std::min(127.0f, std::nearbyint(x / d)));
    };
    auto dec = [&](T c, float d) -> float {
        if constexpr (sizeof(T) == 2) return f16_to_f32((uint16_t)c);
        else return d * (float)c;
    };
    for (size_t i = 0; i < kt.size(); ++i) kt[i] = sizeof(T) == 2 ? (T)0x7e00 : (T)0;  // unused lanes: NaN (f16)
    for (int64_t p = 0; p < n_pos; ++p) {
        const float dk = 0.01f + g.sym(0.005f) + 0.005f, dv = 0.03f + g.sym(0.01f) + 0.01f;
        ks[(size_t)p] = dk, vs[(size_t)p] = dv;
        for (int64_t i = 0; i < Dh; ++i) {
            T c = enc(g.sym(q8 ? 127.0f * dk : qs), dk);
            kt[(size_t)((p / kKTile) * kKTile * Dh + i * kKTile + p % kKTile)] = c;
            kd[(size_t)(p * Dh + i)] = dec(c, dk);
            T w = enc(g.sym(q8 ? 127.0f * dv : 4.0f), dv);
            v[(size_t)(p * v_stride + i)] = w;
            vd[(size_t)(p * Dh + i)] = dec(w, dv);
        }
    }
    std::vector<double> s((size_t)n_pos), want((size_t)Dh, 0.0);
    double m = -INFINITY, sum = 0, vmax = 0;
    for (int64_t p = p_begin; p < n_pos; ++p) {
        double d = 0;
        for (int64_t i = 0; i < Dh; ++i) d += (double)qp[i] * kd[(size_t)(p * Dh + i)];
        s[(size_t)p] = d / std::sqrt((double)Dh);
        m = std::max(m, s[(size_t)p]);
        for (int64_t i = 0; i < Dh; ++i) vmax = std::max(vmax, std::fabs((double)vd[(size_t)(p * Dh + i)]));
    }
    for (int64_t p = p_begin; p < n_pos; ++p) sum += (s[(size_t)p] = std::exp(s[(size_t)p] - m));
    for (int64_t p = p_begin; p < n_pos; ++p)
        for (int64_t i = 0; i < Dh; ++i) want[(size_t)i] += s[(size_t)p] / sum * vd[(size_t)(p * Dh + i)];
    const double bound = 1e-5 * vmax;
    auto check = [&](LevelRun& L, const char* name, const std::vector<float>& out, const std::vector<float>& scratch) {
        if (scratch[0] != -7.0f || scratch[(size_t)n_pos + 1] != -7.0f) fail(L, "%s Dh=%" PRId64 " n_pos=%" PRId64 ": wrote outside scratch", name, Dh, n_pos);
        if (out[0] != -7.0f || out[(size_t)Dh + 1] != -7.0f) fail(L, "%s Dh=%" PRId64 ": wrote outside out", name, Dh);
        for (int64_t i = 0; i < Dh; ++i) {
            const double err = std::fabs((double)out[(size_t)i + 1] - want[(size_t)i]);
            if (!(err <= bound)) {
                fail(L, "%s Dh=%" PRId64 " n_pos=%" PRId64 " p_begin=%" PRId64 ": out[%" PRId64 "] = %.9g, float64 %.9g, |d| = %.3g > %.3g",
                     name, Dh, n_pos, p_begin, i, out[(size_t)i + 1], want[(size_t)i], err, bound);
                break;
            }
        }
        L.checks++;
    };
    if constexpr (sizeof(T) == 2) {
        for_each_distinct(&KernelTable::attention_f16, [&](LevelRun& L, attention_f16_fn f) {
            std::vector<float> scratch((size_t)n_pos + 9, -7.0f), out((size_t)Dh + 9, -7.0f);
            f(qp, (const uint16_t*)kt.data(), (const uint16_t*)v.data(), v_stride, p_begin, n_pos, Dh, scratch.data() + 1, out.data() + 1);
            check(L, "attention_f16", out, scratch);
        });
    } else {
        for_each_distinct(&KernelTable::attention_q8, [&](LevelRun& L, attention_q8_fn f) {
            std::vector<float> scratch((size_t)n_pos + 9, -7.0f), out((size_t)Dh + 9, -7.0f);
            f(qp, (const int8_t*)kt.data(), ks.data(), (const int8_t*)v.data(), vs.data(), v_stride, p_begin, n_pos, Dh,
              scratch.data() + 1, out.data() + 1);
            check(L, "attention_q8", out, scratch);
        });
    }
}

void test_attention_kv(Rng& g) {
    const int64_t dims[] = {1, 3, 7, 8, 15, 16, 17, 33, 64, 65, 80, 129};
    const int64_t npos_list[] = {1, 2, 5, 16, 17, 33, 70};
    for (int64_t Dh : dims)
        for (int64_t n_pos : npos_list) {
            std::vector<int64_t> begins = {0};
            if (n_pos > 1) begins.push_back(n_pos - 1 - (n_pos - 1) % 5);
            if (n_pos > 20) begins.push_back(19);
            for (int64_t p_begin : begins) {
                kv_case<uint16_t>(g, Dh, n_pos, p_begin, false);
                kv_case<int8_t>(g, Dh, n_pos, p_begin, true);
            }
        }
}

// ---------------------------------------------------------------- silu_mul

void test_silu_mul(Rng& g) {
    const int64_t ns[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 100, 1023};
    for (int64_t n : ns) {
        for (int inplace = 0; inplace < 2; ++inplace) {
            std::vector<float> gv((size_t)n + 1), uv((size_t)n + 1);
            float* gp = gv.data() + 1;
            float* up = uv.data() + 1;
            for (int64_t i = 0; i < n; ++i) {
                gp[i] = g.range(0, 15) == 0 ? g.sym(100.0f) : g.sym(12.0f);
                up[i] = g.sym(5.0f);
            }
            if (n > 3) gp[0] = 0.0f, gp[1] = -88.0f, gp[2] = 88.0f;
            std::vector<float> yr((size_t)n);
            ref_table()->silu_mul.fn(gp, up, n, yr.data());
            for_each_distinct(&KernelTable::silu_mul, [&](LevelRun& L, silu_mul_fn f) {
                const bool is_ref = f == ref_table()->silu_mul.fn;
                std::vector<float> gc(gv), yv((size_t)n + 2, -7.0f);
                float* y = inplace ? gc.data() + 1 : yv.data() + 1;
                f(gc.data() + 1, up, n, y);
                if (!inplace && (yv[0] != -7.0f || yv[n + 1] != -7.0f)) fail(L, "silu_mul n=%" PRId64 ": wrote outside y", n);
                for (int64_t i = 0; i < n; ++i) {
                    const double gd = gp[i], ud = up[i];
                    const double want = is_ref ? gd / (1.0 + std::exp(-gd)) * ud : (double)yr[i];
                    const double err = std::fabs((double)y[i] - want), bound = 1e-6 * std::fabs(gd * ud) + 1e-30;
                    if (!(err <= bound)) {
                        fail(L, "silu_mul n=%" PRId64 "%s: y[%" PRId64 "] = %.9g (g=%.9g u=%.9g), %s %.9g, |d| = %.3g > %.3g", n,
                             inplace ? " in place" : "", i, y[i], gp[i], up[i], is_ref ? "float64" : "ref", want, err, bound);
                        break;
                    }
                }
                L.checks++;
            });
        }
    }
}

// Slots whose implementation is this level's own (differs from the level below).
int own_slots(size_t li) {
    const KernelTable* t = g_levels[li].t;
    const KernelTable* b = li ? g_levels[li - 1].t : nullptr;
    if (!b) return 2 * (EDGE_DTYPE_COUNT - 1) + 12;
    int k = 0;
    for (int d = 0; d < (int)EDGE_DTYPE_COUNT; ++d) k += (t->gemm[d].fn != b->gemm[d].fn) + (t->dequant[d].fn != b->dequant[d].fn);
    return k + (t->quantize_q8x.fn != b->quantize_q8x.fn) + (t->attention.fn != b->attention.fn) + (t->silu_mul.fn != b->silu_mul.fn) +
           (t->attention_f16.fn != b->attention_f16.fn) + (t->attention_q8.fn != b->attention_q8.fn) +
           (t->attention_kivi4.fn != b->attention_kivi4.fn) + (t->attention_kivi2.fn != b->attention_kivi2.fn) +
           (t->attention_block.fn != b->attention_block.fn) + (t->attention_block_f16.fn != b->attention_block_f16.fn) +
           (t->attention_block_q8.fn != b->attention_block_q8.fn) +
           (t->attention_block_kivi4.fn != b->attention_block_kivi4.fn) + (t->attention_block_kivi2.fn != b->attention_block_kivi2.fn);
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
    // Each distinct function is checked once, at the lowest listed level holding it. With --level X the
    // list is {ref, X}: every slot of X that is not the reference's is X's to check.
    for (int i = 0; i < nl; ++i)
        if (!only || !std::strcmp(names[i], "ref") || !std::strcmp(names[i], only))
            g_levels.push_back(LevelRun{names[i], kernels_for(names[i]), !only || !std::strcmp(names[i], only)});
    Rng g{seed * 0x2545F4914F6CDD1Dull};
    // dtypes added after the first sixteen (nl4_32, ...) are checked last, so the random cases every
    // earlier check draws stay those it always drew.
    constexpr int kFirstDtypes = (int)EDGE_DTYPE_NL4_32;
    test_dequant(g, 0, kFirstDtypes);
    test_quantize(g);
    test_silu_mul(g);
    test_attention(g);
    test_gemms(g, 0, kFirstDtypes);
    test_dequant(g, kFirstDtypes, (int)EDGE_DTYPE_COUNT);
    test_gemms(g, kFirstDtypes, (int)EDGE_DTYPE_COUNT);
    test_attention_kv(g);  // after the gemms: their random cases stay those they always drew
    test_attention_kivi(g);
    test_attention_block(g);  // every earlier check draws the cases it always drew
    test_attention_block_kivi(g);
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
            std::printf("  quantize_q8x=%s attention=%s silu_mul=%s\n", t->quantize_q8x.impl, t->attention.impl, t->silu_mul.impl);
            for (int d = 0; d < (int)EDGE_DTYPE_COUNT; ++d)
                if (t->gemm[d].fn || t->dequant[d].fn)
                    std::printf("  %-10s gemm=%s dequant=%s\n", dtype_traits(d).name, t->gemm[d].impl, t->dequant[d].impl);
        }
    }
    std::printf(failures ? "FAILED\n" : "all ok\n");
    return failures ? 1 : 0;
}
