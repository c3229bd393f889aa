// gemv_float.cu — decode GEMV for f32, f16 and bf16 weights against f32 activations.
// Contract: cuda_kernels.h; reference: gemm_float_ref.cpp (Σ w_i·x_i in f32; here fused multiply-adds
// in another order, so within the float bound of cuda_kernels.h).
//
// Warp per row, persistent grid (rows = global warp id + k · warps in the grid). Fast path when W,
// w_stride and X are 16-byte aligned, x_stride is a multiple of 4 and n a multiple of the 16-byte
// element count: lane l streams granules l, l+32, ... of the row (16-byte ld.global.nc
// L1::no_allocate, 4 in flight per lane) and reads the matching x through L1 (every warp of the SM
// reads the same x). Otherwise a scalar path: lane l takes elements l, l+32, ... (byte loads when the
// row is not element-aligned). Then a warp xor-tree; lane c writes column c.
#include "gemv.cuh"

namespace edge {
namespace cuda_gemv_detail {
namespace {

template <int DT>
struct FloatElem;
template <>
struct FloatElem<EDGE_DTYPE_F32> {
    static constexpr int kSize = 4;
    __device__ static float at(uint32_t bits) { return __uint_as_float(bits); }
};
template <>
struct FloatElem<EDGE_DTYPE_F16> {
    static constexpr int kSize = 2;
    __device__ static float at(uint32_t bits) { return f16_bits_to_f32(bits); }
};
template <>
struct FloatElem<EDGE_DTYPE_BF16> {
    static constexpr int kSize = 2;
    __device__ static float at(uint32_t bits) { return __uint_as_float(bits << 16); }
};

// The 16/kSize elements of one 16-byte granule.
template <int DT>
__device__ __forceinline__ void widen(uint4 v, float* f) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    if constexpr (DT == EDGE_DTYPE_F32) {
#pragma unroll
        for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(w[i]);
    } else if constexpr (DT == EDGE_DTYPE_F16) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 p = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
            f[2 * i] = p.x;
            f[2 * i + 1] = p.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            f[2 * i] = __uint_as_float(w[i] << 16);
            f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
        }
    }
}

template <int DT, int NC>
__global__ void __launch_bounds__(kThreads) gemv_float_kernel(const uint8_t* __restrict__ W, int64_t w_stride,
                                                              int rows, int n, const float* __restrict__ X,
                                                              int64_t x_stride, float* __restrict__ Y, int64_t ldy,
                                                              int mode, int overlap) {
    constexpr int ES = FloatElem<DT>::kSize;
    constexpr int EPG = 16 / ES;  // elements per granule
    constexpr int U = 4;
    const int lane = threadIdx.x & 31;
    const int total_warps = gridDim.x * kWarps;
    pdl_launch_dependents();
    {  // the first row's weights into L2 while the previous kernel may still run (overlap launch)
        const int row0 = blockIdx.x * kWarps + (threadIdx.x >> 5);
        if (overlap && row0 < rows) {
            const uint8_t* w0 = W + (int64_t)row0 * w_stride;
            const int64_t lines = ((int64_t)n * ES + 127) / 128;
            for (int64_t i = lane; i < lines && i < 256; i += 32)
                asm volatile("prefetch.global.L2 [%0];" ::"l"(w0 + 128 * i));
        }
    }
    pdl_wait();
    for (int row = blockIdx.x * kWarps + (threadIdx.x >> 5); row < rows; row += total_warps) {
        const uint8_t* w = W + (int64_t)row * w_stride;
        float acc[NC];
#pragma unroll
        for (int c = 0; c < NC; ++c) acc[c] = 0.0f;
        if (mode == 0) {  // vector path
            const int ngran = n / EPG;
            for (int g0 = lane; g0 < ngran; g0 += 32 * U) {
                uint4 v[U];
#pragma unroll
                for (int u = 0; u < U; ++u)
                    if (g0 + 32 * u < ngran) v[u] = ld_stream16(w + 16 * (int64_t)(g0 + 32 * u));
#pragma unroll
                for (int u = 0; u < U; ++u) {
                    const int g = g0 + 32 * u;
                    if (g < ngran) {
                        float f[EPG];
                        widen<DT>(v[u], f);
#pragma unroll
                        for (int c = 0; c < NC; ++c) {
                            const float4* xp = reinterpret_cast<const float4*>(X + c * x_stride + g * EPG);
#pragma unroll
                            for (int j = 0; j < EPG / 4; ++j) {
                                const float4 x = __ldg(xp + j);
                                acc[c] = fmaf(f[4 * j], x.x, acc[c]);
                                acc[c] = fmaf(f[4 * j + 1], x.y, acc[c]);
                                acc[c] = fmaf(f[4 * j + 2], x.z, acc[c]);
                                acc[c] = fmaf(f[4 * j + 3], x.w, acc[c]);
                            }
                        }
                    }
                }
            }
        } else {  // scalar path; mode 2: the row is not element-aligned (byte loads)
            for (int i = lane; i < n; i += 32) {
                const uint8_t* p = w + (int64_t)i * ES;
                uint32_t bits;
                if (mode == 1)
                    bits = ES == 4 ? __ldg(reinterpret_cast<const unsigned int*>(p))
                                   : (uint32_t)__ldg(reinterpret_cast<const unsigned short*>(p));
                else {
                    bits = 0;
#pragma unroll
                    for (int b = 0; b < ES; ++b) bits |= (uint32_t)__ldg(p + b) << (8 * b);
                }
                const float f = FloatElem<DT>::at(bits);
#pragma unroll
                for (int c = 0; c < NC; ++c) acc[c] = fmaf(f, __ldg(X + c * x_stride + i), acc[c]);
            }
        }
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            float s = acc[c];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == c) Y[(int64_t)c * ldy + row] = s;
        }
    }
}

template <int DT, int NC>
cudaError_t launch_float_nc(const uint8_t* W, int64_t w_stride, int64_t rows, int64_t n, const float* X,
                            int64_t x_stride, float* Y, int64_t ldy, int mode, bool overlap, cudaStream_t stream) {
    auto kernel = gemv_float_kernel<DT, NC>;
    int grid = 0;
    cudaError_t e = persistent_grid(kernel, 0, rows, &grid);
    if (e != cudaSuccess) return e;
    return launch_kernel(kernel, grid, 0, stream, overlap, W, w_stride, (int)rows, (int)n, X, x_stride, Y, ldy, mode, (int)overlap);
}

template <int DT>
cudaError_t launch_float(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                         int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    const bool overlap = (flags & kCudaOverlapPrevious) != 0;
    constexpr int ES = FloatElem<DT>::kSize;
    if (rows < 0 || ncols < 0 || n <= 0 || rows > INT_MAX || n > INT_MAX / 4) return cudaErrorInvalidValue;
    if (rows == 0 || ncols == 0) return cudaSuccess;
    if (W == nullptr || X == nullptr || Y == nullptr || ((uintptr_t)X & 3) || ((uintptr_t)Y & 3) || ldy < rows ||
        x_stride < 0)
        return cudaErrorInvalidValue;
    const uintptr_t wa = (uintptr_t)W | (uintptr_t)w_stride;
    int mode;
    if ((wa & 15) == 0 && ((uintptr_t)X & 15) == 0 && x_stride % 4 == 0 && n % (16 / ES) == 0)
        mode = 0;
    else
        mode = (wa % ES) == 0 ? 1 : 2;
    const uint8_t* w = static_cast<const uint8_t*>(W);
    const float* x = static_cast<const float*>(X);
    cudaError_t e = cudaSuccess;
    for (int64_t c0 = 0; c0 < ncols; c0 += kMaxCols) {
        const int64_t g = ncols - c0 < kMaxCols ? ncols - c0 : kMaxCols;
        const float* xc = x + c0 * x_stride;
        float* yc = Y + c0 * ldy;
        switch (g) {
            case 1: e = launch_float_nc<DT, 1>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            case 2: e = launch_float_nc<DT, 2>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            case 3: e = launch_float_nc<DT, 3>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            case 4: e = launch_float_nc<DT, 4>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            case 5: e = launch_float_nc<DT, 5>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            case 6: e = launch_float_nc<DT, 6>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            case 7: e = launch_float_nc<DT, 7>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
            default: e = launch_float_nc<DT, 8>(w, w_stride, rows, n, xc, x_stride, yc, ldy, mode, overlap, stream); break;
        }
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

}  // namespace

cudaError_t gemv_float(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                       int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    switch (dtype) {
        case EDGE_DTYPE_F32:
            return launch_float<EDGE_DTYPE_F32>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_F16:
            return launch_float<EDGE_DTYPE_F16>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_BF16:
            return launch_float<EDGE_DTYPE_BF16>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

}  // namespace cuda_gemv_detail
}  // namespace edge
