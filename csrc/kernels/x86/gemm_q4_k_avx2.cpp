// gemm_q4_k_avx2.cpp — gemm_fn for q4_k (GGML Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales / mins,
// 128 nibble bytes per 256 elements) × block_q8x activations, AVX2. The reference is gemm_q4_k_ref; the
// driver and its accuracy are in gemm_q8x_avx2.h. A pair of steps (64 elements, sub-blocks 2c and 2c + 1
// of super-block j / 4, c = j % 4) is one 32-byte load: low nibbles = step 0, high nibbles = step 1.
// Codes u = q ≤ 15 (K = 0, kNarrow 2 as int4); each activation block's scale d·sc_j and offset
// −dmin·m_j come from sub_scale (exact f32 products, as the reference), the offset through x.s (kAsym).
#include "../../common.h"
#include "../../quant.h"
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct Q4K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 144;
    static constexpr bool kAsym = true;
    static constexpr bool kSign = false;
    static constexpr int kNarrow = 2;
    static constexpr int kKey = 0;

    static void load_pair(const uint8_t* row, int64_t j, int, __m256i* w) {
        const __m256i v = _mm256_loadu_si256((const __m256i*)(row + (j / 4) * kBlockBytes + 16 + 32 * (j % 4)));
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        w[0] = _mm256_and_si256(v, m4);
        w[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    static void sub_scale(const uint8_t* blk, int j, float* s, float* m) {
        uint16_t d, dmin;
        std::memcpy(&d, blk, 2);
        std::memcpy(&dmin, blk + 2, 2);
        int sc, mn;
        q4_k_scale_min(blk + 4, j, &sc, &mn);
        *s = f16_to_f32(d) * (float)sc;
        *m = -(f16_to_f32(dmin) * (float)mn);
    }
    static __m256 scale(__m256i) { return _mm256_setzero_ps(); }  // unused: sub_scale
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

}  // namespace

void gemm_q4_k_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Q4K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
