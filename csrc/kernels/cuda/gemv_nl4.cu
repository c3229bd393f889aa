// gemv_nl4.cu — decode GEMV for nl4_32 (f16 d, 16 split-half nibble bytes indexing the fixed
// 16-entry int8 table kNl4Values of quant.h: GGML's IQ4_NL block) against block_q8x activations.
// Contract: cuda_kernels.h; kernel: gemv.cuh; reference: gemm_int_ref.cpp (dot_nl4):
//   isum = Σ kNl4Values[q] · x.q (exact, dp4a)   term = (d · x.d) · isum
//
// Table lookup without memory: the 16 values are four words T0..T3 (values 4j..4j+3, byte i of Tj =
// value 4j + i). A 16-bit selector s holds 4 nibble codes; prmt with the low 3 bits of each nibble
// picks from {T1:T0} (codes 0..7) and from {T3:T2} (codes 8..15), and a third prmt chooses per byte by
// bit 3 of the code (selector nibble i = i, or i + 4 for the second word). Bit 3 of a selector nibble
// is prmt's sign-replicate mode, hence the masks. As for mxfp4, the nibbles of qs bytes 2i, 2i+1 are
// elements 2i, 2i+16, 2i+1, 2i+17, so the activations are staged interleaved (DecNl4::kInterleave).
#include "gemv.cuh"

namespace edge {
namespace cuda_gemv_detail {
namespace {

constexpr uint32_t table_word(int j) {
    return (uint32_t)(uint8_t)kNl4Values[4 * j] | (uint32_t)(uint8_t)kNl4Values[4 * j + 1] << 8 |
           (uint32_t)(uint8_t)kNl4Values[4 * j + 2] << 16 | (uint32_t)(uint8_t)kNl4Values[4 * j + 3] << 24;
}
constexpr uint32_t kT0 = table_word(0), kT1 = table_word(1), kT2 = table_word(2), kT3 = table_word(3);
static_assert(kT0 == 0xBFAD9881u && kT3 == 0x71594535u, "kNl4Values packing");

// The 4 int8 values of the 4 nibble codes in the low 16 bits of s (nibble i -> byte i).
__device__ __forceinline__ uint32_t lookup4(uint32_t s) {
    const uint32_t lo = prmt(kT0, kT1, s & 0x7777u);
    const uint32_t hi = prmt(kT2, kT3, s & 0x7777u);
    return prmt(lo, hi, 0x3210u | ((s >> 1) & 0x4444u));
}

struct DecNl4 {
    static constexpr int kB = 32, kBB = 18;
    static constexpr bool kF32Act = false, kInterleave = true, kLut = false;
    using Act = ActQ8;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActQ8& A, int k,
                                               float (&acc)[NC]) {
        const float d = f16_bits_to_f32(lds_u16(buf, off));
        uint32_t q[4];
        lds_words<4>(buf, off + 2, q);
        uint32_t w[8];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            w[2 * i] = lookup4(q[i]);
            w[2 * i + 1] = lookup4(q[i] >> 16);
        }
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            const int isum = dot32(w, A.words(c, k, 0), A.words(c, k, 1));
            acc[c] += __fmul_rn(__fmul_rn(d, A.ds(c, k).x), (float)isum);
        }
    }
};

}  // namespace

cudaError_t gemv_nl4(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                        int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    return launch_blocks<DecNl4>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
}

}  // namespace cuda_gemv_detail
}  // namespace edge
