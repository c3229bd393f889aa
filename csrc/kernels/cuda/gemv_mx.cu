// gemv_mx.cu — decode GEMV for the OCP MX dtypes (one E8M0 scale byte e per 32 elements):
//   mxint8  int8 codes              x block_q8x   term = (2^(e-127)/64 · x.d) · Σ q·x.q
//   mxfp6   E2M3, 4 codes / 3 bytes x block_q8x   term = (2^(e-127)/8  · x.d) · Σ e2m3x8(q)·x.q
//   mxfp4   E2M1 nibbles            x block_q8x   term = (2^(e-127)/2  · x.d) · Σ e2m1x2(q)·x.q
//   mxfp8   E4M3 codes              x f32         term = 2^(e-127) · Σ e4m3(q)·x_i   (f32 FMA)
// Contract: cuda_kernels.h; kernel: gemv.cuh; references: gemm_int_ref.cpp (mxint8, mxfp6, mxfp4),
// gemm_float_ref.cpp (mxfp8). The integer sums are exact (dp4a), so int_dot terms are the reference's.
//
// E2M1 -> 2·value without a table in memory: prmt looks up 4 magnitudes {0,1,2,3,4,6,8,12} at once,
// indexed by the 4 nibbles of a 16-bit selector; a selector nibble with bit 3 set (a negative code)
// makes prmt return the selected byte's sign, i.e. 0. So prmt(T, sel) = magnitudes of the positive
// codes and prmt(T, sel ^ 0x8888) = magnitudes of the negative ones, and Σ = dp4a(pos) - dp4a(neg).
// The selector nibbles of qs bytes 2i, 2i+1 are elements 2i, 2i+16, 2i+1, 2i+17, so mxfp4's
// activations are staged in that interleaved order (gemv.cuh, DecMxfp4::kInterleave).
// E2M3 -> 8·value: a 64-entry int8 table in shared memory (16 words: no bank conflicts).
// E4M3 -> f32: the hardware pair conversion to f16x2 (sm_89+; emulated on sm_87), exact.
#include <cuda_fp8.h>

#include "gemv.cuh"

namespace edge {
namespace cuda_gemv_detail {
namespace {

struct DecMxint8 {
    static constexpr int kB = 32, kBB = 33;
    static constexpr bool kF32Act = false, kInterleave = false, kLut = false;
    using Act = ActQ8;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActQ8& A, int k,
                                               float (&acc)[NC]) {
        const float sw = __fmul_rn(e8m0_f32(buf[off]), 0.015625f);
        uint32_t w[8];
        lds_words<8>(buf, off + 1, w);
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            const int isum = dot32(w, A.words(c, k, 0), A.words(c, k, 1));
            acc[c] += __fmul_rn(__fmul_rn(sw, A.ds(c, k).x), (float)isum);
        }
    }
};

struct DecMxfp6 {
    static constexpr int kB = 32, kBB = 25;
    static constexpr bool kF32Act = false, kInterleave = false, kLut = true;
    using Act = ActQ8;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActQ8& A, int k,
                                               float (&acc)[NC]) {
        const float sw = __fmul_rn(e8m0_f32(buf[off]), 0.125f);
        uint32_t q[7];
        lds_words<7>(buf, off + 1, q);  // 24 code bytes (+4 unused)
        uint32_t w[8];
#pragma unroll
        for (int g = 0; g < 8; ++g) {  // elements 4g..4g+3 = bits 0..23 of bytes 3g..3g+2
            const int b = 3 * g;
            const uint32_t v = __funnelshift_r(q[b >> 2], q[(b >> 2) + 1], 8 * (b & 3));
            const uint32_t c0 = (uint8_t)A.lut[v & 63], c1 = (uint8_t)A.lut[(v >> 6) & 63];
            const uint32_t c2 = (uint8_t)A.lut[(v >> 12) & 63], c3 = (uint8_t)A.lut[(v >> 18) & 63];
            w[g] = c0 | c1 << 8 | c2 << 16 | c3 << 24;
        }
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            const int isum = dot32(w, A.words(c, k, 0), A.words(c, k, 1));
            acc[c] += __fmul_rn(__fmul_rn(sw, A.ds(c, k).x), (float)isum);
        }
    }
};

struct DecMxfp4 {
    static constexpr int kB = 32, kBB = 17;
    static constexpr bool kF32Act = false, kInterleave = true, kLut = false;
    using Act = ActQ8;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActQ8& A, int k,
                                               float (&acc)[NC]) {
        constexpr uint32_t T0 = 0x03020100u, T1 = 0x0C080604u;  // 2·|E2M1| for codes 0..7
        const float sw = __fmul_rn(e8m0_f32(buf[off]), 0.5f);
        uint32_t q[4];
        lds_words<4>(buf, off + 1, q);
        uint32_t pos[8], neg[8];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t lo = q[i], hi = q[i] >> 16;
            pos[2 * i] = prmt(T0, T1, lo);
            neg[2 * i] = prmt(T0, T1, lo ^ 0x8888u);
            pos[2 * i + 1] = prmt(T0, T1, hi);
            neg[2 * i + 1] = prmt(T0, T1, hi ^ 0x8888u);
        }
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            const uint4 xa = A.words(c, k, 0), xb = A.words(c, k, 1);
            const int isum = dot32(pos, xa, xb) - dot32(neg, xa, xb);
            acc[c] += __fmul_rn(__fmul_rn(sw, A.ds(c, k).x), (float)isum);
        }
    }
};

struct DecMxfp8 {
    static constexpr int kB = 32, kBB = 33;
    static constexpr bool kF32Act = true;
    using Act = ActF32;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActF32& A, int k,
                                               float (&acc)[NC]) {
        const float sw = e8m0_f32(buf[off]);
        uint32_t q[8];
        lds_words<8>(buf, off + 1, q);
        float f[32];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const __half2_raw r =
                    __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(q[i] >> (16 * h)), __NV_E4M3);
                const float2 v = __half22float2(__half2(r));
                f[4 * i + 2 * h] = v.x;
                f[4 * i + 2 * h + 1] = v.y;
            }
        }
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            float bsum = 0.0f;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const float4 x = A.chunk(c, k, j);
                bsum = fmaf(f[4 * j], x.x, bsum);
                bsum = fmaf(f[4 * j + 1], x.y, bsum);
                bsum = fmaf(f[4 * j + 2], x.z, bsum);
                bsum = fmaf(f[4 * j + 3], x.w, bsum);
            }
            acc[c] = fmaf(sw, bsum, acc[c]);
        }
    }
};

}  // namespace

cudaError_t gemv_mx(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                    int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    switch (dtype) {
        case EDGE_DTYPE_MXINT8:
            return launch_blocks<DecMxint8>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_MXFP8:
            return launch_blocks<DecMxfp8>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_MXFP6:
            return launch_blocks<DecMxfp6>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_MXFP4:
            return launch_blocks<DecMxfp4>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

}  // namespace cuda_gemv_detail
}  // namespace edge
