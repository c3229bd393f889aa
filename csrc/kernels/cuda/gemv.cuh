// gemv.cuh — the decode GEMV kernels behind cuda_gemv (cuda_kernels.h states the contract; this file
// is internal to csrc/kernels/cuda/). Two kernels:
//
// 1. Block dtypes (q8_0, int4_B, int4a_B, mxint8, mxfp8, mxfp6, mxfp4, nl4_32): gemv_blocks_kernel<D, NC>.
//    A CTA of 8 warps; each warp owns whole rows (row = global warp id + k * warps in the grid, a
//    persistent grid sized by occupancy). A row is cut into pieces of whole blocks (<= 2528 bytes);
//    the warp loads each piece's 16-byte-aligned span with coalesced 16-byte streaming loads
//    (ld.global.nc.L1::no_allocate, every weight byte read once from DRAM), parks it in its own
//    shared-memory buffer, and each lane decodes whole blocks from there (lane j: blocks j, j+32, ...),
//    while the next piece's loads are already in flight (software pipelining across pieces and rows).
//    Because the span is aligned down/up to 16 bytes, a warp may read up to 15 bytes before and after
//    a piece inside the same 16-byte granule (never a different page, so never a fault); those bytes
//    are never used. This is why no alignment is needed of W or w_stride.
//    Activations of NC columns are staged once per CTA into shared memory (int_dot: the block_q8x
//    codes, 16-byte chunks XOR-swizzled by 128-byte line so that lanes reading consecutive blocks hit
//    distinct banks; mxfp8: f32 with the same swizzle). The first weight loads are issued before the
//    staging so that the staging latency is hidden.
//    Decoders (D): each turns one block into integer codes packed 4 per word and accumulates
//      acc[c] += (scale * x.d) * (float)isum      (int_dot; isum exact via dp4a)
//      acc[c] += scale * Σ e4m3_i * x_i           (mxfp8; fused multiply-adds in f32)
//    i.e. exactly the per-block terms of gemm_int_ref.cpp / gemm_float_ref.cpp.
// 2. f32 / f16 / bf16: gemv_float_kernel (gemv_float.cu), warp per row, 16-byte loads, x through L1.
//
// The sum over blocks is per lane then a warp xor-tree, so only the f32 summation order differs from
// the reference (bound: cuda_kernels.h).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda_kernels.h"
#include "pdl.cuh"
#include "rowops.cuh"

namespace edge {
namespace cuda_gemv_detail {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kMaxCols = 8;
// 16-byte loads per lane per piece. 5 (s24): a piece holds 2528 bytes of blocks, so a 2048-wide q8_0 row (2176 bytes)
// is one piece instead of 59 + 5 blocks — 1.2B q8 decode +14 %, int4 within ±1.5 % (bench/cuda/RESULTS.md s24).
#ifndef EDGE_CUDA_GEMV_GRAN
#define EDGE_CUDA_GEMV_GRAN 5
#endif
// Tuning experiments only: -DEDGE_CUDA_GEMV_MINB=k adds a min-blocks-per-SM launch bound (register cap).
#ifdef EDGE_CUDA_GEMV_MINB
#define EDGE_GEMV_BOUNDS __launch_bounds__(kThreads, EDGE_CUDA_GEMV_MINB)
#else
#define EDGE_GEMV_BOUNDS __launch_bounds__(kThreads)
#endif
constexpr int kGranPerLane = EDGE_CUDA_GEMV_GRAN;   // 16-byte loads in flight per lane per piece
constexpr int kPieceSpan = 32 * 16 * kGranPerLane;  // aligned bytes a warp loads per piece (2560 at 5)
constexpr int kPieceData = kPieceSpan - 32;         // block bytes per piece (room for misalignment)
constexpr int kWarpBuf = kPieceSpan + 16;           // + slack: decoders read a few bytes past a block
constexpr int kLutBytes = 64;                       // the E2M3 table (mxfp6)

// ---------------------------------------------------------------- device helpers

__device__ __forceinline__ uint4 ld_stream16(const uint8_t* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

using edge::pdl_launch_dependents;  // pdl.cuh
using edge::pdl_wait;

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

// NW 32-bit words starting at byte `off` (any alignment) of a 4-byte-aligned shared buffer: NW + 1
// aligned loads and funnel shifts.
template <int NW>
__device__ __forceinline__ void lds_words(const uint8_t* base, uint32_t off, uint32_t (&o)[NW]) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(base) + (off >> 2);
    const uint32_t sh = (off & 3) * 8;
    uint32_t prev = w[0];
#pragma unroll
    for (int i = 0; i < NW; ++i) {
        const uint32_t next = w[i + 1];
        o[i] = __funnelshift_r(prev, next, sh);
        prev = next;
    }
}

__device__ __forceinline__ uint32_t lds_u16(const uint8_t* base, uint32_t off) {
    return (uint32_t)base[off] | (uint32_t)base[off + 1] << 8;
}

__device__ __forceinline__ float f16_bits_to_f32(uint32_t h) {
    return __half2float(__ushort_as_half((unsigned short)h));
}

// E8M0 -> 2^(e-127); e = 0 is the denormal 2^-127 (as common.h's e8m0_to_f32).
__device__ __forceinline__ float e8m0_f32(uint32_t e) { return __uint_as_float(e ? e << 23 : 0x00400000u); }

// Σ of 32 int8 products: w[0..3] against xa (elements 0..15), w[4..7] against xb (16..31).
__device__ __forceinline__ int dot32(const uint32_t (&w)[8], uint4 xa, uint4 xb) {
    int s = __dp4a((int)w[0], (int)xa.x, 0);
    s = __dp4a((int)w[1], (int)xa.y, s);
    s = __dp4a((int)w[2], (int)xa.z, s);
    s = __dp4a((int)w[3], (int)xa.w, s);
    s = __dp4a((int)w[4], (int)xb.x, s);
    s = __dp4a((int)w[5], (int)xb.y, s);
    s = __dp4a((int)w[6], (int)xb.z, s);
    s = __dp4a((int)w[7], (int)xb.w, s);
    return s;
}

// Byte offset of logical byte a inside one column's activation region: 16-byte chunks XOR-swizzled
// by their 128-byte line, so lanes reading blocks 32, 64 or 128 bytes apart hit distinct banks.
__device__ __forceinline__ uint32_t swz(uint32_t a) { return a ^ (((a >> 7) & 7) << 4); }

// ---------------------------------------------------------------- activations in shared memory

// int_dot activations: per column, the 32 codes of each block (swizzled; interleaved for mxfp4, see
// DecMxfp4) and (d, s) of each block.
struct ActQ8 {
    const uint8_t* q;     // column c at q + c * qcol
    const float2* meta;   // column c, block k at meta[c * nb32 + k]
    const int8_t* lut;    // E2M3 x8 table (mxfp6) or unused
    uint32_t qcol, nb32;
    // Words 4*half .. 4*half+3 of block k's codes (elements 16*half .. 16*half+15 unless interleaved).
    __device__ __forceinline__ uint4 words(int c, int k, int half) const {
        return *reinterpret_cast<const uint4*>(q + c * qcol + swz(32u * k + 16u * half));
    }
    __device__ __forceinline__ float2 ds(int c, int k) const { return meta[c * nb32 + k]; }
};

// f32 activations (mxfp8): column c at x + c * fcol, swizzled.
struct ActF32 {
    const uint8_t* x;
    uint32_t fcol;
    __device__ __forceinline__ float4 chunk(int c, int k, int j) const {  // elements 32k+4j .. +3
        return *reinterpret_cast<const float4*>(x + c * fcol + swz(128u * k + 16u * j));
    }
};

__host__ __device__ constexpr uint32_t round_up(uint32_t v, uint32_t m) { return (v + m - 1) / m * m; }

// Shared bytes of one column's activations.
template <class D>
__host__ __device__ constexpr uint32_t act_col_bytes(uint32_t n) {
    return D::kF32Act ? round_up(4 * n, 128) : round_up(n, 128) + n / 32 * 8;
}

// E2M3 code -> 8 * value, an integer in [-60, 60] (ref.h's e2m3_x8).
__device__ __forceinline__ int e2m3_x8_dev(uint32_t c) {
    const int e = (c >> 3) & 3, m = c & 7;
    const int v = e == 0 ? m : (8 + m) << (e - 1);
    return (c & 0x20) ? -v : v;
}

template <class D, int NC>
__device__ ActQ8 stage_q8(uint8_t* act, const uint8_t* X, int64_t x_stride, int n) {
    const uint32_t nb32 = n / 32, qcol = round_up(n, 128);
    uint8_t* q = act;
    float2* meta = reinterpret_cast<float2*>(act + NC * qcol);
    int8_t* lut = reinterpret_cast<int8_t*>(act + NC * qcol + NC * nb32 * 8);
    for (uint32_t i = threadIdx.x; i < NC * nb32; i += kThreads) {
        const uint32_t c = i / nb32, k = i % nb32;
        const unsigned int* src =
            reinterpret_cast<const unsigned int*>(X + ((int64_t)c * x_stride + k) * (int64_t)sizeof(block_q8x));
        uint32_t w[10];
#pragma unroll
        for (int j = 0; j < 10; ++j) w[j] = __ldg(src + j);
        uint4 a, b;
        if (D::kInterleave) {  // word k = elements 2k, 2k+16, 2k+1, 2k+17
            a = make_uint4(prmt(w[2], w[6], 0x5140), prmt(w[2], w[6], 0x7362), prmt(w[3], w[7], 0x5140),
                           prmt(w[3], w[7], 0x7362));
            b = make_uint4(prmt(w[4], w[8], 0x5140), prmt(w[4], w[8], 0x7362), prmt(w[5], w[9], 0x5140),
                           prmt(w[5], w[9], 0x7362));
        } else {
            a = make_uint4(w[2], w[3], w[4], w[5]);
            b = make_uint4(w[6], w[7], w[8], w[9]);
        }
        *reinterpret_cast<uint4*>(q + c * qcol + swz(32 * k)) = a;
        *reinterpret_cast<uint4*>(q + c * qcol + swz(32 * k + 16)) = b;
        meta[c * nb32 + k] = make_float2(__uint_as_float(w[0]), __uint_as_float(w[1]));
    }
    if (D::kLut && threadIdx.x < 64) lut[threadIdx.x] = (int8_t)e2m3_x8_dev(threadIdx.x);
    return ActQ8{q, meta, lut, qcol, nb32};
}

template <class D, int NC>
__device__ ActF32 stage_f32(uint8_t* act, const uint8_t* X, int64_t x_stride, int n) {
    const uint32_t fcol = round_up(4 * n, 128);
    const float* x = reinterpret_cast<const float*>(X);
    for (uint32_t i = threadIdx.x; i < NC * (uint32_t)(n / 4); i += kThreads) {
        const uint32_t c = i / (n / 4), j = i % (n / 4);
        const float* s = x + (int64_t)c * x_stride + 4 * j;
        *reinterpret_cast<float4*>(act + c * fcol + swz(16 * j)) =
            make_float4(__ldg(s), __ldg(s + 1), __ldg(s + 2), __ldg(s + 3));
    }
    return ActF32{act, fcol};
}

template <class D, int NC>
__device__ __forceinline__ typename D::Act stage(uint8_t* act, const uint8_t* X, int64_t x_stride, int n) {
    if constexpr (D::kF32Act)
        return stage_f32<D, NC>(act, X, x_stride, n);
    else
        return stage_q8<D, NC>(act, X, x_stride, n);
}

// ---------------------------------------------------------------- the fused input stage

// The fused GEMV's activation (cuda_kernels.h cuda_gemv_fused): every CTA forms a = prologue(x) per element
// and quantizes it into the ActQ8 layout of stage_q8, 8 threads per 32-element block (4 elements, one 16-byte
// load each; amax and Σq over the 8 lanes). History, on the H200: a warp per block made each warp quantize
// n/256 blocks one after the other (~5 µs at n = 8192, s17 call 1); a thread per block left 3/4 of the CTA
// idle at n = 2048 with a 32-element chain per thread (s19 profile: the fused int4 GEMVs of the 1.2B shape
// took ~9.5 µs each). The device functions are the standalone kernels' (rowops.cuh), so the codes equal
// cuda_quantize_q8x's of the unfused a.
template <class D>
__device__ ActQ8 stage_fused(uint8_t* act, const CudaGemvInput& in, int n) {
    static_assert(!D::kF32Act, "the fused input stage forms block_q8x activations");
    __shared__ float red[32];
    const uint32_t nb32 = n / 32, qcol = round_up(n, 128);
    uint8_t* q = act;
    float2* meta = reinterpret_cast<float2*>(act + qcol);
    int8_t* lut = reinterpret_cast<int8_t*>(act + qcol + nb32 * 8);
    const float s = in.kind == kCudaInRmsnorm ? cuda_rowops::row_rms_scale(in.x, n, in.eps, red) : 1.0f;
    const bool write_a = in.a_out != nullptr && blockIdx.x == 0;
    // 8 lanes per block, 4 elements (one code word) each: thread t has block t / 8, word t % 8. The loop runs
    // whole warps (the bound rounded up to 32) so that the 8-lane shuffles see every lane.
    const uint32_t nb8 = nb32 * 8, lim = round_up(nb8, 32);
    const int lane = threadIdx.x & 31, g0 = lane & ~7;
    constexpr int U = 4;  // a thread's loads of U iterations are issued before any of them is used (n = 8192: 8)
    for (uint32_t t0 = threadIdx.x; t0 < lim; t0 += U * kThreads) {
        float4 xs[U], us[U], ws[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const uint32_t t = t0 + u * kThreads;
            if (t < nb8) {
                const int64_t e0 = 4 * (int64_t)t;  // = 32 · (t / 8) + 4 · (t % 8)
                xs[u] = *reinterpret_cast<const float4*>(in.x + e0);
                if (in.kind == kCudaInActMul) us[u] = *reinterpret_cast<const float4*>(in.u + e0);
                if (in.kind == kCudaInRmsnorm && in.norm_w) ws[u] = *reinterpret_cast<const float4*>(in.norm_w + e0);
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const uint32_t t = t0 + u * kThreads;
            if (t >= lim) break;  // warp-uniform: lim and the strides are multiples of 32
            const bool on = t < nb8;
            const uint32_t k = t >> 3, j = t & 7;
            const int64_t e0 = 4 * (int64_t)t;
            float v[4] = {0.f, 0.f, 0.f, 0.f};
            if (on) {
                v[0] = xs[u].x, v[1] = xs[u].y, v[2] = xs[u].z, v[3] = xs[u].w;
                if (in.kind == kCudaInRmsnorm) {
                    const float w4[4] = {ws[u].x, ws[u].y, ws[u].z, ws[u].w};
#pragma unroll
                    for (int i = 0; i < 4; ++i) v[i] = cuda_rowops::rms_apply(v[i], s, in.norm_w ? w4 + i : nullptr, 0);
                } else if (in.kind == kCudaInActMul) {
                    v[0] = cuda_rowops::act_apply(v[0], us[u].x, in.act);
                    v[1] = cuda_rowops::act_apply(v[1], us[u].y, in.act);
                    v[2] = cuda_rowops::act_apply(v[2], us[u].z, in.act);
                    v[3] = cuda_rowops::act_apply(v[3], us[u].w, in.act);
                }
                if (write_a) *reinterpret_cast<float4*>(in.a_out + e0) = make_float4(v[0], v[1], v[2], v[3]);
            }
            float d, bs;
            const uint32_t word = cuda_rowops::q8x_lanes8(v, &d, &bs);
            uint32_t out = word;
            if (D::kInterleave) {  // stage_q8's order: word o = prmt(w[o / 2], w[o / 2 + 4], o odd ? 0x7362 : 0x5140)
                const uint32_t wa = __shfl_sync(0xffffffffu, word, g0 + (int)(j >> 1));
                const uint32_t wb = __shfl_sync(0xffffffffu, word, g0 + (int)(j >> 1) + 4);
                out = prmt(wa, wb, (j & 1) ? 0x7362 : 0x5140);
            }
            if (on) {
                *reinterpret_cast<uint32_t*>(q + swz(32 * k + 4 * j)) = out;
                if (j == 0) meta[k] = make_float2(d, bs);
            }
        }
    }
    if (D::kLut && threadIdx.x < 64) lut[threadIdx.x] = (int8_t)e2m3_x8_dev(threadIdx.x);
    return ActQ8{q, meta, lut, qcol, nb32};
}

// ---------------------------------------------------------------- the block kernel

// Which weight rows a launch covers and where their results go. RowsOne: one matrix, NC columns of Y (ldy
// apart). RowsFused: up to kCudaFusedMaxMats matrices one after the other (launch row g: matrix m with
// end[m-1] <= g < end[m]), one column, an optional residual per matrix. RowsGlu: kSub = 2 matrix rows per
// launch row (gate row g, then up row g, walked by one warp), stored as act(gate)·up. kSub = 1 elsewhere.
struct RowsOne {
    static constexpr int kSub = 1;
    const uint8_t* W;
    int64_t w_stride;
    float* Y;
    int64_t ldy;
    __device__ __forceinline__ const uint8_t* row(int g, int) const { return W + (int64_t)g * w_stride; }
    __device__ __forceinline__ void store(int g, int c, float v) const { Y[(int64_t)c * ldy + g] = v; }
};

struct FusedParams {
    const uint8_t* W[kCudaFusedMaxMats];
    int64_t w_stride[kCudaFusedMaxMats];
    float* Y[kCudaFusedMaxMats];
    const float* R[kCudaFusedMaxMats];
    int end[kCudaFusedMaxMats];  // cumulative rows; unused matrices repeat the total
    int n;
    int act;  // RowsGlu
    CudaGemvInput in;
};

struct RowsFused {
    static constexpr int kSub = 1;
    const FusedParams& P;
    __device__ __forceinline__ int mat(int g) const { return g < P.end[0] ? 0 : (g < P.end[1] ? 1 : 2); }
    __device__ __forceinline__ const uint8_t* row(int g, int) const {
        const int m = mat(g);
        const int r = m == 0 ? g : g - P.end[m - 1];
        const uint8_t* W = m == 0 ? P.W[0] : (m == 1 ? P.W[1] : P.W[2]);
        const int64_t ws = m == 0 ? P.w_stride[0] : (m == 1 ? P.w_stride[1] : P.w_stride[2]);
        return W + (int64_t)r * ws;
    }
    __device__ __forceinline__ void store(int g, int, float v) const {
        const int m = mat(g);
        const int r = m == 0 ? g : g - P.end[m - 1];
        float* Y = m == 0 ? P.Y[0] : (m == 1 ? P.Y[1] : P.Y[2]);
        const float* R = m == 0 ? P.R[0] : (m == 1 ? P.R[1] : P.R[2]);
        Y[r] = R ? __fadd_rn(R[r], v) : v;
    }
};

// cuda_gemv_fused_glu: P.W[0] / P.W[1] = gate / up (P.end[0] rows each), P.Y[0] = g, P.act.
struct RowsGlu {
    static constexpr int kSub = 2;
    const FusedParams& P;
    __device__ __forceinline__ const uint8_t* row(int g, int sub) const { return P.W[sub] + (int64_t)g * P.w_stride[sub]; }
    __device__ __forceinline__ void store2(int g, float gate, float up) const {
        P.Y[0][g] = cuda_rowops::act_apply(gate, up, P.act);
    }
};

// The kernel body (gemv.cuh header, point 1): `rows` launch rows of Rows::kSub matrix rows of n elements each
// (pieces 0 .. np-1 of sub-row 0, then those of sub-row 1); stage_act() fills the activations in shared memory
// (after the first weight loads are in flight and the previous kernel is done).
template <class D, int NC, class Rows, class Stage>
__device__ __forceinline__ void gemv_blocks_body(const Rows& R, int rows, int n, Stage stage_act) {
    extern __shared__ __align__(128) uint8_t smem[];
    constexpr int BB = D::kBB;
    constexpr int BPP = kPieceData / BB;  // blocks per piece
    constexpr int kSub = Rows::kSub;
    static_assert(kSub == 1 || NC == 1, "sub-rows have one column");
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nb = n / D::kB;
    const int np = (nb + BPP - 1) / BPP;  // pieces per matrix row
    const int npr = kSub * np;             // pieces per launch row
    uint8_t* buf = smem + warp * kWarpBuf;
    const int total_warps = gridDim.x * kWarps;

    int row = blockIdx.x * kWarps + warp, p = 0;
    uint4 reg[kGranPerLane];
    int ng = 0, nblk = 0;
    uint32_t off0 = 0;
    auto issue = [&](int r, int pp) {
        const int sub = kSub == 1 ? 0 : (pp >= np);
        const int b0 = (pp - sub * np) * BPP;
        nblk = min(BPP, nb - b0);
        const uint8_t* base = R.row(r, sub) + (int64_t)b0 * BB;
        const uintptr_t a0 = (uintptr_t)base & ~(uintptr_t)15;
        const uintptr_t a1 = ((uintptr_t)base + (uintptr_t)nblk * BB + 15) & ~(uintptr_t)15;
        off0 = (uint32_t)((uintptr_t)base - a0);
        ng = (int)((a1 - a0) >> 4);
#pragma unroll
        for (int u = 0; u < kGranPerLane; ++u) {
            const int g = lane + 32 * u;
            if (g < ng) reg[u] = ld_stream16(reinterpret_cast<const uint8_t*>(a0) + 16 * g);
        }
    };
    pdl_launch_dependents();
    if (row < rows) issue(row, p);  // weights only: they may be read before the previous kernel ends
    pdl_wait();                     // X (and Y) belong to the stream order

    const typename D::Act A = stage_act(smem + kWarps * kWarpBuf);
    __syncthreads();

    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[c] = 0.0f;
    float first = 0.0f;  // kSub = 2: lane 0's sum of sub-row 0
    while (row < rows) {
        __syncwarp();  // every lane is done reading the previous piece
#pragma unroll
        for (int u = 0; u < kGranPerLane; ++u) {
            const int g = lane + 32 * u;
            if (g < ng) *reinterpret_cast<uint4*>(buf + 16 * g) = reg[u];
        }
        __syncwarp();
        const int cur_row = row, cur_p = p, cur_nblk = nblk;
        const uint32_t cur_off0 = off0;
        if (++p == npr) {
            p = 0;
            row += total_warps;
        }
        if (row < rows) issue(row, p);  // in flight while this piece is decoded

        const int cur_sub = kSub == 1 ? 0 : (cur_p >= np), cur_pl = cur_p - cur_sub * np;
        for (int j = lane; j < cur_nblk; j += 32)
            D::template dot<NC>(buf, cur_off0 + (uint32_t)(j * BB), A, (cur_pl * BPP + j) * (D::kB / 32), acc);

        if (cur_pl == np - 1) {
#pragma unroll
            for (int c = 0; c < NC; ++c) {
                float v = acc[c];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                if constexpr (kSub == 1) {
                    if (lane == c) R.store(cur_row, c, v);
                } else if (cur_sub == 0) {
                    first = v;
                } else if (lane == 0) {
                    R.store2(cur_row, first, v);
                }
                acc[c] = 0.0f;
            }
        }
    }
}

template <class D, int NC>
struct StageInput {
    const uint8_t* X;
    int64_t x_stride;
    int n;
    __device__ __forceinline__ typename D::Act operator()(uint8_t* act) const { return stage<D, NC>(act, X, x_stride, n); }
};

template <class D, int NC>
__global__ void EDGE_GEMV_BOUNDS gemv_blocks_kernel(const uint8_t* __restrict__ W, int64_t w_stride,
                                                               int rows, int n, const uint8_t* __restrict__ X,
                                                               int64_t x_stride, float* __restrict__ Y, int64_t ldy) {
    gemv_blocks_body<D, NC>(RowsOne{W, w_stride, Y, ldy}, rows, n, StageInput<D, NC>{X, x_stride, n});
}

template <class D>
struct StageFused {
    const CudaGemvInput& in;
    int n;
    __device__ __forceinline__ ActQ8 operator()(uint8_t* act) const { return stage_fused<D>(act, in, n); }
};

template <class D>
__global__ void EDGE_GEMV_BOUNDS gemv_fused_kernel(const __grid_constant__ FusedParams P) {
    gemv_blocks_body<D, 1>(RowsFused{P}, P.end[kCudaFusedMaxMats - 1], P.n, StageFused<D>{P.in, P.n});
}

template <class D>
__global__ void EDGE_GEMV_BOUNDS gemv_glu_kernel(const __grid_constant__ FusedParams P) {
    gemv_blocks_body<D, 1>(RowsGlu{P}, P.end[0], P.n, StageFused<D>{P.in, P.n});
}

// ---------------------------------------------------------------- the experts of one token (cuda_moe_glu / _down)

// A gate·up pair at explicit addresses (RowsGlu's rows and store for one expert of the table).
struct RowsPair {
    static constexpr int kSub = 2;
    const uint8_t* Wg;
    const uint8_t* Wu;
    int64_t gs, us;
    float* Y;
    int act;
    __device__ __forceinline__ const uint8_t* row(int g, int sub) const { return sub ? Wu + (int64_t)g * us : Wg + (int64_t)g * gs; }
    __device__ __forceinline__ void store2(int g, float gate, float up) const { Y[g] = cuda_rowops::act_apply(gate, up, act); }
};

// CTA row blockIdx.y serves rank j = blockIdx.y: its expert's matrices come from the table at ids[j], which the
// predecessor (the router) wrote, so the body's early weight loads wait for it here.
template <class D>
__global__ void EDGE_GEMV_BOUNDS moe_glu_kernel(const __grid_constant__ CudaMoeGemv P) {
    pdl_launch_dependents();
    pdl_wait();
    const CudaMoeExpert e = P.table[P.ids[blockIdx.y]];
    const CudaGemvInput in = P.in;
    const RowsPair R{static_cast<const uint8_t*>(e.gate), static_cast<const uint8_t*>(e.up), P.stride0, P.stride1,
                     P.y + (int64_t)blockIdx.y * P.rows, P.act};
    gemv_blocks_body<D, 1>(R, (int)P.rows, (int)P.n, StageFused<D>{in, (int)P.n});
}

template <class D>
__global__ void EDGE_GEMV_BOUNDS moe_down_kernel(const __grid_constant__ CudaMoeGemv P) {
    pdl_launch_dependents();
    pdl_wait();
    const CudaMoeExpert e = P.table[P.ids[blockIdx.y]];
    CudaGemvInput in = P.in;
    in.x += (int64_t)blockIdx.y * P.n;
    const RowsOne R{static_cast<const uint8_t*>(e.down), P.stride0, P.y + (int64_t)blockIdx.y * P.rows, P.rows};
    gemv_blocks_body<D, 1>(R, (int)P.rows, (int)P.n, StageFused<D>{in, (int)P.n});
}

// ---------------------------------------------------------------- host side

// Grid of a persistent kernel: enough CTAs to cover `rows` with one warp per row, at most what stays
// resident at once.
// ny > 1: a grid of ny CTA rows (one per expert) sharing what stays resident.
template <class K>
inline cudaError_t persistent_grid(K kernel, size_t smem, int64_t rows, int* grid, int ny = 1) {
    int dev = 0, sms = 0, per_sm = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem);
    if (e != cudaSuccess) return e;
    if (per_sm < 1) return cudaErrorInvalidConfiguration;
    const int64_t need = (rows + kWarps - 1) / kWarps;
    const int64_t cap = std::max<int64_t>(1, (int64_t)sms * per_sm / ny);
    *grid = (int)(need < cap ? need : cap);
    return cudaSuccess;
}

// Launches kernel<<<grid, kThreads, smem, stream>>>(args...), PDL-launched when `overlap` (pdl.cuh).
template <class... P, class... A>
inline cudaError_t launch_kernel(void (*kernel)(P...), int grid, size_t smem, cudaStream_t stream, bool overlap,
                                 A... args) {
    return launch_pdl(kernel, dim3((unsigned)grid), dim3(kThreads), smem, stream, overlap, args...);
}

inline size_t blocks_fixed_smem() { return (size_t)kWarps * kWarpBuf; }

template <class D, int NC>
cudaError_t launch_blocks_nc(const uint8_t* W, int64_t w_stride, int64_t rows, int64_t n, const uint8_t* X,
                             int64_t x_stride, float* Y, int64_t ldy, bool overlap, cudaStream_t stream) {
    auto kernel = gemv_blocks_kernel<D, NC>;
    const size_t smem = blocks_fixed_smem() + (size_t)NC * act_col_bytes<D>((uint32_t)n) + kLutBytes;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    int grid = 0;
    e = persistent_grid(kernel, smem, rows, &grid);
    if (e != cudaSuccess) return e;
    return launch_kernel(kernel, grid, smem, stream, overlap, W, w_stride, (int)rows, (int)n, X, x_stride, Y, ldy);
}

// Shared-memory bytes the block kernel may give the activations of one column group.
constexpr size_t kActBudget = 96 * 1024;

template <class D>
cudaError_t launch_blocks(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                          int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream) {
    const bool overlap = (flags & kCudaOverlapPrevious) != 0;
    if (rows < 0 || ncols < 0 || n <= 0 || n % D::kB != 0 || n % 32 != 0 || rows > INT_MAX || n > INT_MAX / 4)
        return cudaErrorInvalidValue;
    if (rows == 0 || ncols == 0) return cudaSuccess;
    if (W == nullptr || X == nullptr || Y == nullptr || ((uintptr_t)X & 3) || ((uintptr_t)Y & 3) || ldy < rows ||
        x_stride < 0)
        return cudaErrorInvalidValue;
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    const size_t per_col = act_col_bytes<D>((uint32_t)n);
    const size_t fixed = blocks_fixed_smem() + kLutBytes;
    if (fixed + per_col > (size_t)optin) return cudaErrorInvalidValue;  // one column does not fit
    int64_t group = (int64_t)(kActBudget / per_col);
    if (group < 1) group = 1;
    if (group > kMaxCols) group = kMaxCols;
    const uint8_t* w = static_cast<const uint8_t*>(W);
    const uint8_t* x = static_cast<const uint8_t*>(X);
    const int64_t x_col_bytes = x_stride * (D::kF32Act ? 4 : (int64_t)sizeof(block_q8x));
    for (int64_t c0 = 0; c0 < ncols; c0 += group) {
        const int64_t g = ncols - c0 < group ? ncols - c0 : group;
        const uint8_t* xc = x + c0 * x_col_bytes;
        float* yc = Y + c0 * ldy;
        switch (g) {
            case 1: e = launch_blocks_nc<D, 1>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            case 2: e = launch_blocks_nc<D, 2>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            case 3: e = launch_blocks_nc<D, 3>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            case 4: e = launch_blocks_nc<D, 4>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            case 5: e = launch_blocks_nc<D, 5>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            case 6: e = launch_blocks_nc<D, 6>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            case 7: e = launch_blocks_nc<D, 7>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
            default: e = launch_blocks_nc<D, 8>(w, w_stride, rows, n, xc, x_stride, yc, ldy, overlap, stream); break;
        }
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

// The fused GEMVs' input (cuda_kernels.h cuda_gemv_fused): n and the pointers `in` reads.
template <class D>
bool fused_input_ok(int64_t n, const CudaGemvInput& in) {
    return n > 0 && n % D::kB == 0 && n % 32 == 0 && n <= INT_MAX / 4 && in.kind >= kCudaInF32 && in.kind <= kCudaInActMul &&
           in.x != nullptr && ((uintptr_t)in.x & 15) == 0 &&
           (in.kind != kCudaInActMul || (in.u != nullptr && ((uintptr_t)in.u & 15) == 0 && in.act >= 0 && in.act <= 2)) &&
           ((uintptr_t)in.norm_w & 3) == 0 && ((uintptr_t)in.a_out & 15) == 0;
}

// One launch of a fused kernel (gemv_fused_kernel / gemv_glu_kernel) over `rows` launch rows of P.
template <class D, class Params>
cudaError_t launch_fused_params(void (*kernel)(Params), const Params& P, int64_t rows, uint32_t flags,
                                cudaStream_t stream, int ny = 1) {
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    const size_t smem = blocks_fixed_smem() + act_col_bytes<D>((uint32_t)P.n) + kLutBytes;
    if (smem + 32 * sizeof(float) > (size_t)optin) return cudaErrorInvalidValue;
    e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    int grid = 0;
    e = persistent_grid(kernel, smem, rows, &grid, ny);
    if (e != cudaSuccess) return e;
    return launch_pdl(kernel, dim3((unsigned)grid, (unsigned)ny), dim3(kThreads), smem, stream, (flags & kCudaOverlapPrevious) != 0, P);
}

// cuda_gemv_fused for decoder D (cuda_kernels.h): checks, then one launch over the n_mats matrices.
template <class D>
cudaError_t launch_fused(const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in, uint32_t flags,
                         cudaStream_t stream) {
    if (n_mats < 1 || n_mats > kCudaFusedMaxMats || !fused_input_ok<D>(n, in)) return cudaErrorInvalidValue;
    FusedParams P = {};
    int64_t total = 0;
    for (int i = 0; i < kCudaFusedMaxMats; ++i) {
        if (i < n_mats) {
            const CudaGemvMat& m = mats[i];
            if (m.rows < 0 || (m.rows > 0 && (m.W == nullptr || m.Y == nullptr)) || ((uintptr_t)m.Y & 3) ||
                ((uintptr_t)m.R & 3))
                return cudaErrorInvalidValue;
            P.W[i] = static_cast<const uint8_t*>(m.W);
            P.w_stride[i] = m.w_stride;
            P.Y[i] = m.Y;
            P.R[i] = m.R;
            total += m.rows;
            if (total > INT_MAX) return cudaErrorInvalidValue;
        }
        P.end[i] = (int)total;
    }
    P.n = (int)n;
    P.in = in;
    if (total == 0) return cudaSuccess;
    return launch_fused_params<D>(gemv_fused_kernel<D>, P, total, flags, stream);
}

// cuda_gemv_fused_glu for decoder D: gate / up of `rows` rows each, g = act(gate)·up.
template <class D>
cudaError_t launch_glu(const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows, int64_t n,
                       const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream) {
    if (rows < 0 || rows > INT_MAX || act < 0 || act > 2 || !fused_input_ok<D>(n, in) ||
        (rows > 0 && (Wg == nullptr || Wu == nullptr || g == nullptr)) || ((uintptr_t)g & 3))
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    FusedParams P = {};
    P.W[0] = static_cast<const uint8_t*>(Wg);
    P.W[1] = static_cast<const uint8_t*>(Wu);
    P.w_stride[0] = g_stride;
    P.w_stride[1] = u_stride;
    P.Y[0] = g;
    for (int i = 0; i < kCudaFusedMaxMats; ++i) P.end[i] = (int)rows;
    P.n = (int)n;
    P.act = act;
    P.in = in;
    return launch_fused_params<D>(gemv_glu_kernel<D>, P, rows, flags, stream);
}

// cuda_moe_glu / cuda_moe_down for decoder D: one launch of k CTA rows.
template <class D>
cudaError_t launch_moe(bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream) {
    if (P.k < 1 || P.k > 65535 || P.rows < 0 || P.rows > INT_MAX || !fused_input_ok<D>(P.n, P.in) ||
        P.in.kind == kCudaInActMul || (!glu && (P.n % 4 || P.in.kind != kCudaInF32)) ||
        !P.table || !P.ids || !P.y || ((uintptr_t)P.y & 3) || (glu && (P.act < 0 || P.act > 2)))
        return cudaErrorInvalidValue;
    if (P.rows == 0) return cudaSuccess;
    return glu ? launch_fused_params<D>(moe_glu_kernel<D>, P, P.rows, flags, stream, P.k)
               : launch_fused_params<D>(moe_down_kernel<D>, P, P.rows, flags, stream, P.k);
}

// ---------------------------------------------------------------- per-family entry points

cudaError_t gemv_int4(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                      int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_nl4(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                        int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_q8_0(const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X, int64_t x_stride,
                      int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_mx(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                    int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_int4_fused(uint32_t dtype, const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in,
                            uint32_t flags, cudaStream_t stream);
cudaError_t gemv_q8_0_fused(const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in, uint32_t flags,
                            cudaStream_t stream);
cudaError_t gemv_int4_moe(uint32_t dtype, bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_q8_0_moe(bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_int4_glu(uint32_t dtype, const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows,
                          int64_t n, const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_q8_0_glu(const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows, int64_t n,
                          const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_nl4_fused(const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in, uint32_t flags,
                           cudaStream_t stream);
cudaError_t gemv_nl4_moe(bool glu, const CudaMoeGemv& P, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_nl4_glu(const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows, int64_t n,
                         const CudaGemvInput& in, int act, float* g, uint32_t flags, cudaStream_t stream);
cudaError_t gemv_float(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                       int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, uint32_t flags, cudaStream_t stream);

}  // namespace cuda_gemv_detail
}  // namespace edge
