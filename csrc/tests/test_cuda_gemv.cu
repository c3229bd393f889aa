// test_cuda_gemv.cu — the CUDA decode GEMV (cuda_gemv) and cuda_quantize_q8x against the scalar CPU
// reference (csrc/kernels/ref/), and a bandwidth benchmark.
//
//   edge_test_cuda_gemv [--seed S] [--quick] [--verbose]
//   edge_test_cuda_gemv --bench [--json FILE] [--ncols 1,8] [--mb 256] [--dtypes int4_32,q8_0]
// Test: one line per case, then "N passed, N failed"; exit 1 on any failure, 0 otherwise. Without a
// CUDA device or driver it prints "SKIP: ..." and exits 0 (CI has nvcc but no GPU).
// What is checked:
//   gemv      every weight dtype; rows 1, 3, 31, 33, 1023, 4097; n = the dtype's block multiples
//             around 32, 96, 4128 (float dtypes also odd n); ncols 1, 2, 3, 8 and 11 (two column
//             groups), one n = 14336 x 8-column case (shared-memory column split); W misaligned by
//             0..15 bytes with w_stride = row bytes + 0..17 (block dtypes; float dtypes both
//             element-aligned and not); x_stride and ldy padded; all-zero blocks and an all-zero
//             matrix. Inputs come from random valid blocks (random codes, finite f16 scales, E8M0
//             exponents 112..136 and a few 0..3, no E4M3 NaN codes) and the reference quantizer.
//             Y is poisoned (NaN bits) first; the gaps between columns (ldy > rows) must stay poisoned.
//             Bound vs the reference gemm (cuda_kernels.h): |y - y_ref| <= 1e-5 * T + 1e-30 with
//             T = Σ|block terms| in float64 (test_kernels.cpp's bound for SIMD levels).
//   quantize  cuda_quantize_q8x bit-exact vs quantize_q8x_ref (random magnitudes 2^-30..2^30, zero
//             blocks, ties), strided columns, nothing written past the last block.
//   fused     cuda_gemv_fused (input formed in the kernel, several matrices, residual) bit-exact vs the unfused
//             kernels, and vs the reference (test_fused).
//   glu       cuda_gemv_fused_glu (gate·up with act·mul in the epilogue) bit-exact vs fused + act_mul (test_glu).
//   moe       cuda_moe_glu / cuda_moe_down (experts chosen on the device) bit-exact vs the single-expert kernels, and
//             cuda_moe_route bit-exact vs the host's moe_route (test_moe).
//   gemm_mma  cuda_gemm_mma (the tensor-core prefill GEMM) for every dtype it supports (int_dot but the K-quants), bn 32 / 64: rows 1, 63,
//             65, 130; n 1 / 5 / 129 activation blocks (partial K stages); ncols 1, 17, 33, 64, 100 (partial
//             column tiles); W misaligned, padded strides: BIT-EXACT vs the reference gemm, gaps poisoned.
//             `--bench-mma`: its time at the 1.2B model's prefill shapes (128 tokens) beside the GEMV's.
// Bench: device-to-device copy bandwidth (read + write bytes) measured first, then per dtype and shape
// the median time of one GEMV inside a CUDA graph of many launches that rotate over enough weight
// copies (>= --mb MiB in all, several times the 50 MB L2) that L2 cannot serve them; GB/s = weight
// bytes / time. Prints a markdown table last.
#include <cuda_runtime.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/ref/ref.h"
#include "moe.h"
#include "quant.h"
#include "test_util.h"

using namespace edge;
using namespace edge::test;

namespace {

// ---------------------------------------------------------------- helpers


#define CK(expr)                                                                                      \
    do {                                                                                              \
        cudaError_t _e = (expr);                                                                      \
        if (_e != cudaSuccess) {                                                                      \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(_e)); \
            std::exit(1);                                                                             \
        }                                                                                             \
    } while (0)


gemm_fn ref_gemm(int dt) {
    switch (dt) {
        case EDGE_DTYPE_F32: return gemm_f32_ref;
        case EDGE_DTYPE_F16: return gemm_f16_ref;
        case EDGE_DTYPE_BF16: return gemm_bf16_ref;
        case EDGE_DTYPE_Q8_0: return gemm_q8_0_ref;
        case EDGE_DTYPE_INT4_32: return gemm_int4_32_ref;
        case EDGE_DTYPE_INT4_64: return gemm_int4_64_ref;
        case EDGE_DTYPE_INT4_128: return gemm_int4_128_ref;
        case EDGE_DTYPE_INT4A_32: return gemm_int4a_32_ref;
        case EDGE_DTYPE_INT4A_64: return gemm_int4a_64_ref;
        case EDGE_DTYPE_INT4A_128: return gemm_int4a_128_ref;
        case EDGE_DTYPE_MXINT8: return gemm_mxint8_ref;
        case EDGE_DTYPE_MXFP8: return gemm_mxfp8_ref;
        case EDGE_DTYPE_MXFP6: return gemm_mxfp6_ref;
        case EDGE_DTYPE_MXFP4: return gemm_mxfp4_ref;
        case EDGE_DTYPE_NL4_32: return gemm_nl4_32_ref;
        default: return nullptr;
    }
}

dequant_fn ref_dequant(int dt) {
    switch (dt) {
        case EDGE_DTYPE_F32: return dequant_f32_ref;
        case EDGE_DTYPE_F16: return dequant_f16_ref;
        case EDGE_DTYPE_BF16: return dequant_bf16_ref;
        case EDGE_DTYPE_Q8_0: return dequant_q8_0_ref;
        case EDGE_DTYPE_INT4_32: return dequant_int4_32_ref;
        case EDGE_DTYPE_INT4_64: return dequant_int4_64_ref;
        case EDGE_DTYPE_INT4_128: return dequant_int4_128_ref;
        case EDGE_DTYPE_INT4A_32: return dequant_int4a_32_ref;
        case EDGE_DTYPE_INT4A_64: return dequant_int4a_64_ref;
        case EDGE_DTYPE_INT4A_128: return dequant_int4a_128_ref;
        case EDGE_DTYPE_MXINT8: return dequant_mxint8_ref;
        case EDGE_DTYPE_MXFP8: return dequant_mxfp8_ref;
        case EDGE_DTYPE_MXFP6: return dequant_mxfp6_ref;
        case EDGE_DTYPE_MXFP4: return dequant_mxfp4_ref;
        case EDGE_DTYPE_NL4_32: return dequant_nl4_32_ref;
        default: return nullptr;
    }
}

// One row of n elements: random valid values. zero_blocks: a few all-zero blocks (codes and scale).
void fill_row(Rng& g, int dt, uint8_t* row, int64_t n, bool zero_blocks) {
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
            const uint16_t h = dt == EDGE_DTYPE_F16
                                   ? g.f16(5, 17)
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
                    if ((p[i] & 0x7F) == 0x7F) p[i] ^= 1;  // E4M3 NaN codes are never written
        } else {
            const uint16_t d = g.f16(g.range(0, 9) == 0 ? 0 : 5, 16);
            std::memcpy(p, &d, 2);
            if (is_int4a(dt)) {
                const uint16_t m = g.f16(5, 17);
                std::memcpy(p + 2, &m, 2);
            }
        }
        if (zero_blocks && g.range(0, 19) == 0) std::memset(p, 0, tr.block_bytes);
    }
}

int g_passed = 0, g_failed = 0;
bool g_verbose = false;
cudaStream_t g_st = nullptr;

// Copies ncols columns of n floats (stride `stride` on both sides) after letting the next kernel start
// early: the overlap-launched GEMV that follows must wait for it before reading x (tests that wait).
__global__ void copy_columns_early_trigger(const float* s, float* d, int64_t n, int64_t ncols, int64_t stride) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * ncols; i += (int64_t)gridDim.x * blockDim.x)
        d[(i / n) * stride + i % n] = s[(i / n) * stride + i % n];
}

__global__ void empty_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// ---------------------------------------------------------------- gemv cases

struct Case {
    int dt;
    int64_t rows, n, ncols;
    int wmis;      // W's first byte this many bytes past a 256-byte boundary
    int wpad;      // w_stride = row bytes + wpad
    bool zero;     // an all-zero matrix
};

void run_case(Rng& g, const Case& cs) {
    const DTypeTraits& tr = dtype_traits(cs.dt);
    const int64_t rb = (int64_t)dtype_row_bytes(cs.dt, cs.n);
    const int64_t w_stride = rb + cs.wpad;
    const bool intdot = tr.int_dot;
    const int64_t x_unit = intdot ? (int64_t)sizeof(block_q8x) : 4;
    const int64_t x_len = intdot ? cs.n / 32 : cs.n;
    const int64_t x_stride = x_len + g.range(0, 3);
    const int64_t ldy = cs.rows + g.range(0, 3);

    std::vector<uint8_t> W((size_t)(w_stride * cs.rows), 0);
    if (!cs.zero)
        for (int64_t r = 0; r < cs.rows; ++r) fill_row(g, cs.dt, W.data() + r * w_stride, cs.n, true);
    std::vector<uint8_t> X((size_t)(x_stride * cs.ncols * x_unit), 0);
    std::vector<float> xall((size_t)(cs.n * cs.ncols));  // the float columns (before quantization)
    for (int64_t c = 0; c < cs.ncols; ++c) {
        const float amp = (float)std::ldexp(1.0, g.range(-6, 6));
        float* xf = xall.data() + c * cs.n;
        for (int64_t i = 0; i < cs.n; ++i) xf[i] = g.sym(amp);
        uint8_t* col = X.data() + c * x_stride * x_unit;
        if (intdot) {
            for (int64_t k = 0; k < cs.n / 32; ++k)
                if (g.range(0, 15) == 0) std::memset(&xf[32 * k], 0, 32 * 4);
            quantize_q8x_ref(xf, reinterpret_cast<block_q8x*>(col), cs.n);
        } else {
            std::memcpy(col, xf, (size_t)cs.n * 4);
        }
    }
    // reference and bound
    std::vector<float> yref((size_t)(ldy * cs.ncols), 0.0f);
    ref_gemm(cs.dt)(W.data(), w_stride, cs.rows, cs.n, X.data(), x_stride, cs.ncols, yref.data(), ldy);
    std::vector<double> exact((size_t)(cs.rows * cs.ncols)), terms(exact.size());
    std::vector<float> wdeq((size_t)cs.n);
    for (int64_t r = 0; r < cs.rows; ++r) {
        ref_dequant(cs.dt)(W.data() + r * w_stride, wdeq.data(), cs.n);
        for (int64_t c = 0; c < cs.ncols; ++c)
            exact_dot(cs.dt, W.data() + r * w_stride, wdeq.data(), cs.n, X.data() + c * x_stride * x_unit,
                      &exact[c * cs.rows + r], &terms[c * cs.rows + r]);
    }
    // device
    uint8_t *dW = nullptr, *dX = nullptr;
    float* dY = nullptr;
    CK(cudaMalloc(&dW, W.size() + 512));
    CK(cudaMalloc(&dX, X.size() + 16));
    CK(cudaMalloc(&dY, (size_t)(ldy * cs.ncols) * 4));
    CK(cudaMemcpyAsync(dW + cs.wmis, W.data(), W.size(), cudaMemcpyHostToDevice, g_st));
    CK(cudaMemsetAsync(dY, 0xFF, (size_t)(ldy * cs.ncols) * 4, g_st));  // NaN poison
    // overlap: X is produced on the GPU by the kernel right before the GEMV (quantize_q8x, or a copy
    // that lets its successor start at once), and the GEMV is launched to overlap it: it must wait.
    const bool overlap = g.range(0, 1) == 1;
    float* dXf = nullptr;
    if (overlap) {
        const int64_t fstride = intdot ? cs.n : x_stride;
        std::vector<float> xs((size_t)(fstride * cs.ncols), 0.0f);
        for (int64_t c = 0; c < cs.ncols; ++c) std::memcpy(&xs[c * fstride], &xall[c * cs.n], (size_t)cs.n * 4);
        CK(cudaMalloc(&dXf, xs.size() * 4));
        CK(cudaMemcpyAsync(dXf, xs.data(), xs.size() * 4, cudaMemcpyHostToDevice, g_st));
        CK(cudaMemsetAsync(dX, 0xFF, X.size(), g_st));  // NaN scales / values if read too early
        if (intdot) {
            CK(cuda_quantize_q8x(dXf, cs.n, cs.n, cs.ncols, reinterpret_cast<block_q8x*>(dX), x_stride, g_st,
                                 kCudaOverlapPrevious));
        } else {
            copy_columns_early_trigger<<<64, 256, 0, g_st>>>(dXf, reinterpret_cast<float*>(dX), cs.n, cs.ncols, x_stride);
            CK(cudaGetLastError());
        }
    } else {
        CK(cudaMemcpyAsync(dX, X.data(), X.size(), cudaMemcpyHostToDevice, g_st));
    }
    CK(cuda_gemv(cs.dt, dW + cs.wmis, w_stride, cs.rows, cs.n, dX, x_stride, cs.ncols, dY, ldy, g_st,
                 overlap ? kCudaOverlapPrevious : 0));
    CK(cudaGetLastError());
    std::vector<uint32_t> ybits((size_t)(ldy * cs.ncols));
    CK(cudaMemcpyAsync(ybits.data(), dY, ybits.size() * 4, cudaMemcpyDeviceToHost, g_st));
    CK(cudaStreamSynchronize(g_st));
    if (dXf) CK(cudaFree(dXf));
    CK(cudaFree(dW));
    CK(cudaFree(dX));
    CK(cudaFree(dY));

    int64_t bad = 0;
    double worst = 0;  // max err / bound
    char first[256] = "";
    for (int64_t c = 0; c < cs.ncols; ++c)
        for (int64_t r = 0; r < ldy; ++r) {
            const uint32_t b = ybits[(size_t)(c * ldy + r)];
            if (r >= cs.rows) {
                if (b != 0xFFFFFFFFu) {
                    if (!bad++) std::snprintf(first, sizeof first, "wrote the gap Y[c=%" PRId64 ", r=%" PRId64 "]", c, r);
                }
                continue;
            }
            float y;
            std::memcpy(&y, &b, 4);
            const size_t i = (size_t)(c * cs.rows + r);
            const double want = yref[(size_t)(c * ldy + r)];
            const double bound = 1e-5 * terms[i] + 1e-30;
            const double err = std::fabs((double)y - want);
            if (!(err <= bound)) {
                if (!bad++)
                    std::snprintf(first, sizeof first,
                                  "Y[c=%" PRId64 ", r=%" PRId64 "] = %.9g, ref %.9g, f64 %.9g, |d| %.3g > %.3g", c, r, y,
                                  want, exact[i], err, bound);
            } else if (bound > 0) {
                worst = std::max(worst, err / bound);
            }
        }
    const bool ok = bad == 0;
    ok ? ++g_passed : ++g_failed;
    std::printf("%s %-9s rows=%-5" PRId64 " n=%-6" PRId64 " ncols=%-2" PRId64 " wmis=%-2d w_stride=row+%-2d%s%s  err/bound<=%.3f%s%s\n",
                ok ? "ok  " : "FAIL", tr.name, cs.rows, cs.n, cs.ncols, cs.wmis, cs.wpad, cs.zero ? " zero" : "",
                overlap ? " overlap" : "", worst,
                ok ? "" : "  ", first);
    if (!ok && bad > 1) std::printf("     (%" PRId64 " bad outputs)\n", bad);
}

void test_gemv(Rng& g, bool quick) {
    const int64_t rows_list[] = {1, 3, 31, 33, 1023, 4097};
    const int64_t ncols_list[] = {1, 2, 3, 8};
    for (int dt = 0; dt < (int)EDGE_DTYPE_COUNT; ++dt) {
        if (!cuda_gemv_supported((uint32_t)dt)) continue;
        const DTypeTraits& tr = dtype_traits(dt);
        const int64_t B = tr.block;
        std::vector<int64_t> ns;
        if (B == 1)
            ns = {1, 7, 32, 33, 96, 4128, 4131};
        else
            ns = {std::max<int64_t>(B, 32), (96 + B - 1) / B * B, (4128 + B - 1) / B * B};
        int idx = 0;
        for (int64_t n : ns)
            for (int64_t rows : rows_list)
                for (int64_t ncols : ncols_list) {
                    ++idx;
                    // keep it affordable: all ncols for small problems, a rotating sample otherwise
                    const double work = (double)rows * n * ncols;
                    if (work > 4e6 && (idx % 3) != 0) continue;
                    if (quick && work > 4e6) continue;
                    if (rows == 4097 && n > 4000 && ncols > 3 && dt > 3 && (idx % 2)) continue;
                    Case cs{dt, rows, n, ncols, 0, 0, false};
                    if (B == 1) {
                        const int es = tr.block_bytes;
                        switch (g.range(0, 2)) {
                            case 0: break;                                            // aligned
                            case 1: cs.wmis = es * g.range(1, 7); cs.wpad = es * g.range(0, 3); break;  // element-aligned
                            default: cs.wmis = g.range(1, 15); cs.wpad = g.range(1, 17); break;        // not
                        }
                    } else if (g.range(0, 2)) {
                        cs.wmis = g.range(0, 15);
                        cs.wpad = g.range(0, 17);
                    }
                    run_case(g, cs);
                }
        // two column groups (11 columns), an all-zero matrix, and a long row (column split in shared memory)
        run_case(g, Case{dt, 37, (4128 + B - 1) / B * B, 11, g.range(0, 15) * (B == 1 ? tr.block_bytes : 1), 0, false});
        run_case(g, Case{dt, 33, (96 + B - 1) / B * B, 2, 0, 0, true});
        if (!quick) run_case(g, Case{dt, 67, 14336, 8, 0, B == 1 ? 0 : 5, false});
    }
}

// ---------------------------------------------------------------- quantize_q8x

void test_quantize(Rng& g) {
    const int64_t ns[] = {32, 96, 32 * 33, 4128, 14336};
    for (int64_t n : ns) {
        const int64_t ncols = g.range(1, 4);
        const int64_t x_stride = n + g.range(0, 5), y_stride = n / 32 + g.range(0, 2);
        std::vector<float> x((size_t)(x_stride * ncols), 0.0f);
        for (int64_t c = 0; c < ncols; ++c)
            for (int64_t b = 0; b < n / 32; ++b) {
                float* xk = x.data() + c * x_stride + 32 * b;
                const int kind = g.range(0, 5);
                if (kind == 1) {
                    for (int i = 0; i < 32; ++i) xk[i] = 0.0f;
                } else if (kind == 2) {  // amax 127: d = 1, x*id = exact halves (ties to even)
                    for (int i = 0; i < 32; ++i) xk[i] = (float)g.range(-254, 254) * 0.5f;
                    xk[g.range(0, 31)] = g.range(0, 1) ? 127.0f : -127.0f;
                } else if (kind == 3) {
                    for (int i = 0; i < 32; ++i) xk[i] = 0.0f;
                    xk[g.range(0, 31)] = g.sym(1e3f);
                } else {
                    const float amp = (float)std::ldexp(1.0, g.range(-30, 30));
                    for (int i = 0; i < 32; ++i) xk[i] = g.sym(amp);
                }
            }
        const size_t ybytes = (size_t)(y_stride * ncols) * sizeof(block_q8x);
        std::vector<uint8_t> yref(ybytes, 0x5A);
        for (int64_t c = 0; c < ncols; ++c)
            quantize_q8x_ref(x.data() + c * x_stride, reinterpret_cast<block_q8x*>(yref.data()) + c * y_stride, n);
        float* dx = nullptr;
        uint8_t* dy = nullptr;
        CK(cudaMalloc(&dx, x.size() * 4));
        CK(cudaMalloc(&dy, ybytes));
        CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemset(dy, 0x5A, ybytes));
        CK(cuda_quantize_q8x(dx, x_stride, n, ncols, reinterpret_cast<block_q8x*>(dy), y_stride, 0));
        CK(cudaDeviceSynchronize());
        std::vector<uint8_t> y(ybytes);
        CK(cudaMemcpy(y.data(), dy, ybytes, cudaMemcpyDeviceToHost));
        CK(cudaFree(dx));
        CK(cudaFree(dy));
        int64_t bad = -1;
        for (size_t i = 0; i < ybytes && bad < 0; ++i)
            if (y[i] != yref[i]) bad = (int64_t)i;
        const bool ok = bad < 0;
        ok ? ++g_passed : ++g_failed;
        std::printf("%s quantize_q8x n=%-6" PRId64 " ncols=%" PRId64 " y_stride=%" PRId64 "%s\n", ok ? "ok  " : "FAIL", n,
                    ncols, y_stride, ok ? "  bit-exact" : "");
        if (!ok)
            std::printf("     first differing byte %" PRId64 " (block %" PRId64 "): %02x vs ref %02x\n", bad,
                        bad / (int64_t)sizeof(block_q8x), y[(size_t)bad], yref[(size_t)bad]);
    }
}

// The dtypes of the fused one-token kernels (cuda_gemv_fused_supported; checked against it in test_fused).
const int kFusedDtypes[] = {EDGE_DTYPE_Q8_0,     EDGE_DTYPE_INT4_32,  EDGE_DTYPE_INT4_64,  EDGE_DTYPE_INT4_128,
                            EDGE_DTYPE_INT4A_32, EDGE_DTYPE_INT4A_64, EDGE_DTYPE_INT4A_128, EDGE_DTYPE_NL4_32};

// cuda_gemv_fused (the one-token GEMV forming its own input) vs the unfused kernels on the same inputs, BIT FOR BIT:
// a = x / cuda_rmsnorm(x) / cuda_act_mul(x, u), cuda_quantize_q8x(a), cuda_gemv per matrix, + R (host add); a_out
// equal to that a. Then against the scalar reference: the unfused result vs gemm_ref on quantize_q8x_ref(a) (the
// gemv bound), and a vs the float64 prologue (rmsnorm: 1e-5·|a|; act·mul: 1e-5·(|a| + |x·u|), tanh-GELU's
// cancellation). Every fused dtype × input kind, 1..3 matrices of 1..1023 rows, n 1..33 blocks of the dtype,
// W misaligned, padded strides, residual on some matrices; Y poisoned first.
void test_fused(Rng& g, bool quick) {
    // kind, act (kCudaInActMul), norm weight (kCudaInRmsnorm)
    const int kinds[][2] = {{kCudaInF32, 0}, {kCudaInRmsnorm, 1}, {kCudaInRmsnorm, 0}, {kCudaInActMul, 0},
                            {kCudaInActMul, 1}, {kCudaInActMul, 2}};
    const int64_t rows_set[] = {1, 3, 33, 130, 1023};
    int idx = 0;
    for (int dt : kFusedDtypes) {
        const int B = dtype_traits(dt).block;
        for (const auto& kd : kinds)
            for (int64_t nblk : {(int64_t)1, (int64_t)3, (int64_t)33 * 128 / B}) {
                if (quick && (++idx % 2) && nblk != 3) continue;
                const int64_t n = nblk * B;
                const int nm = g.range(1, 3);
                const int kind = kd[0];
                // inputs
                std::vector<float> x((size_t)n), u((size_t)n), nw((size_t)n);
                const float amp = (float)std::ldexp(1.0, g.range(-4, 4));
                for (int64_t i = 0; i < n; ++i) {
                    x[i] = g.sym(amp);
                    u[i] = g.sym(2.0f);
                    nw[i] = g.sym(1.5f);
                }
                if (n >= 64) std::memset(&x[32], 0, 32 * 4);  // a zero block
                float *dx = nullptr, *du = nullptr, *dnw = nullptr, *da = nullptr, *daout = nullptr;
                block_q8x* dq = nullptr;
                CK(cudaMalloc(&dx, n * 4));
                CK(cudaMalloc(&du, n * 4));
                CK(cudaMalloc(&dnw, n * 4));
                CK(cudaMalloc(&da, n * 4));
                CK(cudaMalloc(&daout, n * 4));
                CK(cudaMalloc(&dq, (n / 32) * sizeof(block_q8x)));
                CK(cudaMemcpyAsync(dx, x.data(), n * 4, cudaMemcpyHostToDevice, g_st));
                CK(cudaMemcpyAsync(du, u.data(), n * 4, cudaMemcpyHostToDevice, g_st));
                CK(cudaMemcpyAsync(dnw, nw.data(), n * 4, cudaMemcpyHostToDevice, g_st));
                CK(cudaMemsetAsync(daout, 0xFF, n * 4, g_st));
                CudaGemvInput in;
                in.kind = kind;
                in.x = dx;
                in.eps = 1e-5f;
                in.norm_w = kind == kCudaInRmsnorm && kd[1] ? dnw : nullptr;
                in.u = du;
                in.act = kd[1];
                in.a_out = g.range(0, 1) ? daout : nullptr;
                // the unfused a
                if (kind == kCudaInRmsnorm) {
                    CK(cuda_rmsnorm(dx, in.norm_w, in.eps, 1, n, da, g_st));
                } else {
                    CK(cudaMemcpyAsync(da, dx, n * 4, cudaMemcpyDeviceToDevice, g_st));
                    if (kind == kCudaInActMul) CK(cuda_act_mul(da, du, n, in.act, g_st));
                }
                CK(cuda_quantize_q8x(da, n, n, 1, dq, n / 32, g_st));
                // matrices
                CudaGemvMat mats[kCudaFusedMaxMats];
                std::vector<std::vector<uint8_t>> Wh(nm);
                std::vector<std::vector<float>> Rh(nm);
                std::vector<uint8_t*> dW(nm);
                std::vector<float*> dY(nm), dYu(nm), dR(nm);
                const int64_t rb = (int64_t)dtype_row_bytes(dt, n);
                for (int m = 0; m < nm; ++m) {
                    const int64_t rows = rows_set[g.range(0, 4)], ws = rb + g.range(0, 17), wmis = g.range(0, 15);
                    Wh[m].assign((size_t)(ws * rows), 0);
                    for (int64_t r = 0; r < rows; ++r) fill_row(g, dt, Wh[m].data() + r * ws, n, true);
                    CK(cudaMalloc(&dW[m], Wh[m].size() + 512));
                    CK(cudaMemcpyAsync(dW[m] + wmis, Wh[m].data(), Wh[m].size(), cudaMemcpyHostToDevice, g_st));
                    CK(cudaMalloc(&dY[m], rows * 4));
                    CK(cudaMalloc(&dYu[m], rows * 4));
                    CK(cudaMemsetAsync(dY[m], 0xFF, rows * 4, g_st));
                    dR[m] = nullptr;
                    if (g.range(0, 1)) {
                        Rh[m].resize((size_t)rows);
                        for (float& v : Rh[m]) v = g.sym(4.0f);
                        CK(cudaMalloc(&dR[m], rows * 4));
                        CK(cudaMemcpyAsync(dR[m], Rh[m].data(), rows * 4, cudaMemcpyHostToDevice, g_st));
                        if (g.range(0, 1)) {  // in place: Y = R
                            CK(cudaMemcpyAsync(dY[m], Rh[m].data(), rows * 4, cudaMemcpyHostToDevice, g_st));
                            dR[m] = dY[m];
                        }
                    }
                    mats[m] = CudaGemvMat{dW[m] + wmis, ws, rows, dY[m], dR[m]};
                    CK(cuda_gemv(dt, dW[m] + wmis, ws, rows, n, dq, n / 32, 1, dYu[m], rows, g_st));
                }
                const bool overlap = g.range(0, 1) == 1;
                CK(cuda_gemv_fused(dt, mats, nm, n, in, g_st, overlap ? kCudaOverlapPrevious : 0));
                CK(cudaStreamSynchronize(g_st));
                std::vector<float> a((size_t)n), aout((size_t)n);
                std::vector<block_q8x> q((size_t)(n / 32));
                CK(cudaMemcpy(a.data(), da, n * 4, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(aout.data(), daout, n * 4, cudaMemcpyDeviceToHost));
                int64_t bad = 0;
                char first[256] = "";
                if (in.a_out && std::memcmp(a.data(), aout.data(), n * 4) != 0) {
                    ++bad;
                    std::snprintf(first, sizeof first, "a_out differs from the unfused a");
                }
                // a vs the float64 prologue
                double ss = 0;
                for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * x[i];
                const double rs = 1.0 / std::sqrt(ss / (double)n + 1e-5);
                for (int64_t i = 0; i < n && !bad; ++i) {
                    double want = x[i], bound = 0;
                    if (kind == kCudaInRmsnorm) {
                        want = x[i] * rs * (in.norm_w ? nw[i] : 1.0);
                        bound = 1e-5 * std::fabs(want) + 1e-30;
                    } else if (kind == kCudaInActMul) {
                        const double gg = x[i];
                        const double y = in.act == 1 ? (gg > 0 ? gg : 0)
                                         : in.act == 2 ? 0.5 * gg * (1 + std::tanh(0.7978845608028654 * (gg + 0.044715 * gg * gg * gg)))
                                                       : gg / (1 + std::exp(-gg));
                        want = y * u[i];
                        bound = 1e-5 * (std::fabs(want) + std::fabs(gg * u[i])) + 1e-30;
                    }
                    if (!(std::fabs(a[i] - want) <= bound)) {
                        ++bad;
                        std::snprintf(first, sizeof first, "a[%" PRId64 "] = %.9g, f64 %.9g", i, a[i], want);
                    }
                }
                std::vector<block_q8x> qref((size_t)(n / 32));
                quantize_q8x_ref(a.data(), qref.data(), n);
                std::vector<float> wdeq((size_t)n);
                for (int m = 0; m < nm; ++m) {
                    const int64_t rows = mats[m].rows, ws = mats[m].w_stride;
                    std::vector<float> y((size_t)rows), yu((size_t)rows), yref((size_t)rows);
                    CK(cudaMemcpy(y.data(), dY[m], rows * 4, cudaMemcpyDeviceToHost));
                    CK(cudaMemcpy(yu.data(), dYu[m], rows * 4, cudaMemcpyDeviceToHost));
                    ref_gemm(dt)(Wh[m].data(), ws, rows, n, reinterpret_cast<const uint8_t*>(qref.data()), n / 32, 1, yref.data(), rows);
                    for (int64_t r = 0; r < rows; ++r) {
                        const float want = dR[m] ? Rh[m][(size_t)r] + yu[(size_t)r] : yu[(size_t)r];
                        if (std::memcmp(&want, &y[(size_t)r], 4) != 0) {
                            if (!bad++)
                                std::snprintf(first, sizeof first, "mat %d Y[%" PRId64 "] = %.9g, unfused %.9g", m, r, y[(size_t)r], want);
                        }
                        double ex = 0, terms = 0;
                        ref_dequant(dt)(Wh[m].data() + r * ws, wdeq.data(), n);
                        exact_dot(dt, Wh[m].data() + r * ws, wdeq.data(), n, reinterpret_cast<const uint8_t*>(qref.data()), &ex, &terms);
                        if (!(std::fabs((double)yu[(size_t)r] - yref[(size_t)r]) <= 1e-5 * terms + 1e-30)) {
                            if (!bad++)
                                std::snprintf(first, sizeof first, "mat %d unfused Y[%" PRId64 "] = %.9g, ref %.9g", m, r, yu[(size_t)r],
                                              yref[(size_t)r]);
                        }
                    }
                    CK(cudaFree(dW[m]));
                    CK(cudaFree(dYu[m]));
                    if (dR[m] && dR[m] != dY[m]) CK(cudaFree(dR[m]));
                    CK(cudaFree(dY[m]));
                }
                for (float* p : {dx, du, dnw, da, daout}) CK(cudaFree(p));
                CK(cudaFree(dq));
                const bool ok = bad == 0;
                ok ? ++g_passed : ++g_failed;
                std::printf("%s fused %-9s n=%-5" PRId64 " mats=%d in=%s%s%s  %s\n", ok ? "ok  " : "FAIL", dtype_traits(dt).name, n, nm,
                            kind == kCudaInF32 ? "f32" : kind == kCudaInRmsnorm ? (in.norm_w ? "rmsnorm·w" : "rmsnorm") : "act_mul",
                            kind == kCudaInActMul ? (in.act == 0 ? "(silu)" : in.act == 1 ? "(relu)" : "(gelu)") : "",
                            overlap ? " overlap" : "", ok ? "bit-exact vs unfused" : first);
            }
    }
    CudaGemvMat m{};
    CudaGemvInput in;
    const bool refused = cuda_gemv_fused(EDGE_DTYPE_F32, &m, 1, 32, in, g_st) == cudaErrorInvalidValue &&
                         cuda_gemv_fused(EDGE_DTYPE_Q8_0, &m, 4, 32, in, g_st) == cudaErrorInvalidValue;
    refused ? ++g_passed : ++g_failed;
    std::printf("%s refuses: fused gemv of a float dtype / 4 matrices / no input (cudaErrorInvalidValue)\n", refused ? "ok  " : "FAIL");
    int listed = 0;  // the dtypes tested here are exactly the supported ones
    for (uint32_t dt = 0; dt < EDGE_DTYPE_COUNT; ++dt) {
        bool in_list = false;
        for (int f : kFusedDtypes) in_list |= (uint32_t)f == dt;
        listed += in_list == cuda_gemv_fused_supported(dt);
    }
    listed == EDGE_DTYPE_COUNT ? ++g_passed : ++g_failed;
    std::printf("%s fused dtypes: cuda_gemv_fused_supported is exactly the tested list\n", listed == EDGE_DTYPE_COUNT ? "ok  " : "FAIL");
}

// cuda_gemv_fused_glu vs cuda_gemv_fused({gate, up}) then cuda_act_mul on the same input, BIT FOR BIT (that chain is
// checked against the reference by test_fused): every fused dtype × input (f32, rmsnorm·w) × act, rows 1..1023,
// n 1..33 blocks, gate / up misaligned with their own padded strides; g poisoned first.
void test_glu(Rng& g, bool quick) {
    const int64_t rows_set[] = {1, 3, 33, 130, 1023};
    int idx = 0;
    for (int dt : kFusedDtypes) {
        const int B = dtype_traits(dt).block;
        for (int kind : {kCudaInF32, kCudaInRmsnorm})
            for (int act : {0, 1, 2})
                for (int64_t nblk : {(int64_t)1, (int64_t)3, (int64_t)33 * 128 / B}) {
                    if (quick && (++idx % 2) && nblk != 3) continue;
                    const int64_t n = nblk * B, rows = rows_set[g.range(0, 4)], rb = (int64_t)dtype_row_bytes(dt, n);
                    std::vector<float> x((size_t)n), nw((size_t)n);
                    const float amp = (float)std::ldexp(1.0, g.range(-4, 4));
                    for (int64_t i = 0; i < n; ++i) x[i] = g.sym(amp), nw[i] = g.sym(1.5f);
                    float *dx = nullptr, *dnw = nullptr, *dgu = nullptr, *dg = nullptr;
                    CK(cudaMalloc(&dx, n * 4));
                    CK(cudaMalloc(&dnw, n * 4));
                    CK(cudaMalloc(&dgu, 2 * rows * 4));
                    CK(cudaMalloc(&dg, rows * 4));
                    CK(cudaMemcpyAsync(dx, x.data(), n * 4, cudaMemcpyHostToDevice, g_st));
                    CK(cudaMemcpyAsync(dnw, nw.data(), n * 4, cudaMemcpyHostToDevice, g_st));
                    CK(cudaMemsetAsync(dg, 0xFF, rows * 4, g_st));
                    uint8_t* dW[2];
                    CudaGemvMat mats[2];
                    for (int m = 0; m < 2; ++m) {
                        const int64_t ws = rb + g.range(0, 17), wmis = g.range(0, 15);
                        std::vector<uint8_t> Wh((size_t)(ws * rows), 0);
                        for (int64_t r = 0; r < rows; ++r) fill_row(g, dt, Wh.data() + r * ws, n, true);
                        CK(cudaMalloc(&dW[m], Wh.size() + 512));
                        CK(cudaMemcpy(dW[m] + wmis, Wh.data(), Wh.size(), cudaMemcpyHostToDevice));
                        mats[m] = CudaGemvMat{dW[m] + wmis, ws, rows, dgu + m * rows, nullptr};
                    }
                    CudaGemvInput in;
                    in.kind = kind;
                    in.x = dx;
                    in.eps = 1e-5f;
                    in.norm_w = kind == kCudaInRmsnorm ? dnw : nullptr;
                    CK(cuda_gemv_fused(dt, mats, 2, n, in, g_st));
                    CK(cuda_act_mul(dgu, dgu + rows, rows, act, g_st));
                    const bool overlap = g.range(0, 1) == 1;
                    CK(cuda_gemv_fused_glu(dt, mats[0].W, mats[0].w_stride, mats[1].W, mats[1].w_stride, rows, n, in, act, dg, g_st,
                                           overlap ? kCudaOverlapPrevious : 0));
                    CK(cudaStreamSynchronize(g_st));
                    std::vector<float> want((size_t)rows), got((size_t)rows);
                    CK(cudaMemcpy(want.data(), dgu, rows * 4, cudaMemcpyDeviceToHost));
                    CK(cudaMemcpy(got.data(), dg, rows * 4, cudaMemcpyDeviceToHost));
                    int64_t bad = -1;
                    for (int64_t r = 0; r < rows && bad < 0; ++r)
                        if (std::memcmp(&want[(size_t)r], &got[(size_t)r], 4) != 0) bad = r;
                    for (float* p : {dx, dnw, dgu, dg}) CK(cudaFree(p));
                    for (uint8_t* p : dW) CK(cudaFree(p));
                    const bool ok = bad < 0;
                    ok ? ++g_passed : ++g_failed;
                    std::printf("%s glu   %-9s n=%-5" PRId64 " rows=%-4" PRId64 " in=%s act=%s%s  %s\n", ok ? "ok  " : "FAIL",
                                dtype_traits(dt).name, n, rows, kind == kCudaInF32 ? "f32" : "rmsnorm·w",
                                act == 0 ? "silu" : act == 1 ? "relu" : "gelu", overlap ? " overlap" : "",
                                ok ? "bit-exact vs fused + act_mul" : "");
                    if (!ok)
                        std::printf("     g[%" PRId64 "] = %.9g, fused + act_mul %.9g\n", bad, got[(size_t)bad], want[(size_t)bad]);
                }
    }
    CudaGemvInput in;
    float y = 0;
    const bool refused = cuda_gemv_fused_glu(EDGE_DTYPE_F32, &y, 4, &y, 4, 1, 32, in, 0, &y, g_st) == cudaErrorInvalidValue &&
                         cuda_gemv_fused_glu(EDGE_DTYPE_Q8_0, &y, 34, &y, 34, 1, 32, in, 3, &y, g_st) == cudaErrorInvalidValue;
    refused ? ++g_passed : ++g_failed;
    std::printf("%s refuses: glu gemv of a float dtype / act 3 / no input (cudaErrorInvalidValue)\n", refused ? "ok  " : "FAIL");
}

// cuda_moe_glu / cuda_moe_down (the k experts of one token, picked through a device table by device ids) vs
// cuda_gemv_fused_glu / cuda_gemv_fused on each chosen expert's matrices, BIT FOR BIT: every fused dtype, E experts
// (1, 5, 33) with their own misaligned copies, k ranks (repeats allowed), F / D of 1..9 blocks, the glu's input f32 or
// rmsnorm·w.
// y poisoned first. Then cuda_moe_route vs the host's moe_route (moe.h), ids and weights bit for bit, over
// random logits (with ties) for E 1..300, k 1..8, softmax / sigmoid, with / without norm_topk.
void test_moe(Rng& g, bool quick) {
    for (int dt : kFusedDtypes)
        for (int c = 0; c < (quick ? 2 : 4); ++c) {
            const int B = dtype_traits(dt).block;
            const int E = c == 0 ? 1 : (c == 1 ? 5 : 33), k = std::min(E, g.range(1, 6));
            const int64_t D = B * (int64_t)g.range(1, 8), F = B * (int64_t)g.range(1, 9), act = g.range(0, 2);
            const int64_t rg = (int64_t)dtype_row_bytes(dt, D), rd = (int64_t)dtype_row_bytes(dt, F);
            const int64_t gs = rg + g.range(0, 9), us = rg + g.range(0, 9), ds = rd + g.range(0, 9);
            std::vector<CudaMoeExpert> table((size_t)E);
            std::vector<uint8_t*> bufs;
            for (int e = 0; e < E; ++e) {
                const int64_t rows[3] = {F, F, D}, n[3] = {D, D, F}, st[3] = {gs, us, ds};
                const void* ptr[3];
                for (int m = 0; m < 3; ++m) {
                    std::vector<uint8_t> Wh((size_t)(st[m] * rows[m]), 0);
                    for (int64_t r = 0; r < rows[m]; ++r) fill_row(g, dt, Wh.data() + r * st[m], n[m], true);
                    uint8_t* d = nullptr;
                    const int mis = g.range(0, 15);
                    CK(cudaMalloc(&d, Wh.size() + 64));
                    CK(cudaMemcpy(d + mis, Wh.data(), Wh.size(), cudaMemcpyHostToDevice));
                    bufs.push_back(d);
                    ptr[m] = d + mis;
                }
                table[(size_t)e] = CudaMoeExpert{ptr[0], ptr[1], ptr[2]};
            }
            std::vector<int32_t> ids((size_t)k);
            for (int j = 0; j < k; ++j) ids[(size_t)j] = g.range(0, E - 1);
            std::vector<float> x((size_t)D);
            for (auto& v : x) v = g.sym((float)std::ldexp(1.0, g.range(-3, 3)));
            CudaMoeExpert* dt_table = nullptr;
            int32_t* dids = nullptr;
            float *dx = nullptr, *dnw = nullptr, *dh = nullptr, *dy = nullptr, *wh = nullptr, *wy = nullptr;
            std::vector<float> nw((size_t)D);
            for (auto& v : nw) v = g.sym(1.5f);
            CK(cudaMalloc(&dnw, D * 4));
            CK(cudaMemcpy(dnw, nw.data(), D * 4, cudaMemcpyHostToDevice));
            CK(cudaMalloc(&dt_table, E * sizeof(CudaMoeExpert)));
            CK(cudaMalloc(&dids, k * 4));
            CK(cudaMalloc(&dx, D * 4));
            CK(cudaMalloc(&dh, k * F * 4));
            CK(cudaMalloc(&dy, k * D * 4));
            CK(cudaMalloc(&wh, k * F * 4));
            CK(cudaMalloc(&wy, k * D * 4));
            CK(cudaMemcpy(dt_table, table.data(), E * sizeof(CudaMoeExpert), cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dids, ids.data(), k * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dx, x.data(), D * 4, cudaMemcpyHostToDevice));
            CK(cudaMemset(dh, 0xFF, k * F * 4));
            CK(cudaMemset(dy, 0xFF, k * D * 4));
            // the expected: per rank, the single-expert kernels; the glu's input f32 or rmsnorm·w (every other case)
            CudaGemvInput in_glu;
            in_glu.x = dx;
            if (c % 2) in_glu.kind = kCudaInRmsnorm, in_glu.norm_w = dnw, in_glu.eps = 1e-5f;
            for (int j = 0; j < k; ++j) {
                const CudaMoeExpert& ex = table[(size_t)ids[(size_t)j]];
                CK(cuda_gemv_fused_glu(dt, ex.gate, gs, ex.up, us, F, D, in_glu, (int)act, wh + j * F, g_st));
            }
            for (int j = 0; j < k; ++j) {
                const CudaMoeExpert& ex = table[(size_t)ids[(size_t)j]];
                CudaGemvInput in;
                in.x = wh + j * F;
                CudaGemvMat m{ex.down, ds, D, wy + j * D, nullptr};
                CK(cuda_gemv_fused(dt, &m, 1, F, in, g_st));
            }
            const uint32_t fl = g.range(0, 1) ? kCudaOverlapPrevious : 0;
            CudaMoeGemv P;
            P.table = dt_table, P.ids = dids, P.k = k, P.rows = F, P.n = D, P.stride0 = gs, P.stride1 = us, P.y = dh;
            P.in = in_glu;
            P.act = (int)act;
            const cudaError_t e1 = cuda_moe_glu(dt, P, g_st, fl);
            P.rows = D, P.n = F, P.stride0 = ds, P.stride1 = 0, P.y = dy;
            P.in = CudaGemvInput();
            P.in.x = dh;
            const cudaError_t e2 = cuda_moe_down(dt, P, g_st, fl);
            CK(cudaStreamSynchronize(g_st));
            std::vector<float> gh((size_t)(k * F)), gy((size_t)(k * D)), eh(gh.size()), ey(gy.size());
            CK(cudaMemcpy(gh.data(), dh, gh.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(gy.data(), dy, gy.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(eh.data(), wh, eh.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(ey.data(), wy, ey.size() * 4, cudaMemcpyDeviceToHost));
            const bool ok = e1 == cudaSuccess && e2 == cudaSuccess && !std::memcmp(gh.data(), eh.data(), gh.size() * 4) &&
                            !std::memcmp(gy.data(), ey.data(), gy.size() * 4);
            ok ? ++g_passed : ++g_failed;
            std::printf("%s moe   %-9s E=%-2d k=%d D=%-4" PRId64 " F=%-4" PRId64 " act=%" PRId64 " in=%s%s  %s\n", ok ? "ok  " : "FAIL",
                        dtype_traits(dt).name, E, k, D, F, act, c % 2 ? "rmsnorm·w" : "f32", fl ? " overlap" : "",
                        ok ? "bit-exact vs the single-expert glu / fused gemv" : cudaGetErrorString(e1 != cudaSuccess ? e1 : e2));
            for (uint8_t* b : bufs) CK(cudaFree(b));
            CK(cudaFree(dt_table));
            CK(cudaFree(dids));
            for (float* p : {dx, dnw, dh, dy, wh, wy}) CK(cudaFree(p));
        }
    // the router
    int bad = 0, cases = 0;
    for (int c = 0; c < (quick ? 60 : 200); ++c) {
        MoeConfig mc;
        mc.n_experts = c < 10 ? c + 1 : g.range(1, 300);
        mc.n_used = std::min<int64_t>(mc.n_experts, g.range(1, 8));
        mc.gating_softmax = g.range(0, 1) == 1;
        mc.norm_topk = g.range(0, 1) == 1;
        const int64_t E = mc.n_experts, k = mc.n_used;
        std::vector<float> l((size_t)E);
        const float amp = (float)std::ldexp(1.0, g.range(-6, 5));
        for (auto& v : l) v = g.range(0, 7) == 0 && &v != &l[0] ? l[0] : g.sym(amp);  // some ties
        std::vector<int32_t> hid((size_t)k), did((size_t)k);
        std::vector<float> hw((size_t)k), dw((size_t)k);
        moe_route(mc, l.data(), hid.data(), hw.data());
        float* dl = nullptr;
        float* dwp = nullptr;
        int32_t* dip = nullptr;
        CK(cudaMalloc(&dl, E * 4));
        CK(cudaMalloc(&dwp, k * 4));
        CK(cudaMalloc(&dip, k * 4));
        CK(cudaMemcpy(dl, l.data(), E * 4, cudaMemcpyHostToDevice));
        CK(cuda_moe_route(dl, E, k, mc.gating_softmax, mc.norm_topk, dip, dwp, g_st));
        CK(cudaStreamSynchronize(g_st));
        CK(cudaMemcpy(did.data(), dip, k * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(dw.data(), dwp, k * 4, cudaMemcpyDeviceToHost));
        for (float* p : {dl, dwp}) CK(cudaFree(p));
        CK(cudaFree(dip));
        ++cases;
        if (hid != did || std::memcmp(hw.data(), dw.data(), k * 4)) {
            if (!bad) std::printf("     route E=%" PRId64 " k=%" PRId64 " softmax=%d norm=%d: first rank id %d / %d, w %.9g / %.9g\n", E, k,
                                  (int)mc.gating_softmax, (int)mc.norm_topk, hid[0], did[0], hw[0], dw[0]);
            ++bad;
        }
    }
    bad ? ++g_failed : ++g_passed;
    std::printf("%s moe route: %d cases, ids and weights bit-exact vs the host's moe_route (%d differ)\n", bad ? "FAIL" : "ok  ", cases, bad);
    float y = 0;
    CudaMoeGemv P;
    const bool refused = cuda_moe_glu(EDGE_DTYPE_F32, P, g_st) == cudaErrorInvalidValue &&
                         cuda_moe_route(&y, 0, 1, true, false, nullptr, &y, g_st) == cudaErrorInvalidValue &&
                         cuda_moe_route(&y, 8, 9, true, false, (int32_t*)&y, &y, g_st) == cudaErrorInvalidValue;
    refused ? ++g_passed : ++g_failed;
    std::printf("%s refuses: moe gemv of a float dtype, a route of 0 experts / k > E (cudaErrorInvalidValue)\n", refused ? "ok  " : "FAIL");
}

// A shape the contract excludes is refused without a launch.
// cuda_lowrank_add vs CpuBackend::low_rank's up-projection loop (the same f32 operations in the same order:
// bit-exact). The host loop below uses volatile temporaries so no compiler contracts it into FMAs.
void test_lowrank(Rng& g) {
    const int64_t shapes[][3] = {{1, 1, 1}, {33, 3, 2}, {1023, 16, 3}, {67, 64, 8}, {4097, 8, 1}, {5, 128, 11}};
    for (const auto& sh : shapes) {
        const int64_t rows = sh[0], r = sh[1], ncols = sh[2], ldy = rows + g.range(0, 3);
        const float scale = g.sym(2.0f);
        std::vector<float> B((size_t)(rows * r)), U((size_t)(ncols * r)), Y((size_t)(ncols * ldy));
        for (float& v : B) v = g.sym(1.0f);
        for (float& v : U) v = g.sym(4.0f);
        for (float& v : Y) v = g.sym(8.0f);
        std::vector<float> ref = Y;
        for (int64_t c = 0; c < ncols; ++c)
            for (int64_t o = 0; o < rows; ++o) {
                volatile float sacc = 0.f;
                for (int64_t j = 0; j < r; ++j) {
                    volatile float p = B[(size_t)(o * r + j)] * U[(size_t)(c * r + j)];
                    sacc = sacc + p;
                }
                volatile float t = scale * sacc;
                ref[(size_t)(c * ldy + o)] = ref[(size_t)(c * ldy + o)] + t;
            }
        float *dB = nullptr, *dU = nullptr, *dY = nullptr;
        CK(cudaMalloc(&dB, B.size() * 4));
        CK(cudaMalloc(&dU, U.size() * 4));
        CK(cudaMalloc(&dY, Y.size() * 4));
        CK(cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dU, U.data(), U.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dY, Y.data(), Y.size() * 4, cudaMemcpyHostToDevice));
        CK(cuda_lowrank_add(dB, rows, r, dU, ncols, scale, dY, ldy, 0));
        CK(cudaDeviceSynchronize());
        std::vector<float> y(Y.size());
        CK(cudaMemcpy(y.data(), dY, y.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaFree(dB));
        CK(cudaFree(dU));
        CK(cudaFree(dY));
        const bool ok = std::memcmp(y.data(), ref.data(), y.size() * 4) == 0;
        ok ? ++g_passed : ++g_failed;
        std::printf("%s lowrank_add rows=%-5" PRId64 " r=%-3" PRId64 " ncols=%-2" PRId64 " ldy=row+%" PRId64 "%s\n",
                    ok ? "ok  " : "FAIL", rows, r, ncols, ldy - rows, ok ? "  bit-exact" : "");
    }
    const bool refused = cuda_lowrank_add(nullptr, 1, 1, nullptr, 1, 1.f, nullptr, 1, 0) == cudaErrorInvalidValue;
    cudaGetLastError();
    refused ? ++g_passed : ++g_failed;
    std::printf("%s refuses: lowrank_add without buffers (cudaErrorInvalidValue)\n", refused ? "ok  " : "FAIL");
}

// cuda_gemm_mma vs the reference gemm, bit for bit (gemm_mma.cu forms and adds each block term as the reference).
void test_gemm_mma(Rng& g, bool quick) {
    int dev = 0, major = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    if (!cuda_gemm_mma_supported(EDGE_DTYPE_Q8_0, major)) {
        std::printf("skip gemm_mma: compute capability %d < 8\n", major);
        return;
    }
    const int64_t rows_list[] = {1, 63, 65, 130}, ncols_list[] = {1, 17, 33, 64, 100}, nblocks[] = {1, 5, 129};
    int idx = 0;
    for (int dt = 0; dt < (int)EDGE_DTYPE_COUNT; ++dt) {
        const DTypeTraits& tr = dtype_traits(dt);
        if (!cuda_gemm_mma_supported(dt, major)) continue;
        for (int64_t nbk : nblocks)
            for (int64_t rows : rows_list)
                for (int64_t ncols : ncols_list) {
                    if ((++idx % (quick ? 7 : 2)) != 0 && !(rows == 65 && ncols == 33)) continue;
                    const int64_t n = (nbk * 32 + tr.block - 1) / tr.block * tr.block;
                    const int bn = g.range(0, 1) ? 64 : 32;
                    const int wmis = g.range(0, 15), wpad = g.range(0, 17);
                    const int64_t rb = (int64_t)dtype_row_bytes(dt, n), w_stride = rb + wpad;
                    const int64_t x_stride = n / 32 + g.range(0, 3), ldy = rows + g.range(0, 3);
                    std::vector<uint8_t> W((size_t)(w_stride * rows), 0);
                    for (int64_t r = 0; r < rows; ++r) fill_row(g, dt, W.data() + r * w_stride, n, true);
                    std::vector<uint8_t> X((size_t)(x_stride * ncols) * sizeof(block_q8x), 0);
                    std::vector<float> xf((size_t)n);
                    for (int64_t c = 0; c < ncols; ++c) {
                        const float amp = (float)std::ldexp(1.0, g.range(-6, 6));
                        for (float& v : xf) v = g.sym(amp);
                        if (g.range(0, 3) == 0) std::memset(xf.data(), 0, 32 * 4);  // a zero block
                        quantize_q8x_ref(xf.data(), reinterpret_cast<block_q8x*>(X.data()) + c * x_stride, n);
                    }
                    std::vector<float> yref((size_t)(ldy * ncols), 0.0f);
                    ref_gemm(dt)(W.data(), w_stride, rows, n, X.data(), x_stride, ncols, yref.data(), ldy);
                    uint8_t *dW = nullptr, *dX = nullptr;
                    float* dY = nullptr;
                    CK(cudaMalloc(&dW, W.size() + 512));
                    CK(cudaMalloc(&dX, X.size()));
                    CK(cudaMalloc(&dY, yref.size() * 4));
                    // on g_st, which is non-blocking: a cudaMemset on the legacy stream could land after the kernel
                    CK(cudaMemcpyAsync(dW + wmis, W.data(), W.size(), cudaMemcpyHostToDevice, g_st));
                    CK(cudaMemcpyAsync(dX, X.data(), X.size(), cudaMemcpyHostToDevice, g_st));
                    CK(cudaMemsetAsync(dY, 0xFF, yref.size() * 4, g_st));
                    CK(cuda_gemm_mma(dt, dW + wmis, w_stride, rows, n, dX, x_stride, ncols, dY, ldy, g_st, bn));
                    std::vector<uint32_t> yb(yref.size());
                    CK(cudaMemcpyAsync(yb.data(), dY, yb.size() * 4, cudaMemcpyDeviceToHost, g_st));
                    CK(cudaStreamSynchronize(g_st));
                    CK(cudaFree(dW));
                    CK(cudaFree(dX));
                    CK(cudaFree(dY));
                    int64_t bad = 0;
                    char first[200] = "";
                    for (int64_t c = 0; c < ncols; ++c)
                        for (int64_t r = 0; r < ldy; ++r) {
                            const uint32_t b = yb[(size_t)(c * ldy + r)];
                            uint32_t want;
                            std::memcpy(&want, &yref[(size_t)(c * ldy + r)], 4);
                            if (r >= rows) want = 0xFFFFFFFFu;  // the gap stays poisoned
                            if (b != want && !bad++) {
                                float y;
                                std::memcpy(&y, &b, 4);
                                std::snprintf(first, sizeof first, "Y[c=%" PRId64 ", r=%" PRId64 "] = %.9g, ref %.9g", c, r, y,
                                              yref[(size_t)(c * ldy + r)]);
                            }
                        }
                    bad ? ++g_failed : ++g_passed;
                    std::printf("%s gemm_mma %-9s bn=%d rows=%-4" PRId64 " n=%-5" PRId64 " ncols=%-3" PRId64 " wmis=%-2d%s%s\n",
                                bad ? "FAIL" : "ok  ", tr.name, bn, rows, n, ncols, wmis, bad ? "  " : "  bit-exact", first);
                }
    }
    const bool refused = cuda_gemm_mma(EDGE_DTYPE_F16, nullptr, 64, 1, 32, nullptr, 1, 1, nullptr, 1, g_st) == cudaErrorInvalidValue &&
                         cuda_gemm_mma(EDGE_DTYPE_INT4_64, nullptr, 34, 1, 32, nullptr, 1, 1, nullptr, 1, g_st) == cudaErrorInvalidValue;
    cudaGetLastError();
    refused ? ++g_passed : ++g_failed;
    std::printf("%s refuses: gemm_mma of a float dtype / n not a block multiple\n", refused ? "ok  " : "FAIL");
}

void test_refusals() {
    float* dy = nullptr;
    uint8_t* dw = nullptr;
    CK(cudaMalloc(&dy, 64));
    CK(cudaMalloc(&dw, 4096));
    struct {
        const char* what;
        cudaError_t got;
    } cases[] = {
        {"n not a block multiple", cuda_gemv(EDGE_DTYPE_INT4_64, dw, 34, 1, 32, dw, 1, 1, dy, 1, 0)},
        {"misaligned X", cuda_gemv(EDGE_DTYPE_Q8_0, dw, 34, 1, 32, dw + 2, 1, 1, dy, 1, 0)},
        {"ldy < rows", cuda_gemv(EDGE_DTYPE_F32, dw, 16, 2, 4, dw, 4, 2, dy, 1, 0)},
        {"unknown dtype", cuda_gemv(EDGE_DTYPE_I32, dw, 16, 1, 4, dw, 4, 1, dy, 1, 0)},
        {"quantize n % 32", cuda_quantize_q8x(dy, 40, 40, 1, reinterpret_cast<block_q8x*>(dw), 2, 0)},
    };
    for (auto& c : cases) {
        const bool ok = c.got == cudaErrorInvalidValue;
        ok ? ++g_passed : ++g_failed;
        std::printf("%s refuses: %s (%s)\n", ok ? "ok  " : "FAIL", c.what, cudaGetErrorName(c.got));
    }
    cudaGetLastError();
    CK(cudaFree(dy));
    CK(cudaFree(dw));
}

// ---------------------------------------------------------------- bench

struct Shape {
    int64_t rows, cols;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

double bench_copy_gbs() {
    const size_t bytes = (size_t)1 << 30;
    void *a = nullptr, *b = nullptr;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; ++i) CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
    std::vector<double> ms;
    for (int i = 0; i < 15; ++i) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        float t = 0;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaFree(a));
    CK(cudaFree(b));
    return 2.0 * (double)bytes / (median(ms) * 1e-3) / 1e9;
}

// Fast random valid weights for timing (values do not matter, finite ones and sane scales do).
void fill_fast(uint64_t seed, int dt, uint8_t* p, int64_t rows, int64_t rb, int64_t n) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    const size_t bytes = (size_t)(rows * rb);
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        std::memcpy(p + i, &s, 8);
    }
    const DTypeTraits& tr = dtype_traits(dt);
    if (dt == EDGE_DTYPE_F32) {
        for (size_t i = 0; i + 4 <= bytes; i += 4) p[i + 3] &= 0xBF;  // |x| < 2
    } else if (tr.block == 1) {
        for (size_t i = 0; i + 2 <= bytes; i += 2) p[i + 1] &= 0xBF;
    } else {
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < n / tr.block; ++b) {
                uint8_t* q = p + r * rb + b * tr.block_bytes;
                if (is_mx(dt)) q[0] = (uint8_t)(120 + (q[0] & 7));
                else q[1] = (uint8_t)(0x30 | (q[1] & 0x83));  // f16 exponent 12..15
                if (is_int4a(dt)) q[3] = (uint8_t)(0x30 | (q[3] & 0x83));
                if (dt == EDGE_DTYPE_MXFP8)
                    for (int i = 1; i < tr.block_bytes; ++i)
                        if ((q[i] & 0x7F) == 0x7F) q[i] ^= 1;
            }
    }
}

struct BenchRow {
    int dt;
    Shape sh;
    int64_t ncols;
    bool overlap;
    double us, gbs, pct;
    int copies;
};

// --bench-mma: cuda_gemm_mma (bn 32, 64) vs cuda_gemv at the 1.2B shape's prefill matmuls, 128 tokens; medians of
// 20 timed launches after 3 warm-ups (events), random weights. TOPS = 2·rows·n·ncols / time.
int run_bench_mma(const std::string& only) {
    const int64_t shapes[][2] = {{2048, 2048}, {512, 2048}, {8192, 2048}, {2048, 8192}, {49152, 2048}};
    const int64_t T = 128;
    CK(cudaStreamCreateWithFlags(&g_st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::printf("| dtype | rows x n | T | gemv us | mma bn32 us | mma bn64 us | best TOPS | speed-up |\n|---|---|---|---|---|---|---|---|\n");
    for (int dt : {(int)EDGE_DTYPE_INT4_64, (int)EDGE_DTYPE_INT4_32, (int)EDGE_DTYPE_NL4_32, (int)EDGE_DTYPE_Q8_0}) {
        const DTypeTraits& tr = dtype_traits(dt);
        if (!only.empty() && only.find(tr.name) == std::string::npos) continue;
        for (const auto& sh : shapes) {
            const int64_t rows = sh[0], n = sh[1], rb = (int64_t)dtype_row_bytes(dt, n);
            uint8_t *dW = nullptr, *dX = nullptr;
            float* dY = nullptr;
            std::vector<uint8_t> W((size_t)(rb * rows));
            fill_fast(7, dt, W.data(), rows, rb, n);
            std::vector<uint8_t> X((size_t)(T * (n / 32)) * sizeof(block_q8x));
            Rng g{3};
            std::vector<float> xf((size_t)n);
            for (int64_t c = 0; c < T; ++c) {
                for (float& v : xf) v = g.sym(1.0f);
                quantize_q8x_ref(xf.data(), reinterpret_cast<block_q8x*>(X.data()) + c * (n / 32), n);
            }
            CK(cudaMalloc(&dW, W.size()));
            CK(cudaMalloc(&dX, X.size()));
            CK(cudaMalloc(&dY, (size_t)(rows * T) * 4));
            CK(cudaMemcpy(dW, W.data(), W.size(), cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dX, X.data(), X.size(), cudaMemcpyHostToDevice));
            CK(cudaDeviceSynchronize());  // g_st is non-blocking
            double us[3];
            for (int v = 0; v < 3; ++v) {
                std::vector<double> ts;
                for (int it = 0; it < 23; ++it) {
                    CK(cudaEventRecord(e0, g_st));
                    if (v == 0)
                        CK(cuda_gemv(dt, dW, rb, rows, n, dX, n / 32, T, dY, rows, g_st));
                    else
                        CK(cuda_gemm_mma(dt, dW, rb, rows, n, dX, n / 32, T, dY, rows, g_st, v == 1 ? 32 : 64));
                    CK(cudaEventRecord(e1, g_st));
                    CK(cudaEventSynchronize(e1));
                    float ms = 0;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (it >= 3) ts.push_back(ms * 1e3);
                }
                us[v] = median(ts);
            }
            const double best = std::min(us[1], us[2]);
            std::printf("| %s | %" PRId64 "x%" PRId64 " | %" PRId64 " | %.1f | %.1f | %.1f | %.1f | %.1fx |\n", tr.name, rows, n, T, us[0],
                        us[1], us[2], 2.0 * rows * n * T / (best * 1e-6) / 1e12, us[0] / best);
            CK(cudaFree(dW));
            CK(cudaFree(dX));
            CK(cudaFree(dY));
        }
    }
    return 0;
}

int run_bench(const char* json_path, const std::vector<int64_t>& ncols_list, int64_t mb, const std::string& only) {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const double copy = bench_copy_gbs();
    std::printf("device %s, %d SMs, L2 %d MB; device-to-device copy %.0f GB/s (read + write)\n", prop.name,
                prop.multiProcessorCount, prop.l2CacheSize >> 20, copy);
    double floor_us[2];
    for (int ov = 0; ov < 2; ++ov) {  // launch floor: an empty kernel per graph node
        cudaStream_t s0;
        CK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(132);
        cfg.blockDim = dim3(256);
        cfg.stream = s0;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = ov;
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeRelaxed));
        for (int i = 0; i < 1000; ++i) CK(cudaLaunchKernelEx(&cfg, empty_kernel));
        CK(cudaStreamEndCapture(s0, &graph));
        CK(cudaGraphInstantiate(&exec, graph, 0));
        cudaEvent_t a, b;
        CK(cudaEventCreate(&a));
        CK(cudaEventCreate(&b));
        std::vector<double> us;
        for (int rep = 0; rep < 7; ++rep) {
            CK(cudaEventRecord(a, s0));
            CK(cudaGraphLaunch(exec, s0));
            CK(cudaEventRecord(b, s0));
            CK(cudaEventSynchronize(b));
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, a, b));
            if (rep) us.push_back(ms);  // ms per 1000 launches = us per launch
        }
        floor_us[ov] = median(us);
        CK(cudaGraphExecDestroy(exec));
        CK(cudaGraphDestroy(graph));
        CK(cudaEventDestroy(a));
        CK(cudaEventDestroy(b));
        CK(cudaStreamDestroy(s0));
    }
    std::printf("launch floor (empty 132x256 kernel per CUDA-graph node): %.2f us plain, %.2f us overlap launch\n",
                floor_us[0], floor_us[1]);
    const Shape shapes[] = {{4096, 4096}, {2048, 8192}, {4096, 14336}, {8192, 8192},
                            {576, 1536},  {1536, 576},  {1536, 768},   {768, 1536}};
    std::vector<BenchRow> out;
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int dt = 0; dt < (int)EDGE_DTYPE_COUNT; ++dt) {
        if (!cuda_gemv_supported((uint32_t)dt)) continue;
        const DTypeTraits& tr = dtype_traits(dt);
        if (!only.empty() && ("," + only + ",").find("," + std::string(tr.name) + ",") == std::string::npos) continue;
        for (const Shape& sh : shapes) {
            const int64_t rb = (int64_t)dtype_row_bytes(dt, sh.cols);
            if (rb == 0) continue;  // cols not a multiple of the block
            const int64_t wbytes = rb * sh.rows;
            const int64_t slot = (wbytes + 255) / 256 * 256;
            int copies = (int)std::max<int64_t>(3, (mb << 20) / wbytes + 1);
            copies = std::min(copies, 2048);
            std::vector<uint8_t> host((size_t)wbytes);
            fill_fast((uint64_t)dt * 131 + sh.rows, dt, host.data(), sh.rows, rb, sh.cols);
            uint8_t* dW = nullptr;
            CK(cudaMalloc(&dW, (size_t)(slot * copies)));
            for (int i = 0; i < copies; ++i) CK(cudaMemcpy(dW + slot * i, host.data(), (size_t)wbytes, cudaMemcpyHostToDevice));
            const int64_t maxc = *std::max_element(ncols_list.begin(), ncols_list.end());
            std::vector<float> xf((size_t)(sh.cols * maxc));
            Rng g{(uint64_t)dt};
            for (float& v : xf) v = g.sym(1.0f);
            float* dXf = nullptr;
            block_q8x* dXq = nullptr;
            float* dY = nullptr;
            CK(cudaMalloc(&dXf, xf.size() * 4));
            CK(cudaMalloc(&dXq, (size_t)(sh.cols / 32 * maxc) * sizeof(block_q8x) + 64));
            CK(cudaMalloc(&dY, (size_t)(sh.rows * maxc) * 4));
            CK(cudaMemcpy(dXf, xf.data(), xf.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaDeviceSynchronize());  // st is non-blocking: the copy's DMA may still be in flight
            if (tr.int_dot) CK(cuda_quantize_q8x(dXf, sh.cols, sh.cols, maxc, dXq, sh.cols / 32, st));
            const void* dX = tr.int_dot ? (const void*)dXq : (const void*)dXf;
            const int64_t xs = tr.int_dot ? sh.cols / 32 : sh.cols;
            for (int64_t nc : ncols_list)
            for (int ov = 0; ov < 2; ++ov) {
                cudaGraph_t graph;
                cudaGraphExec_t exec;
                CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeRelaxed));
                for (int i = 0; i < copies; ++i)
                    CK(cuda_gemv(dt, dW + slot * i, rb, sh.rows, sh.cols, dX, xs, nc, dY, sh.rows, st,
                                 ov ? kCudaOverlapPrevious : 0));
                CK(cudaStreamEndCapture(st, &graph));
                CK(cudaGraphInstantiate(&exec, graph, 0));
                for (int i = 0; i < 2; ++i) CK(cudaGraphLaunch(exec, st));
                std::vector<double> us;
                for (int rep = 0; rep < 9; ++rep) {
                    CK(cudaEventRecord(e0, st));
                    CK(cudaGraphLaunch(exec, st));
                    CK(cudaEventRecord(e1, st));
                    CK(cudaEventSynchronize(e1));
                    float ms = 0;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    us.push_back(1e3 * ms / copies);
                }
                CK(cudaGetLastError());
                CK(cudaGraphExecDestroy(exec));
                CK(cudaGraphDestroy(graph));
                const double t = median(us);
                const double gbs = (double)wbytes / (t * 1e-6) / 1e9;
                out.push_back(BenchRow{dt, sh, nc, ov == 1, t, gbs, 100.0 * gbs / copy, copies});
                std::fprintf(stderr, "%s %" PRId64 "x%" PRId64 " ncols=%" PRId64 "%s: %.2f us, %.0f GB/s (%.0f%%)\n", tr.name,
                             sh.rows, sh.cols, nc, ov ? " overlap" : "", t, gbs, 100.0 * gbs / copy);
            }
            CK(cudaFree(dW));
            CK(cudaFree(dXf));
            CK(cudaFree(dXq));
            CK(cudaFree(dY));
        }
    }
    if (json_path) {
        FILE* f = std::fopen(json_path, "w");
        if (!f) {
            std::fprintf(stderr, "cannot write %s\n", json_path);
            return 1;
        }
        std::fprintf(f, "{\n  \"device\": \"%s\", \"sms\": %d, \"l2_bytes\": %d, \"copy_gbs\": %.1f,\n"
                     "  \"launch_floor_us\": %.3f, \"launch_floor_overlap_us\": %.3f,\n  \"rows\": [\n",
                     prop.name, prop.multiProcessorCount, prop.l2CacheSize, copy, floor_us[0], floor_us[1]);
        for (size_t i = 0; i < out.size(); ++i) {
            const BenchRow& b = out[i];
            std::fprintf(f,
                         "    {\"dtype\": \"%s\", \"rows\": %" PRId64 ", \"cols\": %" PRId64 ", \"ncols\": %" PRId64
                         ", \"overlap\": %s, \"us\": %.3f, \"gbs\": %.1f, \"pct_copy\": %.1f, \"copies\": %d}%s\n",
                         dtype_traits(b.dt).name, b.sh.rows, b.sh.cols, b.ncols, b.overlap ? "true" : "false", b.us, b.gbs,
                         b.pct, b.copies,
                         i + 1 < out.size() ? "," : "");
        }
        std::fprintf(f, "  ]\n}\n");
        std::fclose(f);
    }
    for (int64_t nc : ncols_list)
    for (int ov = 0; ov < 2; ++ov) {
        std::printf("\nGEMV, ncols=%" PRId64 "%s: GB/s of weight bytes (%% of the %.0f GB/s copy), median of one launch in a CUDA graph\n\n",
                    nc, ov ? ", overlap launch (kCudaOverlapPrevious)" : ", plain launch", copy);
        std::printf("| dtype |");
        for (const Shape& sh : shapes) std::printf(" %" PRId64 "x%" PRId64 " |", sh.rows, sh.cols);
        std::printf("\n|---|");
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); ++i) std::printf("---|");
        std::printf("\n");
        for (int dt = 0; dt < (int)EDGE_DTYPE_COUNT; ++dt) {
            if (!cuda_gemv_supported((uint32_t)dt)) continue;
            bool present = false;
            for (const BenchRow& b : out) present = present || b.dt == dt;
            if (!present) continue;
            std::printf("| %s |", dtype_traits(dt).name);
            for (const Shape& sh : shapes) {
                bool any = false;
                for (const BenchRow& b : out)
                    if (b.dt == dt && b.ncols == nc && b.overlap == (ov == 1) && b.sh.rows == sh.rows && b.sh.cols == sh.cols) {
                        std::printf(" %.0f (%.0f%%) |", b.gbs, b.pct);
                        any = true;
                    }
                if (!any) std::printf(" - |");
            }
            std::printf("\n");
        }
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaStreamDestroy(st));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t seed = 1;
    bool quick = false, bench = false, bench_mma = false;
    const char* json = nullptr;
    std::vector<int64_t> ncols_list = {1};
    int64_t mb = 256;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--quick") quick = true;
        else if (a == "--verbose") g_verbose = true;
        else if (a == "--bench") bench = true;
        else if (a == "--bench-mma") bench_mma = true;
        else if (a == "--json" && i + 1 < argc) json = argv[++i];
        else if (a == "--mb" && i + 1 < argc) mb = std::strtoll(argv[++i], nullptr, 10);
        else if (a == "--dtypes" && i + 1 < argc) only = argv[++i];
        else if (a == "--ncols" && i + 1 < argc) {
            ncols_list.clear();
            for (const char* p = argv[++i]; *p;) {
                char* end = nullptr;
                const long v = std::strtol(p, &end, 10);
                if (end == p || v < 1) {
                    std::fprintf(stderr, "bad --ncols\n");
                    return 2;
                }
                ncols_list.push_back(v);
                p = *end == ',' ? end + 1 : end;
            }
        } else {
            std::fprintf(stderr, "usage: %s [--seed S] [--quick] [--verbose] | --bench [--json FILE] [--ncols 1,8] [--mb 256] [--dtypes a,b]\n",
                         argv[0]);
            return 2;
        }
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line into a pipe too: a crash keeps what ran
    int ndev = 0;
    const cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        std::printf("SKIP: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return 0;
    }
    if (bench) return run_bench(json, ncols_list, mb, only);
    if (bench_mma) return run_bench_mma(only);
    CK(cudaStreamCreateWithFlags(&g_st, cudaStreamNonBlocking));
    Rng g{seed};
    test_refusals();
    test_quantize(g);
    test_lowrank(g);
    test_gemm_mma(g, quick);
    test_gemv(g, quick);
    test_fused(g, quick);
    test_glu(g, quick);
    test_moe(g, quick);
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
