// gemm_int4_avx2.cpp — gemm_fn for int4_32/64/128 and int4a_32/64/128 × block_q8x activations, AVX2.
// The reference is gemm_int4_B_ref / gemm_int4a_B_ref; the driver and its accuracy are in
// gemm_q8x_avx2.h. A step is one 32-element activation block, so each step's weight vector is the
// low or the high nibbles of 16 or 32 bytes of a block (split-half order: byte j = elements j and
// j + B/2), already in the activation's element order:
//   B = 32:  the block's 16 bytes in both 128-bit halves, the upper half shifted right by 4 (vpsrlvd);
//   B = 64:  32 bytes: low nibbles = step 0, high nibbles = step 1;
//   B = 128: 64 bytes: pair 0 = low nibbles of bytes 0..31 and 32..63, pair 1 = their high nibbles.
// int4's "- 8" is the driver's K = 8; int4a has K = 0 and the m·x.s term.
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

template <int B, bool A>
struct Int4 {
    static constexpr int kBlock = B;
    static constexpr int kData = A ? 4 : 2;  // bytes before the nibbles
    static constexpr int kBlockBytes = kData + B / 2;
    static constexpr bool kAsym = A;
    static constexpr int kNarrow = 3;  // u ≤ 15: 16 codes' products fit in int16 (block_sums16)
    static constexpr bool kSign = false;
    static constexpr int kKey = A ? 0 : 8;

    static __m256i block32(const uint8_t* p) { return nibbles32(p + kData); }
    static void load_pair(const uint8_t* row, int64_t j, int elems, __m256i* w) {
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        if (B == 32) {
            const uint8_t* p = row + 2 * j * kBlockBytes;
            w[0] = block32(p);
            w[1] = elems == 64 ? block32(p + kBlockBytes) : w[0];
        } else if (B == 64) {
            const __m256i v = _mm256_loadu_si256((const __m256i*)(row + j * kBlockBytes + kData));
            w[0] = _mm256_and_si256(v, m4);
            w[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        } else {
            const uint8_t* p = row + (j >> 1) * kBlockBytes + kData;
            __m256i a = _mm256_loadu_si256((const __m256i*)p), b = _mm256_loadu_si256((const __m256i*)(p + 32));
            if (j & 1) a = _mm256_srli_epi16(a, 4), b = _mm256_srli_epi16(b, 4);
            w[0] = _mm256_and_si256(a, m4);
            w[1] = _mm256_and_si256(b, m4);
        }
    }
    static __m256 scale(__m256i dw) { return f16x8(dw); }
    static __m256 offset(__m256i dw) { return f16x8(_mm256_srli_epi32(dw, 16)); }
};

}  // namespace

void gemm_int4_32_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                       float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int4<32, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4_64_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                       float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int4<64, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4_128_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                        float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int4<128, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4a_32_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                        float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int4<32, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4a_64_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                        float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int4<64, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4a_128_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                         float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int4<128, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
