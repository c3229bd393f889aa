// gemm_mxfp_avx2.cpp — gemm_fn for mxfp4 (E2M1) and mxfp6 (E2M3) × block_q8x activations, AVX2.
// The reference is gemm_mxfp4_ref / gemm_mxfp6_ref; the driver and its accuracy are in gemm_q8x_avx2.h.
// The decode is that of gemm_mxfp_avx512vnni.cpp with AVX2 instructions: vpshufb tables hold
// value + K as unsigned bytes (K = 12 for 2·E2M1, 64 for 8·E2M3, both small enough for vpmaddubsw);
// block scales are E8M0/2 and E8M0/8 as in the reference.
//   mxfp4: the 16 nibble bytes in both 128-bit halves, the upper half shifted right by 4.
//   mxfp6: vpermq + vpshufb put the 24-bit group g in 32-bit lane g; a word blend and a byte blend
//          move its 6-bit fields to the lane's four bytes; codes with bit 4 set (e ≥ 2) come from a
//          table, the others are c & 15; bit 5 negates.
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct MxFp4 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 17;
    static constexpr bool kAsym = false;
    static constexpr bool kSign = false;
    static constexpr int kNarrow = 1;  // u ≤ 24: 8 codes' products fit in int16
    static constexpr int kKey = 12;

    static __m256i block(const uint8_t* p) {
        const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(p + 1)));
        const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
        // 12 + 2·E2M1(code)
        const __m256i lut = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,
                                             12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
        return _mm256_shuffle_epi8(lut, idx);
    }
    static void load_pair(const uint8_t* row, int64_t j, int elems, __m256i* w) {
        const uint8_t* p = row + 2 * j * kBlockBytes;
        w[0] = block(p);
        w[1] = elems == 64 ? block(p + kBlockBytes) : w[0];
    }
    static __m256 scale(__m256i dw) { return _mm256_mul_ps(e8m0x8(dw), _mm256_set1_ps(0.5f)); }
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

struct MxFp6 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 25;
    static constexpr bool kAsym = false;
    static constexpr bool kSign = false;
    static constexpr int kNarrow = 0;  // u ≤ 124: 4 codes' products do not fit in int16
    static constexpr int kKey = 64;

    static __m256i block(const uint8_t* p) {
        // 24 bytes (6 dwords, masked: never past the block); halves = bytes 0..15 | 8..23.
        __m256i v = _mm256_maskload_epi32((const int*)(p + 1), _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0));
        v = _mm256_permute4x64_epi64(v, 0x94);  // qwords 0, 1, 1, 2
        v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,
                                                    4, 5, 6, -1, 7, 8, 9, -1, 10, 11, 12, -1, 13, 14, 15, -1));
        v = _mm256_blend_epi16(v, _mm256_slli_epi32(v, 4), 0xAA);  // words: c1|c0 and c3|c2
        v = _mm256_blendv_epi8(v, _mm256_slli_epi32(v, 2), _mm256_set1_epi32((int)0xFF00FF00u));
        const __m256i c = _mm256_and_si256(v, _mm256_set1_epi8(0x3F));
        const __m256i lo = _mm256_or_si256(_mm256_and_si256(c, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(0x40));
        const __m256i hi = _mm256_shuffle_epi8(_mm256_setr_epi8(80, 82, 84, 86, 88, 90, 92, 94, 96, 100, 104, 108, 112, 116, 120, 124,
                                                                80, 82, 84, 86, 88, 90, 92, 94, 96, 100, 104, 108, 112, 116, 120, 124), c);
        const __m256i pos = _mm256_blendv_epi8(lo, hi, _mm256_slli_epi16(c, 3));  // bit 4 -> bit 7
        return _mm256_blendv_epi8(pos, _mm256_sub_epi8(_mm256_set1_epi8((char)128), pos), _mm256_slli_epi16(c, 2));  // bit 5
    }
    static void load_pair(const uint8_t* row, int64_t j, int elems, __m256i* w) {
        const uint8_t* p = row + 2 * j * kBlockBytes;
        w[0] = block(p);
        w[1] = elems == 64 ? block(p + kBlockBytes) : w[0];
    }
    static __m256 scale(__m256i dw) { return _mm256_mul_ps(e8m0x8(dw), _mm256_set1_ps(0.125f)); }
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

}  // namespace

void gemm_mxfp4_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                     float* Y, int64_t ldy) {
    gemm_q8x_avx2<MxFp4>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxfp6_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                     float* Y, int64_t ldy) {
    gemm_q8x_avx2<MxFp6>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
