// gemm_int4_avx512vnni.cpp — gemm_fn for int4_32/64/128 and int4a_32/64/128 (4-bit codes, f16 scale,
// int4a also an f16 offset) × block_q8x activations, AVX-512 VNNI. The reference is
// gemm_int4_B_ref / gemm_int4a_B_ref; the driver and its accuracy are in gemm_q8x_avx512vnni.h.
//
// Split-half nibbles: in a B-block, byte j holds element j (low nibble) and j + B/2 (high nibble), so
// one AND gives the first half of the block and a shift + AND the second, each already in the
// activation's element order. vpdpbusd multiplies these unsigned codes (0..15) with the signed
// activation codes; int4's "- 8" is the driver's K = 8 (int4a: K = 0, plus m·x.s per block).
// Single-column calls (GEMV) skip the shift: `byte & 0xF0` is 16·code, with K = 128 and x.d/16 for
// those blocks (B = 32: both halves are in one block, so the tree multiplies the low half's sum by 16
// and every block uses x.d/16); multi-column tiles shift instead, so the lane sums stay narrow.
//   B = 32:  a step (64 elements) is two blocks: [lo b0 | hi b0 | lo b1 | hi b1] in 128-bit lanes.
//   B = 64:  a step is one block, its 32 nibble bytes broadcast to both halves: [lo | hi].
//   B = 128: a pair (two steps) is one block: lo (elements 0..63), hi (64..127).
#include "gemm_q8x_avx512vnni.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

template <int B, bool A, bool kInPlace>
struct Int4 {
    static constexpr int kBlock = B;
    static constexpr int kData = A ? 4 : 2;  // bytes before the nibbles
    static constexpr int kBlockBytes = kData + B / 2;
    static constexpr bool kAsym = A;
    static constexpr int kKey = A ? 0 : 8;
    static constexpr int kScaleBytes = 2;
    static constexpr bool kF0 = kInPlace;              // high nibbles used in place as 16·code
    static constexpr int kNarrow = kF0 ? 0 : 2;        // u ≤ 15: 16 codes' products fit in int16
    static constexpr bool kLoTimes16 = kF0 && B == 32;  // both halves in one block: scale the low one

    // kF0 (B = 64/128): the high nibbles stay in place (byte & 0xF0 = 16·code), saving a shift per
    // step; their activation blocks get K = 16·8 and x.d/16 (exact, a power of two). The lane sums
    // are then too wide for the narrow tree, which costs more in a multi-column tile than the shift.
    static __m512i key(int st) {
        const __m512i k8 = _mm512_set1_epi8(8), k128 = _mm512_set1_epi8((char)0x80);
        if (kF0 && B == 32) return _mm512_mask_blend_epi32(0xF0F0, k8, k128);
        if (kF0 && B == 64) return _mm512_inserti64x4(k8, _mm512_castsi512_si256(k128), 1);
        if (kF0 && B == 128) return st == 0 ? k8 : k128;
        return k8;
    }
    static float act_mult(int g) {
        if (kF0 && B == 32) return 0.0625f;  // every block sum is 16·isum
        if (kF0 && B == 64) return (g & 1) ? 0.0625f : 1.0f;
        if (kF0 && B == 128) return g >= 2 ? 0.0625f : 1.0f;
        return 1.0f;
    }

    // One step from `nb` (1 or 2) blocks at p (B = 32) or one block (B = 64).
    static __m512i step(const uint8_t* p, int nb) {
        if (B == 32) {
            const __m128i b0 = _mm_loadu_si128((const __m128i*)(p + kData));
            const __m128i b1 = nb == 2 ? _mm_loadu_si128((const __m128i*)(p + kBlockBytes + kData)) : b0;
            const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(b0)),
                                                 _mm256_broadcastsi128_si256(b1), 1);
            if (kF0) return _mm512_and_si512(v, _mm512_mask_blend_epi32(0xF0F0, _mm512_set1_epi8(0x0F), _mm512_set1_epi8((char)0xF0)));
            return nibbles(v, 0xFF00FF00u);
        }
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(p + kData)));
        if (kF0) return _mm512_and_si512(v, _mm512_inserti64x4(_mm512_set1_epi8(0x0F), _mm256_set1_epi8((char)0xF0), 1));
        return nibbles(v, 0xFFFF0000u);
    }
    static void load_pair(const uint8_t* p, int elems, __m512i* w) {
        if (B == 128) {
            const __m512i v = _mm512_loadu_si512(p + kData);
            w[0] = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
            w[1] = kF0 ? _mm512_and_si512(v, _mm512_set1_epi8((char)0xF0))
                       : _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
        } else if (B == 64) {
            w[0] = step(p, 1);
            w[1] = elems > 64 ? step(p + kBlockBytes, 1) : w[0];
        } else {
            w[0] = step(p, elems >= 64 ? 2 : 1);
            w[1] = elems > 64 ? step(p + 2 * kBlockBytes, elems == 128 ? 2 : 1) : w[0];
        }
    }
    static __m512 scale(__m512i dw) { return f16x16(dw); }
    static __m512 offset(__m512i dw) { return f16x16(_mm512_srli_epi32(dw, 16)); }
};

}  // namespace

void gemm_int4_32_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                            int64_t ncols, float* Y, int64_t ldy) {
    if (ncols == 1) gemm_q8x<Int4<32, false, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
    else gemm_q8x<Int4<32, false, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4_64_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                            int64_t ncols, float* Y, int64_t ldy) {
    if (ncols == 1) gemm_q8x<Int4<64, false, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
    else gemm_q8x<Int4<64, false, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4_128_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                             int64_t ncols, float* Y, int64_t ldy) {
    if (ncols == 1) gemm_q8x<Int4<128, false, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
    else gemm_q8x<Int4<128, false, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4a_32_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                             int64_t ncols, float* Y, int64_t ldy) {
    if (ncols == 1) gemm_q8x<Int4<32, true, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
    else gemm_q8x<Int4<32, true, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4a_64_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                             int64_t ncols, float* Y, int64_t ldy) {
    if (ncols == 1) gemm_q8x<Int4<64, true, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
    else gemm_q8x<Int4<64, true, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_int4a_128_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                              int64_t ncols, float* Y, int64_t ldy) {
    if (ncols == 1) gemm_q8x<Int4<128, true, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
    else gemm_q8x<Int4<128, true, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
