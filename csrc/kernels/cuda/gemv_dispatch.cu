// gemv_dispatch.cu — cuda_gemv (cuda_kernels.h): the dtype switch over the per-family kernels.
#include "gemv.cuh"

namespace edge {

bool cuda_gemv_supported(uint32_t dtype) { return dtype <= EDGE_DTYPE_MXFP4 || dtype == EDGE_DTYPE_NL4_32; }

cudaError_t cuda_gemv(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                      int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, cudaStream_t stream, uint32_t flags) {
    using namespace cuda_gemv_detail;
    switch (dtype) {
        case EDGE_DTYPE_F32:
        case EDGE_DTYPE_F16:
        case EDGE_DTYPE_BF16:
            return gemv_float(dtype, W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_Q8_0:
            return gemv_q8_0(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_INT4_32:
        case EDGE_DTYPE_INT4_64:
        case EDGE_DTYPE_INT4_128:
        case EDGE_DTYPE_INT4A_32:
        case EDGE_DTYPE_INT4A_64:
        case EDGE_DTYPE_INT4A_128:
            return gemv_int4(dtype, W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_MXINT8:
        case EDGE_DTYPE_MXFP8:
        case EDGE_DTYPE_MXFP6:
        case EDGE_DTYPE_MXFP4:
            return gemv_mx(dtype, W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_NL4_32:
            return gemv_nl4(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

// The fused GEMV (cuda_kernels.h) exists for the decode dtypes of the models we ship: q8_0, int4_B, int4a_B, nl4_32
// (the default int4 recipe's).
bool cuda_gemv_fused_supported(uint32_t dtype) {
    return dtype == EDGE_DTYPE_Q8_0 || dtype == EDGE_DTYPE_NL4_32 || (dtype >= EDGE_DTYPE_INT4_32 && dtype <= EDGE_DTYPE_INT4A_128);
}

cudaError_t cuda_gemv_fused(uint32_t dtype, const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in,
                            cudaStream_t stream, uint32_t flags) {
    using namespace cuda_gemv_detail;
    if (!cuda_gemv_fused_supported(dtype)) return cudaErrorInvalidValue;
    if (dtype == EDGE_DTYPE_Q8_0) return gemv_q8_0_fused(mats, n_mats, n, in, flags, stream);
    if (dtype == EDGE_DTYPE_NL4_32) return gemv_nl4_fused(mats, n_mats, n, in, flags, stream);
    return gemv_int4_fused(dtype, mats, n_mats, n, in, flags, stream);
}

cudaError_t cuda_gemv_fused_glu(uint32_t dtype, const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows,
                                int64_t n, const CudaGemvInput& in, int act, float* g, cudaStream_t stream, uint32_t flags) {
    using namespace cuda_gemv_detail;
    if (!cuda_gemv_fused_supported(dtype)) return cudaErrorInvalidValue;
    if (dtype == EDGE_DTYPE_Q8_0) return gemv_q8_0_glu(Wg, g_stride, Wu, u_stride, rows, n, in, act, g, flags, stream);
    if (dtype == EDGE_DTYPE_NL4_32) return gemv_nl4_glu(Wg, g_stride, Wu, u_stride, rows, n, in, act, g, flags, stream);
    return gemv_int4_glu(dtype, Wg, g_stride, Wu, u_stride, rows, n, in, act, g, flags, stream);
}

namespace {
cudaError_t moe(uint32_t dtype, bool glu, const CudaMoeGemv& g, cudaStream_t stream, uint32_t flags) {
    using namespace cuda_gemv_detail;
    if (!cuda_gemv_fused_supported(dtype)) return cudaErrorInvalidValue;
    if (dtype == EDGE_DTYPE_Q8_0) return gemv_q8_0_moe(glu, g, flags, stream);
    if (dtype == EDGE_DTYPE_NL4_32) return gemv_nl4_moe(glu, g, flags, stream);
    return gemv_int4_moe(dtype, glu, g, flags, stream);
}
}  // namespace

cudaError_t cuda_moe_glu(uint32_t dtype, const CudaMoeGemv& g, cudaStream_t stream, uint32_t flags) {
    return moe(dtype, true, g, stream, flags);
}

cudaError_t cuda_moe_down(uint32_t dtype, const CudaMoeGemv& g, cudaStream_t stream, uint32_t flags) {
    return moe(dtype, false, g, stream, flags);
}

}  // namespace edge
