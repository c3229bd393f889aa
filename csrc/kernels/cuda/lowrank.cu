// lowrank.cu — the up-projection of a LowRank (LoRA) term on the GPU (cuda_kernels.h cuda_lowrank_add):
//   Y[c·ldy + o] += scale · Σ_{j<r} B[o·r + j] · U[c·r + j]      o < rows, c < ncols
// U = A·x comes from cuda_gemv on the f32 A (the down-projection, r rows). One thread per (c, o), the sum in
// j order with separately rounded products and adds (no FMA), then one product and one add: the operations
// of CpuBackend::low_rank (backend/cpu/cpu_matmul.cpp) in its order, so for the same U the result is the
// CPU's bit for bit.
#include "cuda_kernels.h"

namespace edge {

namespace {

__global__ void lowrank_add_k(const float* __restrict__ B, int64_t rows, int64_t r, const float* __restrict__ U,
                              int64_t ncols, float scale, float* Y, int64_t ldy) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= rows * ncols) return;
    const int64_t c = i / rows, o = i % rows;
    const float* b = B + o * r;
    const float* u = U + c * r;
    float s = 0.f;
    for (int64_t j = 0; j < r; ++j) s = __fadd_rn(s, __fmul_rn(b[j], u[j]));
    float* y = Y + c * ldy + o;
    *y = __fadd_rn(*y, __fmul_rn(scale, s));
}

}  // namespace

cudaError_t cuda_lowrank_add(const float* B, int64_t rows, int64_t r, const float* U, int64_t ncols, float scale, float* Y,
                             int64_t ldy, cudaStream_t stream) {
    if (!B || !U || !Y || rows < 1 || r < 1 || ncols < 1 || ldy < rows) return cudaErrorInvalidValue;
    if (((uintptr_t)B | (uintptr_t)U | (uintptr_t)Y) & 3) return cudaErrorInvalidValue;
    const int64_t n = rows * ncols;
    lowrank_add_k<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(B, rows, r, U, ncols, scale, Y, ldy);
    return cudaGetLastError();
}

}  // namespace edge
