// gemm_kquant_avx512vnni.cpp — gemm_fn for the dtypes imported exactly from GGML files (q5_0, q4_k, q6_k;
// layouts in quant.h) × block_q8x activations, AVX-512 VNNI. The references are gemm_q5_0_ref /
// gemm_q4_k_ref / gemm_q6_k_ref; the driver and its accuracy are in gemm_q8x_avx512vnni.h.
//   q5_0  A step is two blocks, [lo b0 | hi b0 | lo b1 | hi b1] nibbles in 128-bit lanes (as nl4_32), plus
//         16 where the element's qh bit is set: the two u32 qh are one 64-bit byte mask. u = q in 0..31,
//         vpdpbusd with K = 16; 8 products (u - 16)·q fit in int16 (8·16·127 < 2^15): kNarrow 2.
//   q4_k  Pair h of a super-block = sub-blocks 4h..4h+3 = qs[64h ..+64): step st is [lo | hi] of the 32
//         bytes qs[64h + 32st ..] (as int4_64). u = q ≤ 15, K = 0, kNarrow 2 (as int4); the scales d·sc_j
//         and offsets −dmin·m_j of 4 rows from q4_k_x86.h's codes (exact f32 products, as the reference),
//         the offsets through x.s (kAsym).
//   q6_k  Pair h = half h: step st = groups 2st, 2st + 1, the low (st = 0) or high nibbles of ql[64h ..+64)
//         with bits 2g, 2g + 1 of qh[32h ..+32) (both 256-bit halves, per-half shifts): the signed codes
//         q − 32. Each 16 elements have their own int8 scale, so the dot is vpmaddubsw of |w| with ±q
//         (kLaneScale) and a vpmaddwd by the scales of the 4 sixteen-element runs of the step: per int32
//         lane |Σ| ≤ 2·(2·32·127)·128 (exact), kNarrow 0; the block scale is d.
#include "gemm_q8x_avx512vnni.h"
#include "q4_k_x86.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct Q5_0 : Steps32<Q5_0> {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 22;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 16;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 2;
    static constexpr int kScaleBytes = 2;
    static __m512i key(int) { return _mm512_set1_epi8(16); }
    static float act_mult(int) { return 1.0f; }

    static __m512i step(const uint8_t* p, int nb) {
        uint32_t h0, h1;
        std::memcpy(&h0, p + 2, 4);
        if (nb == 2) std::memcpy(&h1, p + kBlockBytes + 2, 4);
        else h1 = h0;
        const __m512i v = nibble_step<6, kBlockBytes>(p, nb);
        return _mm512_mask_add_epi8(v, (__mmask64)h0 | (__mmask64)h1 << 32, v, _mm512_set1_epi8(16));
    }
    static __m512 scale(__m512i dw) { return f16x16(dw); }
    static __m512 offset(__m512i) { return _mm512_setzero_ps(); }
};

struct Q4K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 144;
    static constexpr bool kAsym = true;
    static constexpr int kKey = 0;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 2;
    static constexpr int kScaleBytes = 2;
    static __m512i key(int) { return _mm512_setzero_si512(); }
    static float act_mult(int) { return 1.0f; }

    static void load_half(const uint8_t* blk, int h, __m512i* w) {
        for (int st = 0; st < 2; ++st)
            w[st] = nibbles(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(blk + 16 + 64 * h + 32 * st))),
                            0xFFFF0000u);
    }
    // Pair h, lane 4g + r: sub-block 4h + g of row r = byte g of the codes sc[h] / mn[h].
    static void super_scales(const uint8_t* const* row, __m512* sw, __m512* m) {
        const Q4kCodes4 k = q4_k_codes4(row);
        const __m512i dd = _mm512_broadcast_i32x4(k.d);
        const __m512 d = f16x16(dd), dmin = f16x16(_mm512_srli_epi32(dd, 16));
        const __m512i sh = _mm512_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16, 24, 24, 24, 24);
        const __m512i ff = _mm512_set1_epi32(0xFF);
        for (int h = 0; h < 2; ++h) {
            const __m512i sc = _mm512_and_si512(_mm512_srlv_epi32(_mm512_broadcast_i32x4(k.sc[h]), sh), ff);
            const __m512i mn = _mm512_and_si512(_mm512_srlv_epi32(_mm512_broadcast_i32x4(k.mn[h]), sh), ff);
            sw[h] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
            m[h] = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mn))),
                                                        _mm512_set1_epi32((int)0x80000000u)));
        }
    }
};

struct Q6K {
    static constexpr int kBlock = 256;
    static constexpr int kBlockBytes = 210;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 0;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 0;
    static constexpr int kScaleBytes = 2;
    static constexpr bool kLaneScale = true;
    static __m512i key(int) { return _mm512_setzero_si512(); }
    static float act_mult(int) { return 1.0f; }

    static void load_half(const uint8_t* blk, int h, __m512i* w) {
        const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(blk + 128 + 32 * h)));
        const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
        for (int st = 0; st < 2; ++st) {
            const __m512i lo = _mm512_and_si512(st ? _mm512_srli_epi16(ql, 4) : ql, m4);
            const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * st)), _mm256_set1_epi16((short)(4 * st + 2)), 1);
            const __m512i hi = _mm512_and_si512(_mm512_srlv_epi16(qh, sh), m3);
            w[st] = _mm512_sub_epi8(_mm512_or_si512(lo, _mm512_slli_epi16(hi, 4)), _mm512_set1_epi8(32));
        }
    }
    // Step st of pair p: scales[8h + 4st ..+4] of super-block p / 2 (h = p % 2), byte j sign-extended into
    // the int16 lanes of 128-bit lane j (elements 16j..16j+15 of the step).
    static __m512i lane_scale(const uint8_t* row, int p, int st) {
        int32_t four;
        std::memcpy(&four, row + (p / 2) * kBlockBytes + 192 + 8 * (p % 2) + 4 * st, 4);
        const __m512i idx = _mm512_set_epi64(0x03FF03FF03FF03FFll, 0x03FF03FF03FF03FFll, 0x02FF02FF02FF02FFll,
                                             0x02FF02FF02FF02FFll, 0x01FF01FF01FF01FFll, 0x01FF01FF01FF01FFll,
                                             0x00FF00FF00FF00FFll, 0x00FF00FF00FF00FFll);
        return _mm512_srai_epi16(_mm512_shuffle_epi8(_mm512_set1_epi32(four), idx), 8);
    }
    static void super_scales(const uint8_t* const* row, __m512* sw, __m512*) {
        int32_t t[4];  // the f16 d at bytes 208..209: the top half of the word at 206 (inside the block)
        for (int r = 0; r < 4; ++r) std::memcpy(&t[r], row[r] + 206, 4);
        const __m512i dw = _mm512_broadcast_i32x4(_mm_setr_epi32(t[0], t[1], t[2], t[3]));
        sw[0] = sw[1] = f16x16(_mm512_srli_epi32(dw, 16));
    }
};

}  // namespace

void gemm_q5_0_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                          float* Y, int64_t ldy) {
    gemm_q8x<Q5_0>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_q4_k_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                          float* Y, int64_t ldy) {
    gemm_q8x<Q4K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_q6_k_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                          float* Y, int64_t ldy) {
    gemm_q8x<Q6K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
