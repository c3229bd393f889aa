// gemm_t_avx512.cpp — gemm_t_fn (backward.h) for every stored dtype with AVX-512 (F+BW+VL+DQ):
//   dX[c·ldx + j] += Σ_r W[r][j] · dY[c·ldy + r]
// The structure of gemm_t_avx2.cpp (a 32 × 128 stack tile dequantized with the level's dequant kernels,
// which are the AVX2 ones: bit-exact with the reference; f32 weights in place), with 16-lane vectors:
// 32 dX values per column in 2 registers, four columns at a time (each loaded W vector feeds 4 FMAs),
// masked loads / stores for n not a multiple of 16. Order: r ascending per element with FMA, bound as
// gemm_t_avx2.cpp. Pointers: W any byte alignment; dY / dX naturally aligned floats.
#include "avx512_util.h"
#include "x86.h"
#include "../gemm_t_tiled.h"

namespace edge {

void dequant_mxfp6_ref(const void* src, float* y, int64_t n);  // ref/dequant_ref.cpp (no x86 variant)

namespace {

using namespace x86;


inline __mmask16 lanes(int64_t k) { return k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1); }

// dX[c][0..len) += Σ_{r < rt} T_r[0..len) · dY[c][r], T_r at (const char*)T + r·ts bytes (unaligned ok).
void tile_apply(const char* T, int64_t ts, int64_t rt, int64_t len, const float* dY, int64_t ldy, int64_t ncols, float* dX,
                int64_t ldx) {
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        int64_t c = 0;
        for (; c + 4 <= ncols; c += 4) {
            float* x = dX + c * ldx + j;
            const float* y = dY + c * ldy;
            __m512 a0 = _mm512_loadu_ps(x), a1 = _mm512_loadu_ps(x + 16);
            __m512 b0 = _mm512_loadu_ps(x + ldx), b1 = _mm512_loadu_ps(x + ldx + 16);
            __m512 c0 = _mm512_loadu_ps(x + 2 * ldx), c1 = _mm512_loadu_ps(x + 2 * ldx + 16);
            __m512 e0 = _mm512_loadu_ps(x + 3 * ldx), e1 = _mm512_loadu_ps(x + 3 * ldx + 16);
            for (int64_t r = 0; r < rt; ++r) {
                const float* t = (const float*)(T + r * ts) + j;
                const __m512 w0 = _mm512_loadu_ps(t), w1 = _mm512_loadu_ps(t + 16);
                __m512 d = _mm512_set1_ps(y[r]);
                a0 = _mm512_fmadd_ps(w0, d, a0), a1 = _mm512_fmadd_ps(w1, d, a1);
                d = _mm512_set1_ps(y[ldy + r]);
                b0 = _mm512_fmadd_ps(w0, d, b0), b1 = _mm512_fmadd_ps(w1, d, b1);
                d = _mm512_set1_ps(y[2 * ldy + r]);
                c0 = _mm512_fmadd_ps(w0, d, c0), c1 = _mm512_fmadd_ps(w1, d, c1);
                d = _mm512_set1_ps(y[3 * ldy + r]);
                e0 = _mm512_fmadd_ps(w0, d, e0), e1 = _mm512_fmadd_ps(w1, d, e1);
            }
            _mm512_storeu_ps(x, a0), _mm512_storeu_ps(x + 16, a1);
            _mm512_storeu_ps(x + ldx, b0), _mm512_storeu_ps(x + ldx + 16, b1);
            _mm512_storeu_ps(x + 2 * ldx, c0), _mm512_storeu_ps(x + 2 * ldx + 16, c1);
            _mm512_storeu_ps(x + 3 * ldx, e0), _mm512_storeu_ps(x + 3 * ldx + 16, e1);
        }
        for (; c < ncols; ++c) {
            float* x = dX + c * ldx + j;
            const float* y = dY + c * ldy;
            __m512 a0 = _mm512_loadu_ps(x), a1 = _mm512_loadu_ps(x + 16);
            for (int64_t r = 0; r < rt; ++r) {
                const float* t = (const float*)(T + r * ts) + j;
                const __m512 d = _mm512_set1_ps(y[r]);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(t), d, a0), a1 = _mm512_fmadd_ps(_mm512_loadu_ps(t + 16), d, a1);
            }
            _mm512_storeu_ps(x, a0), _mm512_storeu_ps(x + 16, a1);
        }
    }
    for (; j < len; j += 16) {
        const __mmask16 m = lanes(len - j);
        for (int64_t c = 0; c < ncols; ++c) {
            float* x = dX + c * ldx + j;
            __m512 a = _mm512_maskz_loadu_ps(m, x);
            for (int64_t r = 0; r < rt; ++r)
                a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, (const float*)(T + r * ts) + j), _mm512_set1_ps(dY[c * ldy + r]), a);
            _mm512_mask_storeu_ps(x, m, a);
        }
    }
}

}  // namespace

#define EDGE_GEMM_T_AVX512(name, deq, block, bytes) EDGE_GEMM_T_TILED(name, tile_apply, deq, block, bytes)

EDGE_GEMM_T_AVX512(gemm_t_f32_avx512, nullptr, 1, 4)
EDGE_GEMM_T_AVX512(gemm_t_f16_avx512, dequant_f16_avx2, 1, 2)
EDGE_GEMM_T_AVX512(gemm_t_bf16_avx512, dequant_bf16_avx2, 1, 2)
EDGE_GEMM_T_AVX512(gemm_t_q8_0_avx512, dequant_q8_0_avx2, 32, 34)
EDGE_GEMM_T_AVX512(gemm_t_int4_32_avx512, dequant_int4_32_avx2, 32, 18)
EDGE_GEMM_T_AVX512(gemm_t_int4_64_avx512, dequant_int4_64_avx2, 64, 34)
EDGE_GEMM_T_AVX512(gemm_t_int4_128_avx512, dequant_int4_128_avx2, 128, 66)
EDGE_GEMM_T_AVX512(gemm_t_int4a_32_avx512, dequant_int4a_32_avx2, 32, 20)
EDGE_GEMM_T_AVX512(gemm_t_int4a_64_avx512, dequant_int4a_64_avx2, 64, 36)
EDGE_GEMM_T_AVX512(gemm_t_int4a_128_avx512, dequant_int4a_128_avx2, 128, 68)
EDGE_GEMM_T_AVX512(gemm_t_mxint8_avx512, dequant_mxint8_avx2, 32, 33)
EDGE_GEMM_T_AVX512(gemm_t_mxfp8_avx512, dequant_mxfp8_avx2, 32, 33)
EDGE_GEMM_T_AVX512(gemm_t_mxfp6_avx512, dequant_mxfp6_ref, 32, 25)
EDGE_GEMM_T_AVX512(gemm_t_mxfp4_avx512, dequant_mxfp4_avx2, 32, 17)
EDGE_GEMM_T_AVX512(gemm_t_nl4_32_avx512, dequant_nl4_32_avx2, 32, 18)

#undef EDGE_GEMM_T_AVX512

}  // namespace edge
