// gemm_float_avx512.cpp — gemm_fn for the float-activation dtypes f32, f16, bf16 and mxfp8 with
// AVX-512 (F+BW+VL+DQ; F16C for f16). The reference is gemm_{f32,f16,bf16,mxfp8}_ref.
//
// Y[c*ldy + r] = Σ_i w(r,i) · x(c,i); X column c at (const float*)X + c*x_stride; f32/f16/bf16: any
// n >= 1 (the last n % 16 elements are summed in scalar), mxfp8: n % 32 == 0; any alignment. Weights are widened to f32 exactly, 16 at a time: f16 by vcvtph2ps, bf16 by a shift,
// mxfp8 as E4M3 -> f16 bits ((c & 0x7F) << 7, sign to bit 15) -> f32, times 2^8 and the block's
// 2^(e-127) (both exact: every E4M3 value times a power of two is representable unless it overflows,
// where the reference's bsum·scale overflows too; the NaN codes 0x7F/0xFF, which no writer emits,
// read as ±480 here, not NaN). Then f32 FMAs into 16-lane accumulators of tiles
// of 8 rows × 1 column (GEMV) or 4 rows × up to 4 columns (GEMM, each weight vector used C times).
// Accuracy: the lanes reorder the f32 sum; vs the reference (itself ≤ (n+2)·2^-24·Σ|w_i x_i| from the
// exact value) the difference is ≤ (n + 32)·2^-24·Σ|w_i x_i| (tests/test_kernels_simd.py).
// Rows past the end of a tile reuse its last row (valid memory, results dropped). The schedule (row
// blocks, column groups, the last columns) is sched::gemm_float (gemm_schedule.h); this file is the
// decode and the tile.
#include <cstring>

#include "../gemm_schedule.h"
#include "avx512_util.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

// Elements i..i+15 (i % 16 == 0) of a row as f32.
struct F32 {
    static constexpr bool kTail = true;  // has a scalar element accessor for the tail
    static float at(const uint8_t* row, int64_t i) { return load_f32u(row + 4 * i); }
    static __m512 load(const uint8_t* row, int64_t i) { return _mm512_loadu_ps((const float*)row + i); }
};
struct F16 {
    static constexpr bool kTail = true;
    static float at(const uint8_t* row, int64_t i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        return _cvtsh_ss(h);
    }
    static __m512 load(const uint8_t* row, int64_t i) {
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(row + 2 * i)));
    }
};
struct BF16 {
    static constexpr bool kTail = true;
    static float at(const uint8_t* row, int64_t i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        const uint32_t bits = (uint32_t)h << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    }
    static __m512 load(const uint8_t* row, int64_t i) {
        const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(row + 2 * i)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    }
};
struct MxFp8 {
    static constexpr bool kTail = false;  // blocks of 32: n % 32 == 0
    static __m512 load(const uint8_t* row, int64_t i) {
        const uint8_t* blk = row + (i >> 5) * 33;
        // E4M3 s.eeee.mmm -> f16 s.0eeee.mmm0000000 (bias 15 instead of 7: the value / 2^8, exactly,
        // subnormals included); the sign moves from bit 14 to 15 by adding bit 14 to itself.
        __m256i h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(blk + 1 + (i & 16)))), 7);
        h = _mm256_add_epi16(h, _mm256_and_si256(h, _mm256_set1_epi16(0x4000)));
        const __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
        return _mm512_mul_ps(v, _mm512_set1_ps(e8m0_to_f32u(blk[0])));
    }
    static float e8m0_to_f32u(uint8_t e) {
        const uint32_t bits = e ? (uint32_t)e << 23 : 0x00400000u;
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    }
};

// The tile policy of sched::gemm_float (gemm_schedule.h): 8 rows × 1 column (decode) or 4 rows × up to
// 4 columns (each weight vector used C times).
template <class Wt>
struct Tile : sched::FloatShape<8, 4, 4, true, 512 << 10> {  // row blocks of 512 KiB of weights (L2)
    template <int R, int C>
    static void tile(const uint8_t* w, int64_t w_stride, int valid_rows, int64_t n, const float* x, int64_t x_stride,
                     float* Y, int64_t ldy) {
        const uint8_t* row[R];
        for (int r = 0; r < R; ++r) row[r] = w + (r < valid_rows ? r : valid_rows - 1) * w_stride;
        __m512 acc[R][C];
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
        const int64_t nv = Wt::kTail ? n & ~(int64_t)15 : n;  // whole vectors; the rest in scalar below
        for (int64_t i = 0; i < nv; i += 16) {
            __m512 xv[C];
            for (int c = 0; c < C; ++c) xv[c] = _mm512_loadu_ps(x + c * x_stride + i);
            for (int r = 0; r < R; ++r) {
                const __m512 wv = Wt::load(row[r], i);
                for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
            }
        }
        for (int c = 0; c < C; ++c)
            for (int r = 0; r < valid_rows; ++r) {
                float y = hsum(acc[r][c]);
                if constexpr (Wt::kTail)
                    for (int64_t i = nv; i < n; ++i) y += Wt::at(row[r], i) * load_f32u(x + c * x_stride + i);
                std::memcpy(Y + c * ldy + r, &y, 4);
            }
    }
};

}  // namespace

void gemm_f32_avx512(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                     float* Y, int64_t ldy) {
    sched::gemm_float<Tile<F32>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_f16_avx512(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                     float* Y, int64_t ldy) {
    sched::gemm_float<Tile<F16>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_bf16_avx512(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                      float* Y, int64_t ldy) {
    sched::gemm_float<Tile<BF16>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxfp8_avx512(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                       float* Y, int64_t ldy) {
    sched::gemm_float<Tile<MxFp8>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
