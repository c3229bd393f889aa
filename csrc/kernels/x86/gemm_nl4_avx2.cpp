// gemm_nl4_avx2.cpp — gemm_fn for nl4_32 (f16 d, 16 split-half nibble bytes indexing the fixed
// table kNl4Values of quant.h) × block_q8x activations, AVX2. The reference is gemm_nl4_32_ref;
// the driver and its accuracy are in gemm_q8x_avx2.h.
// Decode: the 16 nibble bytes go to both 128-bit halves, the upper half shifted right by 4, masked to
// 4 bits, and one vpshufb looks the codes up in the table (broadcast to both lanes: vpshufb indexes
// within a lane). The values are signed (-127..113), so the dot is the q8_0 sign trick
// |w| · sign(q, w) (|w| ≤ 127, |q| ≤ 127: no vpmaddubsw pair saturates), K = 0.
#include "gemm_q8x_avx2.h"
#include "x86.h"

namespace edge {
namespace {

using namespace x86;

struct Nl4 : F16Block32<Nl4> {
    static constexpr int kBlockBytes = 18;
    static constexpr bool kSign = true;
    static constexpr int kNarrow = 0;  // |w|·|q| ≤ 127·127: 4 of them overflow int16
    static constexpr int kKey = 0;

    static __m256i block(const uint8_t* p) {
        const __m256i idx = nibbles32(p + 2);
        const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)kNl4Values));
        return _mm256_shuffle_epi8(lut, idx);
    }
};

}  // namespace

void gemm_nl4_32_avx2(const void* W, int64_t ws, int64_t rows, int64_t n, const void* X, int64_t xs, int64_t ncols,
                         float* Y, int64_t ldy) {
    gemm_q8x_avx2<Nl4>(W, ws, rows, n, X, xs, ncols, Y, ldy);
}

}  // namespace edge
