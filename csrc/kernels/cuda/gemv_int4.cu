// gemv_int4.cu — decode GEMV for int4_B (symmetric) and int4a_B (asymmetric), B = 32, 64, 128, against
// block_q8x activations. Contract: cuda_kernels.h; kernel: gemv.cuh; reference: gemm_int_ref.cpp.
//
// Block (quant.h): f16 d [, f16 m], B/2 bytes of split-half nibbles (byte j: element j low,
// element j + B/2 high). Per activation block k of the weight block (B/32 of them):
//   int4_B   isum = Σ (q - 8) · x.q   term = (d · x.d) · isum
//   int4a_B  isum = Σ q · x.q         term = (d · x.d) · isum + m · x.s
// Codes: one AND (low nibbles) or a shift and an AND (high nibbles) give 4 codes per word, already in
// element order for the activation words; int4 maps q -> q - 8 per byte with (q + 0x78) ^ 0x80
// (no carry between bytes since q <= 15). Which nibbles go with which activation block:
//   B = 32:  low nibbles of the 16 bytes = elements 0..15, high = 16..31 (one activation block)
//   B >= 64: activation block h·(B/64) + s = (h ? high : low) nibbles of bytes 32s .. 32s+31
#include "gemv.cuh"

namespace edge {
namespace cuda_gemv_detail {
namespace {

__device__ __forceinline__ uint32_t signed_codes(uint32_t q) { return (q + 0x78787878u) ^ 0x80808080u; }

template <int B, bool Asym>
struct DecInt4 {
    static constexpr int kB = B;
    static constexpr int kBB = (Asym ? 4 : 2) + B / 2;
    static constexpr bool kF32Act = false, kInterleave = false, kLut = false;
    using Act = ActQ8;

    template <int NC>
    __device__ __forceinline__ static void dot(const uint8_t* buf, uint32_t off, const ActQ8& A, int k0,
                                               float (&acc)[NC]) {
        constexpr int QOFF = Asym ? 4 : 2;
        const float d = f16_bits_to_f32(lds_u16(buf, off));
        const float m = Asym ? f16_bits_to_f32(lds_u16(buf, off + 2)) : 0.0f;
        uint32_t qs[B / 8];
        lds_words<B / 8>(buf, off + QOFF, qs);
#pragma unroll
        for (int k = 0; k < B / 32; ++k) {  // activation blocks of this weight block
            uint32_t w[8];
            if constexpr (B == 32) {
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    w[i] = qs[i] & 0x0F0F0F0Fu;
                    w[i + 4] = (qs[i] >> 4) & 0x0F0F0F0Fu;
                }
            } else {
                const int h = k / (B / 64), s = k % (B / 64);
#pragma unroll
                for (int i = 0; i < 8; ++i) w[i] = (qs[8 * s + i] >> (4 * h)) & 0x0F0F0F0Fu;
            }
            if constexpr (!Asym) {
#pragma unroll
                for (int i = 0; i < 8; ++i) w[i] = signed_codes(w[i]);
            }
#pragma unroll
            for (int c = 0; c < NC; ++c) {
                const int isum = dot32(w, A.words(c, k0 + k, 0), A.words(c, k0 + k, 1));
                const float2 xs = A.ds(c, k0 + k);
                float term = __fmul_rn(__fmul_rn(d, xs.x), (float)isum);
                if constexpr (Asym) term = __fadd_rn(term, __fmul_rn(m, xs.y));
                acc[c] += term;
            }
        }
    }
};

}  // namespace

cudaError_t gemv_int4(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                      int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    switch (dtype) {
        case EDGE_DTYPE_INT4_32:
            return launch_blocks<DecInt4<32, false>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_INT4_64:
            return launch_blocks<DecInt4<64, false>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_INT4_128:
            return launch_blocks<DecInt4<128, false>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_INT4A_32:
            return launch_blocks<DecInt4<32, true>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_INT4A_64:
            return launch_blocks<DecInt4<64, true>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        case EDGE_DTYPE_INT4A_128:
            return launch_blocks<DecInt4<128, true>>(W, w_stride, rows, n, X, x_stride, ncols, Y, ldy, flags, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

// f(DecInt4<B, Asym>{}) for the decoder of an int4 dtype.
template <class F>
cudaError_t with_int4(uint32_t dtype, F f) {
    switch (dtype) {
        case EDGE_DTYPE_INT4_32: return f(DecInt4<32, false>{});
        case EDGE_DTYPE_INT4_64: return f(DecInt4<64, false>{});
        case EDGE_DTYPE_INT4_128: return f(DecInt4<128, false>{});
        case EDGE_DTYPE_INT4A_32: return f(DecInt4<32, true>{});
        case EDGE_DTYPE_INT4A_64: return f(DecInt4<64, true>{});
        case EDGE_DTYPE_INT4A_128: return f(DecInt4<128, true>{});
        default: return cudaErrorInvalidValue;
    }
}

cudaError_t gemv_int4_fused(uint32_t dtype, const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in,
                            uint32_t flags, cudaStream_t stream) {
    return with_int4(dtype, [&](auto d) { return launch_fused<decltype(d)>(mats, n_mats, n, in, flags, stream); });
}

cudaError_t gemv_int4_moe(uint32_t dtype, bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream) {
    return with_int4(dtype, [&](auto d) { return launch_moe<decltype(d)>(glu, P, flags, stream); });
}

cudaError_t gemv_int4_glu(uint32_t dtype, const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows,
                          int64_t n, const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream) {
    return with_int4(dtype, [&](auto d) {
        return launch_glu<decltype(d)>(Wg, g_stride, Wu, u_stride, rows, n, in, act, g, flags, stream);
    });
}

}  // namespace cuda_gemv_detail
}  // namespace edge
