// gemm_q5_0_avx2.cpp — gemm_fn for q5_0 (GGML Q5_0: f16 d, u32 qh of 5th bits, 16 split-half nibble
// bytes) × block_q8x activations, AVX2. The reference is gemm_q5_0_ref; the driver and its accuracy are
// in gemm_q8x_avx2.h. A block is one 32-element step: the nibbles as int4_32 decodes them (the 16 bytes
// in both 128-bit halves, the upper half shifted right by 4), OR 0x10 where bit i of qh is set (qh
// broadcast, byte i/8 of it spread over byte i by vpshufb, tested against 1 << (i % 8)). Codes u = q are
// 0..31 and the "- 16" is the driver's K = 16; 8 products u·q fit in int16 (8·31·127 < 2^15): kNarrow 2.
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct Q5_0 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 22;
    static constexpr bool kAsym = false;
    static constexpr bool kSign = false;
    static constexpr int kNarrow = 2;
    static constexpr int kKey = 16;

    static __m256i block(const uint8_t* p) {
        const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(p + 6)));
        const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
        uint32_t qh;
        std::memcpy(&qh, p + 2, 4);
        const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                                   _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
    static void load_pair(const uint8_t* row, int64_t j, int elems, __m256i* w) {
        const uint8_t* p = row + 2 * j * kBlockBytes;
        w[0] = block(p);
        w[1] = elems == 64 ? block(p + kBlockBytes) : w[0];
    }
    static __m256 scale(__m256i dw) { return f16x8(dw); }
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

}  // namespace

void gemm_q5_0_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Q5_0>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
