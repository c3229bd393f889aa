// gemv_q8.cu — decode GEMV for q8_0 (f16 d, 32 int8 codes) against block_q8x activations.
// Contract: cuda_kernels.h; kernel: gemv.cuh; reference: gemm_int_ref.cpp (dot_q8_0):
//   isum = Σ q · x.q (dp4a, exact), term = (d · x.d) · isum.
#include "gemv.cuh"

namespace edge {
namespace cuda_gemv_detail {
namespace {

struct DecQ8_0 {
    static constexpr int kB = 32, kBB = 34;
    static constexpr bool kF32Act = false, kInterleave = false, kLut = false;
    using Act = ActQ8;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActQ8& A, int k,
                                               float (&acc)[NC]) {
        const float d = f16_bits_to_f32(lds_u16(buf, off));
        uint32_t w[8];
        lds_words<8>(buf, off + 2, w);
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            const int isum = dot32(w, A.words(c, k, 0), A.words(c, k, 1));
            acc[c] += __fmul_rn(__fmul_rn(d, A.ds(c, k).x), (float)isum);
        }
    }
};

}  // namespace

cudaError_t gemv_q8_0(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                      int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    return launch_blocks<DecQ8_0>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
}

cudaError_t gemv_q8_0_fused(const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in, uint32_t flags,
                            cudaStream_t stream) {
    return launch_fused<DecQ8_0>(mats, n_mats, n, in, flags, stream);
}

cudaError_t gemv_q8_0_glu(const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows, int64_t n,
                          const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream) {
    return launch_glu<DecQ8_0>(Wg, g_stride, Wu, u_stride, rows, n, in, act, g, flags, stream);
}

cudaError_t gemv_q8_0_moe(bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream) {
    return launch_moe<DecQ8_0>(glu, P, flags, stream);
}

}  // namespace cuda_gemv_detail
}  // namespace edge
