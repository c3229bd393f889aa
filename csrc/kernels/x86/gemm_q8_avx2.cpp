// gemm_q8_avx2.cpp — gemm_fn for q8_0 (f16 scale) and mxint8 (E8M0 scale, codes/64) × block_q8x
// activations, AVX2. The reference is gemm_q8_0_ref / gemm_mxint8_ref; the driver and its accuracy are
// in gemm_q8x_avx2.h. Signed × signed bytes go through vpmaddubsw by the sign trick,
// |w| · sign(q, w): |w| ≤ 128 (0x80 reads as 128 unsigned) and |q| ≤ 127, so no pair sum saturates.
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

template <int kData, bool kMx>
struct Int8 {
    static constexpr int kBlock = 32;
    static constexpr int kBlockBytes = kData + 32;
    static constexpr bool kAsym = false;
    static constexpr int kNarrow = 0;  // |w|·|q| ≤ 128·127: 4 of them overflow int16
    static constexpr bool kSign = true;
    static constexpr int kKey = 0;

    static void load_pair(const uint8_t* row, int64_t j, int elems, __m256i* w) {
        const uint8_t* p = row + 2 * j * kBlockBytes + kData;
        w[0] = _mm256_loadu_si256((const __m256i*)p);
        w[1] = elems == 64 ? _mm256_loadu_si256((const __m256i*)(p + kBlockBytes)) : w[0];
    }
    static __m256 scale(__m256i dw) {
        return kMx ? _mm256_mul_ps(e8m0x8(dw), _mm256_set1_ps(0.015625f)) : f16x8(dw);
    }
    static __m256 offset(__m256i) { return _mm256_setzero_ps(); }
};

}  // namespace

void gemm_q8_0_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                    float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int8<2, false>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}
void gemm_mxint8_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                      float* Y, int64_t ldy) {
    gemm_q8x_avx2<Int8<1, true>>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
