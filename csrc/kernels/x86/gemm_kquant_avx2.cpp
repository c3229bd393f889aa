// gemm_kquant_avx2.cpp — gemm_fn for the dtypes imported exactly from GGML files × block_q8x activations,
// AVX2: q5_0 (f16 d, u32 qh of 5th bits, 16 split-half nibble bytes), q4_k (f16 d and dmin, 12 bytes of
// 6-bit scales / mins, 128 nibble bytes per 256 elements) and q6_k (128 bytes of low nibbles, 64 of high
// 2 bits, 16 int8 scales, f16 d per 256 elements). The references are gemm_q5_0_ref / gemm_q4_k_ref /
// gemm_q6_k_ref; the driver and its accuracy are in gemm_q8x_avx2.h.
//   q5_0  A block is one step: the nibbles as int4_32 decodes them (the 16 bytes in both 128-bit halves,
//         the upper half shifted right by 4), OR 0x10 where bit i of qh is set (qh broadcast, byte i/8
//         spread over byte i by vpshufb, tested against 1 << (i % 8)). Codes u = q are 0..31 and the
//         "- 16" is the driver's K = 16; 8 products u·q fit in int16 (8·31·127 < 2^15): kNarrow 2.
//   q4_k  A pair (sub-blocks 2c, 2c + 1 of a super-block) is one 32-byte load: low nibbles = step 0, high
//         = step 1; u = q ≤ 15 (K = 0, kNarrow 3 as int4). super_scales gives the 8 scales d·sc_j and
//         offsets −dmin·m_j of 4 rows at once (exact f32 products, as the reference; the offsets go
//         through x.s, kAsym) from q4_k_x86.h's codes of the 4 rows.
//   q6_k  Pair c of a super-block (activation blocks 2c, 2c + 1 = groups g0 = 2(c % 2), g0 + 1 of half
//         h = c / 2) reads ql[64h ..+32) and ql[64h + 32 ..+32) (low nibbles for c even, high for c odd)
//         and qh[32h ..+32) shifted by 2·g0 and 2·g0 + 2: the signed codes q − 32 in [−32, 31], dotted by
//         the sign trick. Each activation block spans two 16-element sub-blocks: their int8 scales weight
//         the vpmaddubsw pair sums in the vpmaddwd that widens them (lane_scale: |sum| ≤ 2·32·127·128,
//         int32; kNarrow 0), so the tree's sums are the reference's exact isum; the block scale is d.
#include "gemm_q8x_avx2.h"
#include "q4_k_x86.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct Q5_0 : F16Block32<Q5_0> {
    static constexpr int kBlockBytes = 22;
    static constexpr bool kSign = false;
    static constexpr int kNarrow = 2;
    static constexpr int kKey = 16;

    static __m256i block(const uint8_t* p) {
        const __m256i lo = nibbles32(p + 6);
        uint32_t qh;
        std::memcpy(&qh, p + 2, 4);
        const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                                   _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
};

struct Q4K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 144;
    static constexpr bool kAsym = true;
    static constexpr bool kSign = false;
    static constexpr int kNarrow = 3;
    static constexpr int kKey = 0;

    static void load_pair(const uint8_t* row, int64_t j, int, __m256i* w) {
        const __m256i v = _mm256_loadu_si256((const __m256i*)(row + (j / 4) * kBlockBytes + 16 + 32 * (j % 4)));
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        w[0] = _mm256_and_si256(v, m4);
        w[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    // Pair q (sub-blocks 2q, 2q + 1): bytes 2(q % 2) + g of the codes of sub-blocks 0..3 (q < 2) or 4..7.
    static void super_scales(const uint8_t* const* row, __m256* sw, __m256* m) {
        const Q4kCodes4 k = q4_k_codes4(row);
        const __m256i dd = _mm256_broadcastsi128_si256(k.d);
        const __m256 d = f16x8(dd), dmin = f16x8(_mm256_srli_epi32(dd, 16));
        const __m256i ff = _mm256_set1_epi32(0xFF);
        for (int q = 0; q < 4; ++q) {
            const __m256i sh = _mm256_add_epi32(_mm256_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8), _mm256_set1_epi32(16 * (q % 2)));
            const __m256i sc = _mm256_srlv_epi32(_mm256_broadcastsi128_si256(k.sc[q / 2]), sh);
            const __m256i mn = _mm256_srlv_epi32(_mm256_broadcastsi128_si256(k.mn[q / 2]), sh);
            sw[q] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_and_si256(sc, ff)));
            m[q] = _mm256_xor_ps(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_and_si256(mn, ff))), _mm256_set1_ps(-0.0f));
        }
    }
};

struct Q6K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 210;
    static constexpr bool kAsym = false;
    static constexpr bool kSign = true;
    static constexpr int kNarrow = 0;
    static constexpr int kKey = 0;
    static constexpr bool kLaneScale = true;

    static void load_pair(const uint8_t* row, int64_t j, int, __m256i* w) {
        const uint8_t* b = row + (j / 4) * kBlockBytes;
        const int c = (int)(j % 4), h = c / 2, g0 = 2 * (c % 2);
        const __m128i sh = _mm_cvtsi32_si128(4 * (c % 2));
        const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03), k32 = _mm256_set1_epi8(32);
        const __m256i a = _mm256_srl_epi16(_mm256_loadu_si256((const __m256i*)(b + 64 * h)), sh);
        const __m256i bb = _mm256_srl_epi16(_mm256_loadu_si256((const __m256i*)(b + 64 * h + 32)), sh);
        const __m256i q = _mm256_loadu_si256((const __m256i*)(b + 128 + 32 * h));
        const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * g0)), m3);
        const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * g0 + 2)), m3);
        w[0] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(h0, 4)), k32);
        w[1] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(bb, m4), _mm256_slli_epi16(h1, 4)), k32);
    }
    // Activation block k of the chunk: its two int8 scales (one 16-bit word), sign-extended into the
    // int16 lanes 0-7 (sc_a) and 8-15 (sc_b): vpshufb puts each byte in the high half of its lanes.
    static __m256i lane_scale(const uint8_t* row, int k) {
        int16_t two;
        std::memcpy(&two, row + (k / 8) * kBlockBytes + 192 + 2 * (k % 8), 2);
        const __m256i hi = _mm256_setr_epi8(-1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0,
                                            -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
        return _mm256_srai_epi16(_mm256_shuffle_epi8(_mm256_set1_epi16(two), hi), 8);
    }
    static void super_scales(const uint8_t* const* row, __m256* sw, __m256*) {
        int32_t t[4];  // the f16 d at bytes 208..209: the top half of the word at 206 (inside the block)
        for (int r = 0; r < 4; ++r) std::memcpy(&t[r], row[r] + 206, 4);
        const __m256i dw = _mm256_broadcastsi128_si256(_mm_setr_epi32(t[0], t[1], t[2], t[3]));
        sw[0] = sw[1] = sw[2] = sw[3] = f16x8(_mm256_srli_epi32(dw, 16));
    }
};

}  // namespace

void gemm_q5_0_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Q5_0>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_q4_k_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Q4K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_q6_k_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Q6K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
