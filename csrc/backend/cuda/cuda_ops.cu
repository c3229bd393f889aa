// cuda_ops.cu — the CUDA backend's element-wise, RoPE, KV cache, attention and MoE data-movement ops
// (cuda_backend.h; contracts in backend/backend.h). One kernel per op, launched on the backend's stream.
// Where the CPU reference does one product and one sum per element (rope, combine, add) the kernels
// use __fmul_rn / __fadd_rn so no fused multiply-add changes the rounding: those ops give the CPU's bits
// on x86. Reductions (rmsnorm, attention) use a block tree: another f32 order than the CPU's loops.
#include <cmath>

#include "../../kernels/cuda/cuda_kernels.h"
#include "../../kernels/cuda/pdl.cuh"
#include "../../kernels/cuda/rowops.cuh"
#include "../../moe.h"
#include "../planner.h"
#include "cuda_backend.h"

namespace edge {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

using cuda_rowops::block_reduce;

__global__ void add_bias_k(float* y, const float* __restrict__ b, int64_t rows, int64_t n) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < rows * n) y[i] = __fadd_rn(y[i], b[i % n]);
}

__global__ void add_k(float* x, const float* __restrict__ y, int64_t n) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) x[i] = __fadd_rn(x[i], y[i]);
}

__global__ void scale_k(float* x, float s, int64_t n) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) x[i] = __fmul_rn(x[i], s);
}

// ds: the device step's inputs (cuda_step.cu) — pos0 is read from there when given.
__global__ void rope_angles_k(int64_t pos0, int64_t T, const float* __restrict__ inv_freq, int64_t half, float* c, float* s,
                              const CudaStepInputs* ds) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= T * half) return;
    if (ds) pos0 = ds->pos;
    const float angle = __fmul_rn((float)(pos0 + i / half), inv_freq[i % half]);
    c[i] = cosf(angle);
    s[i] = sinf(angle);
}

__global__ void rope_k(float* x, int64_t T, int64_t heads, int64_t Dh, const float* __restrict__ c, const float* __restrict__ s) {
    const int64_t half = Dh / 2, i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= T * heads * half) return;
    const int64_t t = i / (heads * half), j = i % half;
    float* v = x + (i / half) * Dh;
    const float a = v[j], b = v[j + half], cs = c[t * half + j], sn = s[t * half + j];
    v[j] = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
    v[j + half] = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
}

__global__ void kv_append_k(float* kc, float* vc, int64_t k_head_stride, const float* __restrict__ k, const float* __restrict__ v,
                            int64_t T, int64_t pos0, int64_t Hkv, int64_t Dh, const CudaStepInputs* ds) {
    const int64_t Dkv = Hkv * Dh, i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= T * Dkv) return;
    if (ds) pos0 = ds->pos;
    const int64_t t = i / Dkv, h = (i % Dkv) / Dh, d = i % Dh, pos = pos0 + t;
    kc[h * k_head_stride + (pos / kKTile) * kKTile * Dh + d * kKTile + pos % kKTile] = k[i];
    vc[pos * Dkv + h * Dh + d] = v[i];
}

// rope_k over q (T·H·half pairs) and k (T·Hkv·half pairs, each rotated pair also written to the cache), then
// kv_append_k's V copy (T·Dkv): one launch, the same operations as the three kernels.
__global__ void rope_kv_k(float* q, float* k, const float* __restrict__ v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh,
                          const float* __restrict__ c, const float* __restrict__ s, float* kc, float* vc, int64_t k_head_stride,
                          int64_t pos0, const CudaStepInputs* ds) {
    const int64_t half = Dh / 2, nq = T * H * half, nk = T * Hkv * half, Dkv = Hkv * Dh;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    pdl_launch_dependents();  // PDL-launched (pdl.cuh): the attention may start its prologue
    pdl_wait();
    if (ds) pos0 = ds->pos;
    if (i < nq + nk) {
        const bool isq = i < nq;
        if (!isq) i -= nq;
        const int64_t heads = isq ? H : Hkv, t = i / (heads * half), j = i % half;
        float* vv = (isq ? q : k) + (i / half) * Dh;
        const float a = vv[j], b = vv[j + half], cs = c[t * half + j], sn = s[t * half + j];
        const float r0 = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn)), r1 = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
        vv[j] = r0;
        vv[j + half] = r1;
        if (!isq) {
            const int64_t h = (i / half) % Hkv, pos = pos0 + t;
            float* kt = kc + h * k_head_stride + (pos / kKTile) * kKTile * Dh + pos % kKTile;
            kt[j * kKTile] = r0;
            kt[(j + half) * kKTile] = r1;
        }
        return;
    }
    i -= nq + nk;
    if (i >= T * Dkv) return;
    const int64_t t = i / Dkv;
    vc[(pos0 + t) * Dkv + i % Dkv] = v[i];
}

// One block per (token, head): scores of its positions in shared memory, softmax, then V.
// Shared memory: Dh floats of q, n_pos floats of scores, 32 floats of reduction scratch.
__global__ void attention_k(const float* __restrict__ q, const float* __restrict__ kc, const float* __restrict__ vc,
                            int64_t k_head_stride, int64_t pos0, int H, int Hkv, int Dh, int64_t window, float* out,
                            const CudaStepInputs* ds) {
    extern __shared__ float sh[];
    if (ds) pos0 = ds->pos;
    const int t = blockIdx.x / H, h = blockIdx.x % H, kvh = h / (H / Hkv);
    const int64_t pos = pos0 + t, pb = window > 0 ? (pos - window + 1 > 0 ? pos - window + 1 : 0) : 0, n = pos - pb + 1;
    const int64_t Dq = (int64_t)H * Dh, Dkv = (int64_t)Hkv * Dh;
    float* qs = sh;
    float* red = sh + Dh;
    float* s = red + 32;
    for (int i = threadIdx.x; i < Dh; i += blockDim.x) qs[i] = q[t * Dq + (int64_t)h * Dh + i];
    __syncthreads();
    const float scale = 1.0f / sqrtf((float)Dh);
    const float* kh = kc + kvh * k_head_stride;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const int64_t p = pb + j;
        const float* tile = kh + (p / kKTile) * kKTile * Dh + p % kKTile;
        float d = 0.f;
        for (int i = 0; i < Dh; ++i) d += qs[i] * tile[(int64_t)i * kKTile];
        s[j] = d * scale;
        m = fmaxf(m, s[j]);
    }
    m = block_reduce<true>(m, red);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    sum = block_reduce<false>(sum, red);  // its barriers also publish s[]
    const float inv = 1.0f / sum;
    const float* vh = vc + (int64_t)kvh * Dh;
    for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
        float acc = 0.f;
        for (int64_t j = 0; j < n; ++j) acc += s[j] * inv * vh[(pb + j) * Dkv + i];
        out[t * Dq + (int64_t)h * Dh + i] = acc;
    }
}

__global__ void gather_k(const float* __restrict__ src, int64_t D, const int32_t* __restrict__ routes, int64_t n, int64_t k, float* dst) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n * D) dst[i] = src[(routes[i / D] / k) * D + i % D];
}

__global__ void scatter_k(const float* __restrict__ ye, int64_t D, const int32_t* __restrict__ routes, int64_t n, float* yk) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n * D) yk[(int64_t)routes[i / D] * D + i % D] = ye[i];
}

__global__ void combine_k(const float* __restrict__ yk, const float* __restrict__ w, int64_t T, int64_t k, int64_t D, float* x) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= T * D) return;
    const int64_t t = i / D, d = i % D;
    const float* y = yk + t * k * D + d;
    float acc = __fmul_rn(w[t * k], y[0]);
    for (int64_t j = 1; j < k; ++j) acc = __fadd_rn(acc, __fmul_rn(w[t * k + j], y[j * D]));
    x[i] = __fadd_rn(x[i], acc);
}

int64_t attention_smem_bytes(int64_t ctx, int64_t Dh) { return (Dh + 32 + ctx) * (int64_t)sizeof(float); }

}  // namespace

Status cuda_attention_prepare(int64_t ctx, int64_t max_dh, int64_t max_smem) {
    const int64_t bytes = attention_smem_bytes(ctx, max_dh);
    if (bytes > max_smem)
        return status_error(Code::UNSUPPORTED, strfmt("CUDA attention keeps a head's scores in shared memory: ctx %lld needs %lld bytes, "
                                                      "the GPU has %lld per block; use a shorter --ctx",
                                                      (long long)ctx, (long long)bytes, (long long)max_smem));
    cudaError_t e = cudaFuncSetAttribute(attention_k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return status_error(Code::UNSUPPORTED, strfmt("CUDA attention: %s", cudaGetErrorString(e)));
    return Status::ok();
}

void CudaBackend::rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y) {
    note(cuda_rmsnorm(x, w, eps, rows, n, y, stream_), "rmsnorm");  // kernels/cuda/rowops.cu
}

void CudaBackend::add_bias(float* y, const float* b, int64_t rows, int64_t n) {
    if (rows * n > 0) add_bias_k<<<blocks_for(rows * n), kThreads, 0, stream_>>>(y, b, rows, n);
}

void CudaBackend::add(float* x, const float* y, int64_t n) {
    if (n > 0) add_k<<<blocks_for(n), kThreads, 0, stream_>>>(x, y, n);
}

void CudaBackend::act_mul(float* g, const float* u, int64_t n, Act act) {
    note(cuda_act_mul(g, u, n, (int)act, stream_), "act_mul");  // kernels/cuda/rowops.cu
}

void CudaBackend::scale(float* x, float s, int64_t n) {
    if (n > 0) scale_k<<<blocks_for(n), kThreads, 0, stream_>>>(x, s, n);
}

void CudaBackend::rope_angles(int64_t pos0, int64_t T, const float* inv_freq, int64_t half, float* c, float* s) {
    if (T * half > 0)
        rope_angles_k<<<blocks_for(T * half), kThreads, 0, stream_>>>(pos0, T, inv_freq, half, c, s, in_step_ ? step_ : nullptr);
}

void CudaBackend::rope(float* x, int64_t T, int64_t heads, int64_t Dh, const float* c, const float* s) {
    const int64_t n = T * heads * (Dh / 2);
    if (n > 0) rope_k<<<blocks_for(n), kThreads, 0, stream_>>>(x, T, heads, Dh, c, s);
}

void CudaBackend::kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T, int64_t pos0, int64_t Hkv, int64_t Dh) {
    const int64_t n = T * Hkv * Dh;
    if (n > 0)
        kv_append_k<<<blocks_for(n), kThreads, 0, stream_>>>(kv.k, kv.v, kv.k_head_stride, k, v, T, pos0, Hkv, Dh,
                                                             in_step_ ? step_ : nullptr);
}

void CudaBackend::rope_kv_append(float* q, float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh,
                                 const float* cos, const float* sin, const KvLayer& kv, int64_t pos0) {
    if (!fuse_ || Dh % 2 || kv.type != KvType::F32 || kv.ring) {
        Backend::rope_kv_append(q, k, v, T, H, Hkv, Dh, cos, sin, kv, pos0);
        return;
    }
    const int64_t n = T * (H + Hkv) * (Dh / 2) + T * Hkv * Dh;
    if (n > 0)
        note(launch_pdl(rope_kv_k, blocks_for(n), kThreads, 0, stream_, pdl_, q, k, v, T, H, Hkv, Dh, cos, sin, kv.k, kv.v,
                        kv.k_head_stride, pos0, (const CudaStepInputs*)(in_step_ ? step_ : nullptr)),
             "rope_kv");
}

void CudaBackend::attention(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                            int64_t window, float* out) {
    if (T * H <= 0) return;
    if (flash_) {  // cuda_attention.cu
        if (T <= kSplitMaxT)
            attention_split(q, kv, T, pos0, H, Hkv, Dh, window, out);
        else
            attention_flash(q, kv, T, pos0, H, Hkv, Dh, window, out);
        return;
    }
    // a recorded step is replayed at later positions: its scores get room for the whole context
    const size_t smem = (size_t)attention_smem_bytes(in_step_ ? shape_.ctx : pos0 + T, Dh);
    attention_k<<<(unsigned)(T * H), 128, smem, stream_>>>(q, kv.k, kv.v, kv.k_head_stride, pos0, (int)H, (int)Hkv, (int)Dh, window, out,
                                                           in_step_ ? step_ : nullptr);
}

void CudaBackend::moe_gather(const float* src, int64_t D, const int32_t* routes, int64_t n, int64_t k, float* dst) {
    if (n <= 0) return;
    upload(routes_, routes, n * (int64_t)sizeof(int32_t));
    gather_k<<<blocks_for(n * D), kThreads, 0, stream_>>>(src, D, routes_, n, k, dst);
}

void CudaBackend::moe_scatter(const float* ye, int64_t D, const int32_t* routes, int64_t n, float* yk) {
    if (n <= 0) return;
    upload(routes_, routes, n * (int64_t)sizeof(int32_t));  // the same list gather used; cheap and self-contained
    scatter_k<<<blocks_for(n * D), kThreads, 0, stream_>>>(ye, D, routes_, n, yk);
}

void CudaBackend::moe_combine(const float* yk, const float* w, int64_t T, int64_t k, int64_t D, float* x) {
    if (T * D <= 0) return;
    upload(weights_, w, T * k * (int64_t)sizeof(float));
    combine_k<<<blocks_for(T * D), kThreads, 0, stream_>>>(yk, weights_, T, k, D, x);
}

// moe_device_ffn (backend.h): route, the k experts' gate·up with act·mul (the norm inside, as the fused GEMVs do), their
// down, combine — the ops rmsnorm and moe_ffn issue for one token (cuda_moe_* are bit for bit the fused one-expert GEMVs
// it uses), with the routes and weights of moe_route_math.h on the device (equal to the host's but for the ~2^-29 case
// of cuda_moe_route) never leaving it.
void CudaBackend::moe_device_ffn(const MoeConfig& c, int slot, const float* logits, const float* in, const float* norm_w,
                                 float eps, float* x) {
    if (slot < 0 || slot >= (int)moe_slots_.size() || !moe_slots_[(size_t)slot].set) {
        note(cudaErrorInvalidValue, "moe_device_ffn (a layer without moe_device_experts)");
        return;
    }
    const MoeSlot& s = moe_slots_[(size_t)slot];
    const int64_t E = c.n_experts, k = c.n_used, F = c.d_expert, D = shape_.d_model;
    const uint32_t fl = pdl_ ? kCudaOverlapPrevious : 0;
    note(cuda_moe_route(logits, E, k, c.gating_softmax, c.norm_topk, moe_ids_, moe_w_, stream_, fl), "moe route");
    CudaMoeGemv P;
    P.table = moe_table_ + slot * E, P.ids = moe_ids_, P.k = (int)k;
    P.rows = F, P.n = D, P.stride0 = s.gs, P.stride1 = s.us, P.y = moe_h_, P.act = c.act_relu ? (int)Act::RELU : (int)Act::SILU;
    P.in.x = in;
    if (norm_w) P.in.kind = kCudaInRmsnorm, P.in.norm_w = norm_w, P.in.eps = eps;
    note(cuda_moe_glu(s.gu, P, stream_, fl), "moe gate·up");
    P.rows = D, P.n = F, P.stride0 = s.ds, P.stride1 = 0, P.y = moe_y_;
    P.in = CudaGemvInput();
    P.in.x = moe_h_;
    note(cuda_moe_down(s.down, P, stream_, fl), "moe down");
    combine_k<<<blocks_for(D), kThreads, 0, stream_>>>(moe_y_, moe_w_, 1, k, D, x);
}

}  // namespace edge
