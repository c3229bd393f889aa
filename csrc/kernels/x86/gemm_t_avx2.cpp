// gemm_t_avx2.cpp — gemm_t_fn (backward.h) for every stored dtype with AVX2 + FMA:
//   dX[c·ldx + j] += Σ_r W[r][j] · dY[c·ldy + r]
// Tiled: W is dequantized 32 rows × 128 columns at a time into a 16 KB stack tile (f32 weights are
// read in place), with the level's dequant kernels (bit-exact with the reference), then every column c
// of dY applies the tile: 32 dX values per column sit in 4 registers while the tile's rows stream from
// L1 (two columns at a time: each loaded W vector feeds 2 FMAs). Loops (gemm_t_tiled.h): column strips of 128,
// then groups of 32 dY columns, then row tiles (a tile is dequantized once per column group: ncols/32
// times in all, cheap next to its 32·ncols FMAs per element), so the dX strip in use stays in L1.
// Order: for every dX element r still ascends (the tiles ascend), with FMA instead of multiply + add,
// so |Δ| vs the reference ≤ rows · 2^-24 · Σ|W·dY| — inside backward.h's 1e-5 bound for rows < 160;
// beyond that the (rare, cancellation-free) worst case is the same f32 accumulation error the
// reference has. Tails: 8-lane vectors, then scalar, for n not a multiple of 32 (f32/f16/bf16).
// Pointers: W any byte alignment; dY / dX naturally aligned floats.
#include "avx2_util.h"
#include "x86.h"
#include "../gemm_t_tiled.h"

namespace edge {

void dequant_mxfp6_ref(const void* src, float* y, int64_t n);  // ref/dequant_ref.cpp (no AVX2 variant)

namespace {

using namespace x86;


// dX[c][0..len) += Σ_{r < rt} T_r[0..len) · dY[c][r], T_r at (const char*)T + r·ts bytes (unaligned ok).
void tile_apply(const char* T, int64_t ts, int64_t rt, int64_t len, const float* dY, int64_t ldy, int64_t ncols, float* dX,
                int64_t ldx) {
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        int64_t c = 0;
        for (; c + 2 <= ncols; c += 2) {
            float* x0 = dX + c * ldx + j;
            float* x1 = x0 + ldx;
            const float* y0 = dY + c * ldy;
            const float* y1 = y0 + ldy;
            __m256 a0 = _mm256_loadu_ps(x0), a1 = _mm256_loadu_ps(x0 + 8), a2 = _mm256_loadu_ps(x0 + 16), a3 = _mm256_loadu_ps(x0 + 24);
            __m256 b0 = _mm256_loadu_ps(x1), b1 = _mm256_loadu_ps(x1 + 8), b2 = _mm256_loadu_ps(x1 + 16), b3 = _mm256_loadu_ps(x1 + 24);
            for (int64_t r = 0; r < rt; ++r) {
                const float* t = (const float*)(T + r * ts) + j;
                const __m256 w0 = _mm256_loadu_ps(t), w1 = _mm256_loadu_ps(t + 8), w2 = _mm256_loadu_ps(t + 16), w3 = _mm256_loadu_ps(t + 24);
                const __m256 d0 = _mm256_broadcast_ss(y0 + r), d1 = _mm256_broadcast_ss(y1 + r);
                a0 = _mm256_fmadd_ps(w0, d0, a0), a1 = _mm256_fmadd_ps(w1, d0, a1);
                a2 = _mm256_fmadd_ps(w2, d0, a2), a3 = _mm256_fmadd_ps(w3, d0, a3);
                b0 = _mm256_fmadd_ps(w0, d1, b0), b1 = _mm256_fmadd_ps(w1, d1, b1);
                b2 = _mm256_fmadd_ps(w2, d1, b2), b3 = _mm256_fmadd_ps(w3, d1, b3);
            }
            _mm256_storeu_ps(x0, a0), _mm256_storeu_ps(x0 + 8, a1), _mm256_storeu_ps(x0 + 16, a2), _mm256_storeu_ps(x0 + 24, a3);
            _mm256_storeu_ps(x1, b0), _mm256_storeu_ps(x1 + 8, b1), _mm256_storeu_ps(x1 + 16, b2), _mm256_storeu_ps(x1 + 24, b3);
        }
        if (c < ncols) {
            float* x0 = dX + c * ldx + j;
            const float* y0 = dY + c * ldy;
            __m256 a0 = _mm256_loadu_ps(x0), a1 = _mm256_loadu_ps(x0 + 8), a2 = _mm256_loadu_ps(x0 + 16), a3 = _mm256_loadu_ps(x0 + 24);
            for (int64_t r = 0; r < rt; ++r) {
                const float* t = (const float*)(T + r * ts) + j;
                const __m256 d0 = _mm256_broadcast_ss(y0 + r);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(t), d0, a0), a1 = _mm256_fmadd_ps(_mm256_loadu_ps(t + 8), d0, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(t + 16), d0, a2), a3 = _mm256_fmadd_ps(_mm256_loadu_ps(t + 24), d0, a3);
            }
            _mm256_storeu_ps(x0, a0), _mm256_storeu_ps(x0 + 8, a1), _mm256_storeu_ps(x0 + 16, a2), _mm256_storeu_ps(x0 + 24, a3);
        }
    }
    for (; j + 8 <= len; j += 8)
        for (int64_t c = 0; c < ncols; ++c) {
            float* x0 = dX + c * ldx + j;
            __m256 a = _mm256_loadu_ps(x0);
            for (int64_t r = 0; r < rt; ++r)
                a = _mm256_fmadd_ps(_mm256_loadu_ps((const float*)(T + r * ts) + j), _mm256_broadcast_ss(dY + c * ldy + r), a);
            _mm256_storeu_ps(x0, a);
        }
    for (; j < len; ++j)
        for (int64_t c = 0; c < ncols; ++c) {
            float a = dX[c * ldx + j];
            for (int64_t r = 0; r < rt; ++r) a += load_f32u(T + r * ts + 4 * j) * dY[c * ldy + r];
            dX[c * ldx + j] = a;
        }
}

}  // namespace

#define EDGE_GEMM_T_AVX2(name, deq, block, bytes) EDGE_GEMM_T_TILED(name, tile_apply, deq, block, bytes)

EDGE_GEMM_T_AVX2(gemm_t_f32_avx2, nullptr, 1, 4)
EDGE_GEMM_T_AVX2(gemm_t_f16_avx2, dequant_f16_avx2, 1, 2)
EDGE_GEMM_T_AVX2(gemm_t_bf16_avx2, dequant_bf16_avx2, 1, 2)
EDGE_GEMM_T_AVX2(gemm_t_q8_0_avx2, dequant_q8_0_avx2, 32, 34)
EDGE_GEMM_T_AVX2(gemm_t_int4_32_avx2, dequant_int4_32_avx2, 32, 18)
EDGE_GEMM_T_AVX2(gemm_t_int4_64_avx2, dequant_int4_64_avx2, 64, 34)
EDGE_GEMM_T_AVX2(gemm_t_int4_128_avx2, dequant_int4_128_avx2, 128, 66)
EDGE_GEMM_T_AVX2(gemm_t_int4a_32_avx2, dequant_int4a_32_avx2, 32, 20)
EDGE_GEMM_T_AVX2(gemm_t_int4a_64_avx2, dequant_int4a_64_avx2, 64, 36)
EDGE_GEMM_T_AVX2(gemm_t_int4a_128_avx2, dequant_int4a_128_avx2, 128, 68)
EDGE_GEMM_T_AVX2(gemm_t_mxint8_avx2, dequant_mxint8_avx2, 32, 33)
EDGE_GEMM_T_AVX2(gemm_t_mxfp8_avx2, dequant_mxfp8_avx2, 32, 33)
EDGE_GEMM_T_AVX2(gemm_t_mxfp6_avx2, dequant_mxfp6_ref, 32, 25)
EDGE_GEMM_T_AVX2(gemm_t_mxfp4_avx2, dequant_mxfp4_avx2, 32, 17)
EDGE_GEMM_T_AVX2(gemm_t_nl4_32_avx2, dequant_nl4_32_avx2, 32, 18)

#undef EDGE_GEMM_T_AVX2

}  // namespace edge
