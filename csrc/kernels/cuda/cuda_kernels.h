// cuda_kernels.h — host-side C API of the CUDA kernels (csrc/kernels/cuda/*.cu), for the CUDA backend.
//
// Plain functions: device pointers in, work enqueued on `stream`, a cudaError_t back (the launch's
// status; errors inside the kernel surface at the next synchronisation, as always in CUDA). They
// never allocate, synchronise, print or throw, and keep no state between calls, so they can be
// captured in a CUDA graph. All shapes are checked first: cudaErrorInvalidValue for a shape or
// alignment the contract below excludes (nothing is launched then).
//
// GEMV (decode matmul), the gemm_fn contract of csrc/kernels/kernels.h on the GPU:
//   Y[c * ldy + r] = dot(W row r, X column c), r < rows, c < ncols
//   W: rows rows of n elements of `dtype` (quant.h layouts, the file's bytes unchanged), row r at
//      (const char*)W + r * w_stride bytes. Any byte alignment of W and w_stride (block dtypes);
//      f32/f16/bf16 rows need only their element alignment for the fast path and work at any byte
//      alignment through a slower path.
//   X: int_dot dtypes (q8_0, int4*, mxint8, mxfp6, mxfp4, nl4_32): block_q8x activations, column c at
//      X + c * x_stride blocks (n/32 blocks each) — the CPU's format, from cuda_quantize_q8x below;
//      float dtypes (f32, f16, bf16, mxfp8): f32, column c at (const float*)X + c * x_stride.
//      X and Y must be 4-byte aligned (ldy, x_stride in elements).
//   n: a multiple of the dtype's block (and of 32 for block dtypes); f32/f16/bf16 any n >= 1.
//   ncols: any >= 1; the kernels are built for decode (ncols 1..8 per launch; more columns are
//      processed in groups of 8, each group reading W once more).
// Accuracy (tests: csrc/tests/test_cuda_gemv.cu):
//   int_dot dtypes: each 32-element block's integer sum is exact and its term is formed as the CPU
//   reference forms it (gemm_int_ref.cpp); only the f32 order of the sum over blocks differs (one
//   partial sum per lane, then a warp tree), so vs the reference |Δ| ≤ 1e-5·Σ|block terms| + 1e-30,
//   the bound of every SIMD level (kernels.h).
//   float dtypes: f32 products and sums in another order (and fused multiply-adds) than
//   gemm_float_ref.cpp: |Δ| ≤ 1e-5·Σ|w_i·x_i| + 1e-30 vs the reference, the same SIMD bound.
// Limits: the block kernels keep the activations of one column group in shared memory
//   (int_dot: 1.25 bytes per element and column; mxfp8: 4 bytes) beside 20.6 KB of weight buffers (8 warps × 2576 bytes),
//   so one column must fit the device's opt-in shared memory per block: n up to ~170k (int_dot) /
//   ~53k (mxfp8) on an H200, ~119k / ~37k on Orin; larger n returns cudaErrorInvalidValue.
//
// flags: 0, or kCudaOverlapPrevious: launch with programmatic dependent launch (sm_90+; ignored
//   below) so that the kernel starts while the previous kernel of the stream is still running and
//   streams its weights meanwhile; it waits for that kernel (griddepcontrol.wait) before it reads X
//   or writes Y. Only valid when the previous kernel does not write W. Each of these kernels also
//   lets its own successor start early (griddepcontrol.launch_dependents); a successor launched
//   without the attribute still waits for it in full.
//
// quantize_q8x: y column c (n/32 block_q8x at y + c * y_stride blocks) = quantize_q8x_ref(x column c
//   at x + c * x_stride floats), bit for bit (same IEEE operations, no FMA, round-half-even).
//   n % 32 == 0; x 4-byte aligned, y 4-byte aligned.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "../../quant.h"

namespace edge {

// True for the dtypes cuda_gemv implements (every matmul weight dtype of quant.h).
bool cuda_gemv_supported(uint32_t dtype);

constexpr uint32_t kCudaOverlapPrevious = 1;

cudaError_t cuda_gemv(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                      int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, cudaStream_t stream,
                      uint32_t flags = 0);

cudaError_t cuda_quantize_q8x(const float* x, int64_t x_stride, int64_t n, int64_t ncols, block_q8x* y,
                              int64_t y_stride, cudaStream_t stream, uint32_t flags = 0);

// Row ops (rowops.cu; arithmetic in rowops.cuh). cuda_rmsnorm: y[r] = x[r] · s_r · w (w = nullptr: unweighted),
// s_r = 1 / sqrt(Σ x[r]_i² / n + eps), rows rows of n f32 (y may alias x), f32 sums in a block tree.
// cuda_act_mul: g[i] = act(g[i]) · u[i], i < n, act 0 SiLU / 1 ReLU / 2 tanh-GELU (backend.h Act order).
cudaError_t cuda_rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y, cudaStream_t stream);
cudaError_t cuda_act_mul(float* g, const float* u, int64_t n, int act, cudaStream_t stream);

// Fused decode GEMV (one token), gemv.cuh: one launch over n_mats <= kCudaFusedMaxMats matrices of one int_dot
// dtype (cuda_gemv_fused_supported) and width n that share one input, whose block_q8x activation the kernel forms
// itself from f32 (every CTA redoes it in shared memory; nothing goes through device memory):
//   in.kind kCudaInF32      a = x
//           kCudaInRmsnorm  a = cuda_rmsnorm(x, in.norm_w, in.eps) of the one row x [n]
//           kCudaInActMul   a = act(x) · u (cuda_act_mul's arithmetic; x is not written)
//   a_out != nullptr: a (f32, n) is also written there (by one CTA); then, for each matrix i,
//   mats[i].Y[r] = dot(W_i row r, quantize_q8x(a)) (+ mats[i].R[r] when R != nullptr: the residual, one rounded
//   add; R may equal Y), r < rows_i.
// The result is bit for bit that of cuda_rmsnorm / cuda_act_mul, cuda_quantize_q8x, cuda_gemv (ncols 1) and an
// add — the same device functions — so the bound of cuda_gemv holds. W_i: any byte alignment (as cuda_gemv);
// x, u, a_out 16-byte aligned, norm_w, Y, R 4-byte aligned; n % 32 == 0 and a multiple of the dtype's block. flags: as cuda_gemv.
constexpr int kCudaFusedMaxMats = 3;
constexpr int kCudaInF32 = 0, kCudaInRmsnorm = 1, kCudaInActMul = 2;
struct CudaGemvMat {
    const void* W = nullptr;
    int64_t w_stride = 0;  // bytes
    int64_t rows = 0;
    float* Y = nullptr;
    const float* R = nullptr;  // residual added to the result, or nullptr
};
struct CudaGemvInput {
    int kind = kCudaInF32;
    const float* x = nullptr;       // [n]
    const float* norm_w = nullptr;  // kCudaInRmsnorm: the norm's weight [n] or nullptr
    float eps = 0.f;
    const float* u = nullptr;       // kCudaInActMul: [n]
    int act = 0;                    // kCudaInActMul
    float* a_out = nullptr;         // [n] or nullptr
};
bool cuda_gemv_fused_supported(uint32_t dtype);
cudaError_t cuda_gemv_fused(uint32_t dtype, const CudaGemvMat* mats, int n_mats, int64_t n, const CudaGemvInput& in,
                            cudaStream_t stream, uint32_t flags = 0);
// The gate·up pair of a gated FFN with the act·mul in its epilogue: g[r] = act(dot(gate row r, q(a))) · dot(up row
// r, q(a)), r < rows, a formed from `in` as above (one warp walks gate row r, then up row r). Bit for bit
// cuda_gemv_fused({gate, up}) then cuda_act_mul (act: 0 SiLU / 1 ReLU / 2 tanh-GELU). Wg, Wu: one dtype, any
// byte alignment, their own strides; g 4-byte aligned.
cudaError_t cuda_gemv_fused_glu(uint32_t dtype, const void* Wg, int64_t g_stride, const void* Wu, int64_t u_stride, int64_t rows,
                                int64_t n, const CudaGemvInput& in, int act, float* g, cudaStream_t stream, uint32_t flags = 0);

// The experts of one token's MoE FFN (gemv.cuh), every expert resident in device memory and chosen on the device:
// expert e's matrices at table[e] (a device array), ids[j] (device, j < k) the expert of rank j (cuda_moe_route).
//   cuda_moe_glu:  y[j·F + r] = act(dot(gate_{ids[j]} row r, q(a))) · dot(up_{ids[j]} row r, q(a)),  r < F, with a [D]
//                  formed from `in` as cuda_gemv_fused does (f32 or rmsnorm·w; not act·mul)
//   cuda_moe_down: y[j·D + r] = dot(down_{ids[j]} row r, q(x_j)),  x_j = in.x + j·F (in.kind f32), r < D
// (rows, n) = (F, D) for glu, (D, F) for down; stride0 / stride1 = the gate / up row bytes (glu) or the down row
// bytes (down). Bit for bit cuda_gemv_fused_glu / cuda_gemv_fused on the chosen expert's matrices. One dtype
// (cuda_gemv_fused_supported) and stride per matrix role over the whole table; in.x 16-byte aligned (down: F % 4 == 0),
// y 4-byte aligned; k <= 65535. flags: as cuda_gemv.
struct CudaMoeExpert {
    const void* gate = nullptr;
    const void* up = nullptr;
    const void* down = nullptr;
};
struct CudaMoeGemv {
    const CudaMoeExpert* table = nullptr;
    const int32_t* ids = nullptr;
    int k = 0;
    int64_t rows = 0, n = 0;
    int64_t stride0 = 0, stride1 = 0;
    CudaGemvInput in;
    float* y = nullptr;
    int act = 0;  // glu: 0 SiLU / 1 ReLU / 2 tanh-GELU
};
cudaError_t cuda_moe_glu(uint32_t dtype, const CudaMoeGemv& g, cudaStream_t stream, uint32_t flags = 0);
cudaError_t cuda_moe_down(uint32_t dtype, const CudaMoeGemv& g, cudaStream_t stream, uint32_t flags = 0);

// Routing of one token on the device (moe_route.cu): ids[k], w[k] as moe_route (moe.h) of logits[E] — the same
// arithmetic (moe_route_math.h), so the same ids and, but for the ~2^-29 inputs where a double exp rounds to another
// f32 on the two sides, the same weights. One warp; E <= kCudaMoeMaxExperts, 1 <= k <= min(E, kCudaMoeMaxUsed). flags: as cuda_gemv.
constexpr int kCudaMoeMaxExperts = 4096, kCudaMoeMaxUsed = 64;
cudaError_t cuda_moe_route(const float* logits, int64_t E, int64_t k, bool softmax, bool norm_topk, int32_t* ids, float* w,
                           cudaStream_t stream, uint32_t flags = 0);

// LowRank (LoRA) up-projection, lowrank.cu: Y[c·ldy + o] += scale · Σ_{j<r} B[o·r + j] · U[c·r + j] for o < rows,
// c < ncols; B [rows, r], U [ncols, r] f32 (U = A·x by cuda_gemv on the f32 A). The sum in j order without FMA,
// then one product and one add: CpuBackend::low_rank's operations, bit for bit for the same U.
// All pointers 4-byte aligned, rows, r, ncols >= 1, ldy >= rows.
cudaError_t cuda_lowrank_add(const float* B, int64_t rows, int64_t r, const float* U, int64_t ncols, float scale, float* Y,
                             int64_t ldy, cudaStream_t stream);

// Prefill GEMM on the tensor cores, gemm_mma.cu: cuda_gemv's contract and layouts for the int_dot dtypes (block_q8x
// X), for many columns (prefill: ncols = T tokens), on int8 mma.sync (sm_80+: cuda_gemm_mma_supported). Bit-exact
// with the reference gemm (gemm_int_ref.cpp): every block term is formed and added in k order with its roundings.
// Reads W once per BN columns (bn = 32 or 64: the column tile). W at any byte alignment; X, Y 4-byte aligned;
// n % 32 == 0 and a multiple of the dtype's block; ncols <= 65535·32.
bool cuda_gemm_mma_supported(uint32_t dtype, int cc_major);
cudaError_t cuda_gemm_mma(uint32_t dtype, const void* W, int64_t w_stride, int64_t rows, int64_t n, const void* X,
                          int64_t x_stride, int64_t ncols, float* Y, int64_t ldy, cudaStream_t stream, int bn = 64);

}  // namespace edge
