// quantize_q8x.cu — f32 activations -> block_q8x on the GPU, bit for bit quantize_q8x_ref
// (csrc/kernels/ref/quantize_q8x_ref.cpp; contract in cuda_kernels.h).
//
// One warp per 32-element block, lane i owns x_i: amax by a warp max-tree (exact), then the
// reference's IEEE steps with explicit round-to-nearest intrinsics so that nothing is contracted
// into an FMA or approximated: d = amax / 127 (__fdiv_rn), id = 1 / d (__frcp_rn, the correctly
// rounded reciprocal = 1.0f / d), q = clamp(rint(x * id)) (__fmul_rn, __float2int_rn: half to even),
// s = d * (float)Σq (Σ exact, __reduce_add_sync) — cuda_rowops::q8x_lane (rowops.cuh), which the fused
// GEMV shares.
#include "gemv.cuh"
#include "rowops.cuh"

namespace edge {
namespace {

constexpr int kWarpsQ = 8;

__global__ void __launch_bounds__(32 * kWarpsQ) quantize_q8x_kernel(const float* __restrict__ x, int64_t x_stride,
                                                                    int nb, int64_t nblocks,
                                                                    uint8_t* __restrict__ y, int64_t y_stride) {
    cuda_gemv_detail::pdl_launch_dependents();
    cuda_gemv_detail::pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t gw = (int64_t)blockIdx.x * kWarpsQ + (threadIdx.x >> 5);
    if (gw >= nblocks) return;
    const int64_t c = gw / nb, k = gw % nb;
    const float v = x[c * x_stride + 32 * k + lane];
    float d, bs;
    const int q = cuda_rowops::q8x_lane(v, &d, &bs);
    uint8_t* blk = y + (c * y_stride + k) * (int64_t)sizeof(block_q8x);
    blk[8 + lane] = (uint8_t)(int8_t)q;
    if (lane == 0) {
        reinterpret_cast<float*>(blk)[0] = d;
        reinterpret_cast<float*>(blk)[1] = bs;
    }
}

}  // namespace

cudaError_t cuda_quantize_q8x(const float* x, int64_t x_stride, int64_t n, int64_t ncols, block_q8x* y,
                              int64_t y_stride, cudaStream_t stream, uint32_t flags) {
    if (n < 0 || ncols < 0 || n % 32 != 0 || n / 32 > INT_MAX || x_stride < 0 || y_stride < 0)
        return cudaErrorInvalidValue;
    if (n == 0 || ncols == 0) return cudaSuccess;
    if (x == nullptr || y == nullptr || ((uintptr_t)x & 3) || ((uintptr_t)y & 3)) return cudaErrorInvalidValue;
    const int nb = (int)(n / 32);
    const int64_t nblocks = (int64_t)nb * ncols;
    const int64_t grid = (nblocks + kWarpsQ - 1) / kWarpsQ;
    if (grid > INT_MAX) return cudaErrorInvalidValue;
    static_assert(32 * kWarpsQ == cuda_gemv_detail::kThreads, "launch_kernel's block size");
    return cuda_gemv_detail::launch_kernel(quantize_q8x_kernel, (int)grid, 0, stream, (flags & kCudaOverlapPrevious) != 0,
                                           x, x_stride, nb, nblocks, reinterpret_cast<uint8_t*>(y), y_stride);
}

}  // namespace edge
