// gemm_mxfp_avx512vnni.cpp — gemm_fn for mxfp4 (E2M1) and mxfp6 (E2M3) × block_q8x activations,
// AVX-512 VNNI. The reference is gemm_mxfp4_ref / gemm_mxfp6_ref; the driver and its accuracy are in
// gemm_q8x_avx512vnni.h.
//
// Both element formats are small integers once scaled: 2·E2M1 ∈ {0, ±1, ±2, ±3, ±4, ±6, ±8, ±12} and
// 8·E2M3 ∈ [-60, 60]; the factor goes into the block scale (E8M0/2, E8M0/8, as the reference). The
// codes are looked up with vpshufb in 16-byte tables that already hold value + K (K = 12 for E2M1,
// 64 for E2M3), i.e. the unsigned operand vpdpbusd needs; the driver removes K·Σq. With u ≤ 24, the
// E2M1 lane sums of 8 codes fit in int16 (first tree level narrow).
//   mxfp4: 16 nibble bytes per block, split-half (byte j: element j low, j + 16 high); a step of two
//          blocks is [b0 | b0 | b1 | b1] in 128-bit lanes, low nibbles in lanes 0 and 2.
//   mxfp6: 24 bytes per block, element 4g+i = bits 6i..6i+5 of the little-endian 24-bit group g.
//          vpermq + vpshufb put group g in 32-bit lane g; two shift-and-select steps (vpternlogd)
//          move its four 6-bit fields to the four bytes of the lane. A code c = s|ee|mmm is 8·E2M3 =
//          c & 15 when bit 4 is clear (e ≤ 1) and a table entry when set; bit 5 is the sign.
#include "gemm_q8x_avx512vnni.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct MxFp4 : Steps32<MxFp4> {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 17;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 12;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 1;  // 8·24·127 < 2^15
    static constexpr int kScaleBytes = 1;
    static __m512i key(int) { return _mm512_set1_epi8(12); }
    static float act_mult(int) { return 1.0f; }

    static __m512i step(const uint8_t* p, int nb) {
        // 12 + 2·E2M1(code): {0,1,2,3,4,6,8,12} and their negatives
        const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
        return _mm512_shuffle_epi8(lut, nibble_step<1, kBlockBytes>(p, nb));
    }
    static __m512 scale(__m512i dw) { return _mm512_mul_ps(e8m0x16(dw), _mm512_set1_ps(0.5f)); }
    static __m512 offset(__m512i) { return _mm512_setzero_ps(); }
};

struct MxFp6 : Steps32<MxFp6> {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 25;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 64;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 0;  // 4·124·127 does not fit in int16
    static constexpr int kScaleBytes = 1;
    static __m512i key(int) { return _mm512_set1_epi8(64); }
    static float act_mult(int) { return 1.0f; }

    static __m512i step(const uint8_t* p, int nb) {
        // Masked loads: 24 bytes per block, never past the block.
        const __m256i b0 = _mm256_maskz_loadu_epi8(0x00FFFFFFu, p + 1);
        const __m256i b1 = nb == 2 ? _mm256_maskz_loadu_epi8(0x00FFFFFFu, p + kBlockBytes + 1) : b0;
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1);
        // 128-bit lanes: bytes 0..15 | 8..23 of each block; then group g -> 32-bit lane g (top byte 0).
        v = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 1, 2, 4, 5, 5, 6), v);
        const __m512i groups = _mm512_set_epi8(
            -1, 15, 14, 13, -1, 12, 11, 10, -1, 9, 8, 7, -1, 6, 5, 4, -1, 11, 10, 9, -1, 8, 7, 6, -1, 5, 4, 3, -1, 2, 1, 0,
            -1, 15, 14, 13, -1, 12, 11, 10, -1, 9, 8, 7, -1, 6, 5, 4, -1, 11, 10, 9, -1, 8, 7, 6, -1, 5, 4, 3, -1, 2, 1, 0);
        v = _mm512_shuffle_epi8(v, groups);
        // x = c3|c2|c1|c0 (6 bits each). Low 16 bits <- x, high 16 <- x << 4: words c1|c0 and c3|c2.
        v = _mm512_ternarylogic_epi32(v, _mm512_slli_epi32(v, 4), _mm512_set1_epi32(0x0000FFFF), 0xE4);
        // Bytes 0, 2 <- v, bytes 1, 3 <- v << 2; then keep 6 bits per byte.
        v = _mm512_ternarylogic_epi32(v, _mm512_slli_epi32(v, 2), _mm512_set1_epi32(0x00FF00FF), 0xE4);
        const __m512i c = _mm512_and_si512(v, _mm512_set1_epi8(0x3F));
        // 64 + |8·E2M3|: c & 15 for e ≤ 1, else the table (e = 2: 16..30 step 2, e = 3: 32..60 step 4).
        const __m512i lo = _mm512_ternarylogic_epi32(c, _mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x40), 0xEA);
        const __m512i hi = _mm512_shuffle_epi8(
            _mm512_broadcast_i32x4(_mm_setr_epi8(80, 82, 84, 86, 88, 90, 92, 94, 96, 100, 104, 108, 112, 116, 120, 124)), c);
        const __m512i pos = _mm512_mask_blend_epi8(_mm512_test_epi8_mask(c, _mm512_set1_epi8(0x10)), lo, hi);
        // Negative codes: 64 - |v| = 128 - pos.
        return _mm512_mask_sub_epi8(pos, _mm512_test_epi8_mask(c, _mm512_set1_epi8(0x20)), _mm512_set1_epi8((char)128), pos);
    }
    static __m512 scale(__m512i dw) { return _mm512_mul_ps(e8m0x16(dw), _mm512_set1_ps(0.125f)); }
    static __m512 offset(__m512i) { return _mm512_setzero_ps(); }
};

}  // namespace

void gemm_mxfp4_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                           int64_t ncols, float* Y, int64_t ldy) {
    gemm_q8x<MxFp4>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxfp6_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                           int64_t ncols, float* Y, int64_t ldy) {
    gemm_q8x<MxFp6>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
