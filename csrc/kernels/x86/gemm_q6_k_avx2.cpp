// gemm_q6_k_avx2.cpp — gemm_fn for q6_k (GGML Q6_K: 128 bytes of low nibbles, 64 bytes of high 2 bits,
// 16 int8 scales, f16 d per 256 elements) × block_q8x activations, AVX2. The reference is gemm_q6_k_ref;
// the driver and its accuracy are in gemm_q8x_avx2.h. Pair c of a super-block (activation blocks 2c,
// 2c + 1 = groups g0 = 2(c % 2), g0 + 1 of half h = c / 2) reads ql[64h ..+32) and ql[64h + 32 ..+32)
// (low nibbles for c even, high for c odd) and qh[32h ..+32) shifted by 2·g0 and 2·g0 + 2: the signed
// codes q − 32 in [−32, 31], dotted by the sign trick. Each activation block spans two 16-element
// sub-blocks: lane_scale multiplies lanes 0-3 by sc_a and 4-7 by sc_b before the tree (kNarrow 0:
// scaled sums need int32), so the tree's sums are the reference's exact isum; the block scale is d.
#include "../../common.h"
#include "../../quant.h"
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

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
    static __m256i lane_scale(const uint8_t* row, int k) {  // activation block k of the chunk
        const int8_t* sc = (const int8_t*)(row + (k / 8) * kBlockBytes + 192) + 2 * (k % 8);
        return _mm256_set_m128i(_mm_set1_epi32(sc[1]), _mm_set1_epi32(sc[0]));
    }
    static void sub_scale(const uint8_t* blk, int, float* s, float* m) {
        uint16_t d;
        std::memcpy(&d, blk + 208, 2);
        *s = f16_to_f32(d);
        *m = 0.0f;
    }
    static __m256 scale(__m256i) { return _mm256_setzero_ps(); }  // unused: sub_scale
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

}  // namespace

void gemm_q6_k_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Q6K>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
