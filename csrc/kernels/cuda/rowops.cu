// rowops.cu — RMSNorm and act·mul on the GPU (cuda_kernels.h states the contract), one kernel each, the
// element arithmetic in rowops.cuh (shared with the fused GEMV's input stage).
#include "cuda_kernels.h"
#include "rowops.cuh"

namespace edge {
namespace {

constexpr int kRowThreads = 256;  // cuda_rmsnorm: one block of 256 per row (the fused GEMV's block size)

__global__ void __launch_bounds__(kRowThreads) rmsnorm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                                               float eps, int64_t n, float* y) {
    __shared__ float red[32];
    const float* xr = x + blockIdx.x * n;
    float* yr = y + blockIdx.x * n;
    const float s = cuda_rowops::row_rms_scale(xr, n, eps, red);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = cuda_rowops::rms_apply(xr[i], s, w, i);
}

__global__ void act_mul_kernel(float* g, const float* __restrict__ u, int64_t n, int act) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) g[i] = cuda_rowops::act_apply(g[i], u[i], act);
}

}  // namespace

cudaError_t cuda_rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y, cudaStream_t stream) {
    if (rows < 0 || n < 0 || rows > INT32_MAX) return cudaErrorInvalidValue;
    if (rows == 0 || n == 0) return cudaSuccess;
    rmsnorm_kernel<<<(unsigned)rows, kRowThreads, 0, stream>>>(x, w, eps, n, y);
    return cudaGetLastError();
}

cudaError_t cuda_act_mul(float* g, const float* u, int64_t n, int act, cudaStream_t stream) {
    if (n < 0 || act < 0 || act > 2) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    act_mul_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(g, u, n, act);
    return cudaGetLastError();
}

}  // namespace edge
