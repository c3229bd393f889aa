// gemv_nl4.cu — decode GEMV for nl4_32 (f16 d, 16 split-half nibble bytes indexing the fixed
// 16-entry int8 table kNl4Values of quant.h: GGML's IQ4_NL block) against block_q8x activations.
// Contract: cuda_kernels.h; kernel: gemv.cuh; reference: gemm_int_ref.cpp (dot_nl4):
//   isum = Σ kNl4Values[q] · x.q (exact, dp4a)   term = (d · x.d) · isum
//
// The table lookup: nl4_lut.cuh. As for mxfp4, the nibbles of qs bytes 2i, 2i+1 are elements 2i, 2i+16, 2i+1,
// 2i+17, so the activations are staged interleaved (DecNl4::kInterleave).
#include "gemv.cuh"
#include "nl4_lut.cuh"

namespace edge {
namespace cuda_gemv_detail {
namespace {

using nl4_lut::lookup4;

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

cudaError_t gemv_nl4_fused(const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in, uint32_t flags,
                           cudaStream_t stream) {
    return launch_fused<DecNl4>(mats, n_mats, n, in, flags, stream);
}

cudaError_t gemv_nl4_glu(const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows, int64_t n,
                         const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream) {
    return launch_glu<DecNl4>(Wg, g_stride, Wu, u_stride, rows, n, in, act, g, flags, stream);
}

cudaError_t gemv_nl4_moe(bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream) {
    return launch_moe<DecNl4>(glu, P, flags, stream);
}

}  // namespace cuda_gemv_detail
}  // namespace edge
