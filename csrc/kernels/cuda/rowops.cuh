// rowops.cuh — the per-element arithmetic of RMSNorm, act·mul and the block_q8x quantizer as device
// functions, shared by their standalone kernels (rowops.cu, quantize_q8x.cu) and by the fused GEMV
// (gemv.cuh, which forms its input with them inside the kernel). One definition each, so the fused
// path computes the same bits as the unfused kernels (tests/test_cuda_gemv.cu checks that, bit for bit).
//
//   row_rms_scale  s = 1 / sqrt(Σ x_i² / n + eps) over one row of n f32, by a whole block: thread t sums
//                  x[t], x[t + blockDim], ... in index order with FMA, then a warp xor-tree and a tree over
//                  the warps (f32; another order than the CPU's loop: the CPU backend's bound applies).
//   rms_apply      y_i = (x_i · s) · w_i (w = nullptr: x_i · s), two rounded products.
//   act_apply      act(g) · u with act 0 SiLU g / (1 + e^-g), 1 ReLU, 2 tanh-GELU (backend.h Act), f32.
//   q8x_lane       one lane's part of quantize_q8x_ref for a warp holding one 32-element block (lane i
//                  holds x_i): d = amax / 127, q_i = clamp(rint(x_i / d)), s = d · Σq (IEEE, no FMA).
//   q8x_lanes8     the same for 8 consecutive lanes holding 4 elements each (the fused GEMV's input stage).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace edge {
namespace cuda_rowops {

// Sum (or max) over the block; every thread gets the result. red: 32 floats of shared memory, free on entry
// (a barrier first protects a previous use).
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = kMax ? fmaxf(v, w) : v + w;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nwarps ? red[lane] : (kMax ? -INFINITY : 0.f);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = kMax ? fmaxf(v, w) : v + w;
    }
    return v;
}

__device__ __forceinline__ float row_rms_scale(const float* __restrict__ x, int64_t n, float eps, float* red) {
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss = __fmaf_rn(x[i], x[i], ss);
    ss = block_reduce<false>(ss, red);
    return 1.0f / sqrtf(ss / (float)n + eps);
}

__device__ __forceinline__ float rms_apply(float x, float s, const float* __restrict__ w, int64_t i) {
    const float v = __fmul_rn(x, s);
    return w ? __fmul_rn(v, w[i]) : v;
}

__device__ __forceinline__ float act_apply(float a, float u, int act) {
    float y;
    if (act == 1) {
        y = a > 0.f ? a : 0.f;
    } else if (act == 2) {
        const float inner = __fmul_rn(0.7978845608028654f, __fadd_rn(a, __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, a), a), a)));
        y = __fmul_rn(__fmul_rn(0.5f, a), __fadd_rn(1.0f, tanhf(inner)));
    } else {
        y = __fdiv_rn(a, __fadd_rn(1.0f, expf(-a)));
    }
    return __fmul_rn(y, u);
}

// Every lane of the warp calls it with its element v; returns q_i, and d and s (the block's scale and
// d · Σq) in every lane.
__device__ __forceinline__ int q8x_lane(float v, float* d_out, float* s_out) {
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __frcp_rn(d) : 0.0f;
    int q = __float2int_rn(__fmul_rn(v, id));
    q = q < -127 ? -127 : (q > 127 ? 127 : q);
    const int sum = __reduce_add_sync(0xffffffffu, q);
    *d_out = d;
    *s_out = __fmul_rn(d, (float)sum);
    return q;
}

// 8 consecutive lanes (an aligned group; every lane of the warp calls it) hold a block's elements 4j .. 4j+3 in
// lane j of the group: returns lane j's code word (elements in order, 4 per word), d and s = d · Σq in every
// lane of the group (max and integer sum are exact in any order: the bits of q8x_lane and quantize_q8x_ref).
__device__ __forceinline__ uint32_t q8x_lanes8(const float (&v)[4], float* d_out, float* s_out) {
    float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __frcp_rn(d) : 0.0f;
    int sum = 0;
    uint32_t word = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
        int q = __float2int_rn(__fmul_rn(v[b], id));
        q = q < -127 ? -127 : (q > 127 ? 127 : q);
        sum += q;
        word |= (uint32_t)(uint8_t)(int8_t)q << (8 * b);
    }
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    *d_out = d;
    *s_out = __fmul_rn(d, (float)sum);
    return word;
}

}  // namespace cuda_rowops
}  // namespace edge
