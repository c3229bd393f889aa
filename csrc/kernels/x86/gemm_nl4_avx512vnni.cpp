// gemm_nl4_avx512vnni.cpp — gemm_fn for nl4_32 (f16 d, split-half nibbles indexing the fixed
// table kNl4Values of quant.h) × block_q8x activations, AVX-512 VNNI. The reference is
// gemm_nl4_32_ref; the driver and its accuracy are in gemm_q8x_avx512vnni.h.
// vpdpbusd needs an unsigned weight operand: the vpshufb table holds value + 128 (1..241), and the
// driver subtracts 128·Σq per block (K = 128, as q8_0). A step is two blocks [b0 | b0 | b1 | b1] in
// 128-bit lanes, the high nibbles of each block in the second lane of its pair (as mxfp4).
#include "gemm_q8x_avx512vnni.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct Nl4 : Steps32<Nl4> {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = 18;
    static constexpr bool kAsym = false;
    static constexpr int kKey = 128;
    static constexpr bool kLoTimes16 = false;
    static constexpr int kNarrow = 0;  // 4·241·127 does not fit in int16
    static constexpr int kScaleBytes = 2;
    static __m512i key(int) { return _mm512_set1_epi8((char)0x80); }
    static float act_mult(int) { return 1.0f; }

    static __m512i step(const uint8_t* p, int nb) {
        // kNl4Values + 128 as unsigned bytes (XOR 0x80 of the signed table)
        const __m512i lut = _mm512_broadcast_i32x4(
            _mm_xor_si128(_mm_loadu_si128((const __m128i*)kNl4Values), _mm_set1_epi8((char)0x80)));
        return _mm512_shuffle_epi8(lut, nibble_step<2, kBlockBytes>(p, nb));
    }
    static __m512 scale(__m512i dw) { return f16x16(dw); }
    static __m512 offset(__m512i) { return _mm512_setzero_ps(); }
};

}  // namespace

void gemm_nl4_32_avx512vnni(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs,
                               int64_t ncols, float* Y, int64_t ldy) {
    gemm_q8x<Nl4>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
