// gemm_q8_avx512vnni.cpp — gemm_fn for q8_0 (f16 scale) and mxint8 (E8M0 scale, codes/64): int8
// weights × block_q8x activations, AVX-512 VNNI. The reference is gemm_q8_0_ref / gemm_mxint8_ref; the
// driver and its accuracy are in gemm_q8x_avx512vnni.h.
//
// vpdpbusd needs one unsigned operand: the weight codes are flipped to w + 128 (XOR 0x80, so -128
// becomes 0 and 127 becomes 255) and the driver subtracts 128·Σq per block (K = 128). A step is two
// 32-element blocks [b0 | b1]; a pair four.
#include "gemm_q8x_avx512vnni.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

template <int kData, bool kMx>
struct Int8 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = kData + 32;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 128;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 0;  // 4·255·127 does not fit in int16
    static constexpr int kScaleBytes = kMx ? 1 : 2;
    static __m512i key(int) { return _mm512_set1_epi8((char)0x80); }
    static float act_mult(int) { return 1.0f; }

    static __m512i step(const uint8_t* p, int nb) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i*)(p + kData));
        const __m256i b1 = nb == 2 ? _mm256_loadu_si256((const __m256i*)(p + kBlockBytes + kData)) : _mm256_setzero_si256();
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1), _mm512_set1_epi8((char)0x80));
    }
    static void load_pair(const uint8_t* p, int elems, __m512i* w) {
        w[0] = step(p, elems >= 64 ? 2 : 1);
        w[1] = elems > 64 ? step(p + 2 * kBlockBytes, elems == 128 ? 2 : 1) : w[0];
    }
    static __m512 scale(__m512i dw) {
        return kMx ? _mm512_mul_ps(e8m0x16(dw), _mm512_set1_ps(0.015625f)) : f16x16(dw);
    }
    static __m512 offset(__m512i) { return _mm512_setzero_ps(); }
};

}  // namespace

void gemm_q8_0_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                          int64_t ncols, float* Y, int64_t ldy) {
    gemm_q8x<Int8<2, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxint8_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                            int64_t ncols, float* Y, int64_t ldy) {
    gemm_q8x<Int8<1, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
