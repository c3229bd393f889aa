// cuda_attention.cu — attention over the KV cache on the GPU (backend.h `attention`), two kernels:
//
// 1. Split-K ("flash-decoding") for steps of at most kSplitMaxT tokens (decode, the server's slots): the
//    positions of each (token, head) are cut into S chunks of `chunk` positions (S and chunk fixed at plan
//    time from ctx, so a recorded step replays at any position; chunks past the token's position write an
//    empty partial). Grid (T·H, S), 128 threads: a chunk is walked in tiles of TP positions, each tile's K
//    and V first copied into shared memory with cp.async (all its loads in flight at once), then one score per
//    thread, with a running max / sum; each CTA writes its
//    unnormalised Σ e^(s-m)·V, m and l to the scratch `part`, and the last of the S CTAs to finish (a
//    counter per (token, head), reset by it) merges the S partials (weights e^(m_s - M)) and normalises.
//    Parallelism: T·H·S CTAs instead of T·H.
//    With RoPE fused (one token, CudaBackend::rope_kv_attention): q and k arrive unrotated; every CTA rotates its
//    q head itself, the CTA whose chunk holds the token's position puts the rotated k and v into the staged tile
//    (the cache may not have them yet), and that CTA of the first q head of each kv group writes them to the cache
//    — rope_kv_k's operations, so the same bits as rope_kv_append then attention, one launch fewer per layer.
// 2. Flash-style tiles for prefill (more tokens): one CTA of 8 warps per (8 consecutive tokens, head);
//    the CTA walks the union of their key ranges in tiles of 32 positions, staged once in shared memory
//    (K as [Dh][32], V as [32][Dh]) for the 8 queries; warp w keeps token w's running max / sum and its
//    output (lane owns dims lane + 32k), with the causal / sliding-window mask per query. K and V are
//    read once per 8 tokens instead of once per token.
// Numerics: f32, the same softmax as kernels.h attention_fn computed in pieces (e^(s-m_tile)·e^(m_tile-M)
// for e^(s-M)): a few ulp from the reference; tests/test_cuda_attention.py states the bound.
// Shared memory: (1) the tile's K (TP + kKTile positions) and V (TP positions) × Dh, q [Dh], scores [128],
// partial sums [P·Dh] (P = 128 / Dh parts, >= 1), 32 floats (TP = 128, or 8192 / Dh for Dh > 64: 85 KB at most, Dh = 256);
// (2) Ks + Vs 2·32·Dh, q 8·Dh, p 8·32 floats (Dh = 256: 73 KB, opted in by cuda_attention_prepare).
#include <cmath>

#include "../../kernels/cuda/pdl.cuh"
#include "cuda_backend.h"

namespace edge {

namespace {

constexpr int kSplitThreads = 128, kFlashQ = 8, kFlashKeys = 32, kMaxDhRegs = 8;  // Dh <= 256 in the flash kernel
constexpr int kSplitChunk = 32;  // chunk granularity (a multiple of kKTile)
static_assert(kSplitChunk % kKTile == 0, "chunks hold whole K tiles");

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// block-wide max / sum (128 threads = 4 warps); red: 4 floats; every thread gets the result
template <bool kMax>
__device__ float block4(float v, float* red) {
    v = kMax ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    const float a = red[0], b = red[1], c = red[2], d = red[3];
    return kMax ? fmaxf(fmaxf(a, b), fmaxf(c, d)) : (a + b) + (c + d);
}

__device__ __forceinline__ int64_t first_pos(int64_t pos, int64_t window) {
    return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

// Asynchronous global -> shared copies (sm_80+): every load of a tile is in flight at once, instead of one
// latency per position of a serial loop (the kernel was latency-bound at ~16 µs per layer, s19 profile).
__device__ __forceinline__ void cp_async4(float* dst, const float* src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async16(float* dst, const float* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// dst[i] = src[(i / row)·stride + i % row] for i < n, by the CTA (rows of `row` floats, `stride` apart; row = n
// for one contiguous span); 16-byte copies when vec: src, row and stride 16-byte aligned.
__device__ __forceinline__ void stage_floats(float* dst, const float* src, int n, int row, int64_t stride, bool vec) {
    if (vec)
        for (int i = 4 * threadIdx.x; i < n; i += 4 * blockDim.x) cp_async16(dst + i, src + (i / row) * stride + i % row);
    else
        for (int i = threadIdx.x; i < n; i += blockDim.x) cp_async4(dst + i, src + (i / row) * stride + i % row);
}

// Positions per tile of the split kernel: kSplitThreads, fewer for wide heads so K + V of a tile fit in
// shared memory (tile_positions · Dh <= 8192 floats each), and no more than a chunk (a multiple of kKTile).
__host__ __device__ constexpr int split_tile_positions(int Dh, int64_t chunk) {
    const int tp = Dh * kSplitThreads <= 8192 ? kSplitThreads : (8192 / Dh) / kKTile * kKTile;
    return chunk < tp ? (int)chunk : tp;
}

// o[t, h] = Σ_c e^(m_c - M)·acc_c / Σ_c e^(m_c - M)·l_c over the S <= kMaxSplits partials of th = t·H + h (empty
// ones skipped), by the calling CTA (>= 32 threads): warp 0 reads every (m_c, l_c) at once and forms the weights,
// then each thread sums its dims over c; partials read past L1 (other CTAs wrote them).
__device__ __forceinline__ void combine_partials(const float* part, int S, int th, int H, int Dh, float* __restrict__ o) {
    __shared__ float wc[kMaxSplits], inv_l;
    const float* pp = part + (int64_t)th * S * (Dh + 2);
    if (threadIdx.x < 32) {
        const int c = threadIdx.x;
        const float ms = c < S ? __ldcg(pp + c * (Dh + 2) + Dh) : -INFINITY;
        const float ls = c < S ? __ldcg(pp + c * (Dh + 2) + Dh + 1) : 0.f;
        const float M = warp_max(ms);  // finite: the chunk holding the token's own position is never empty
        const float e = ms != -INFINITY ? expf(ms - M) : 0.f;
        if (c < S) wc[c] = e;
        const float L = warp_sum(e * ls);
        if (c == 0) inv_l = 1.0f / L;
    }
    __syncthreads();
    const float inv = inv_l;
    for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
        float a = 0.f;
#pragma unroll 4
        for (int c = 0; c < S; ++c)
            if (wc[c] != 0.f) a += wc[c] * __ldcg(pp + c * (Dh + 2) + i);
        o[(int64_t)(th / H) * H * Dh + (int64_t)(th % H) * Dh + i] = a * inv;
    }
}

// Element i of head x [Dh] rotated (rope_kv_k's arithmetic): pairs (j, j + Dh/2) by the angle of cos / sin [Dh/2].
__device__ __forceinline__ float rope_elem(const float* x, int i, int Dh, const float* c, const float* s) {
    const int half = Dh / 2, j = i < half ? i : i - half;
    const float a = x[j], b = x[j + half], cs = c[j], sn = s[j];
    return i < half ? __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn)) : __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
}

// The merge as its own launch (EDGE_CUDA_SPLIT_COMBINE=0: the split kernel is given no counters).
__global__ void attn_combine_k(const float* __restrict__ part, int S, int H, int Dh, float* __restrict__ o) {
    combine_partials(part, S, blockIdx.x, H, Dh, o);
}

// One (token, head, chunk): tiles of TP positions; each tile's K (whole transposed kKTile tiles covering it,
// one contiguous span) and V rows are copied into shared memory first, then one score per thread, the
// running max / sum and Σ e·V from shared memory. The arithmetic and its order are the old kernel's.
__global__ void attn_split_k(const float* __restrict__ q, float* kc, float* vc, int64_t k_head_stride, int64_t pos0, int H,
                             int Hkv, int Dh, int64_t window, int64_t chunk, float* __restrict__ part, int* __restrict__ done,
                             float* __restrict__ o, const CudaStepInputs* ds, CudaSplitRope rope) {
    extern __shared__ __align__(16) float sh[];
    pdl_launch_dependents();  // PDL-launched (pdl.cuh): the output projection may start streaming its weights
    pdl_wait();
    if (ds) pos0 = ds->pos;
    const int S = gridDim.y, s = blockIdx.y, th = blockIdx.x, t = th / H, h = th % H, kvh = h / (H / Hkv);
    const int P = Dh <= kSplitThreads ? kSplitThreads / Dh : 1;
    const int TP = split_tile_positions(Dh, chunk);
    float* ks = sh;                              // [(TP + kKTile) · Dh]: kKTile-position tiles, transposed
    float* vs = ks + (TP + kKTile) * Dh;         // [TP][Dh]
    float* qs = vs + TP * Dh;
    float* ps = qs + Dh;
    float* red = ps + kSplitThreads;
    float* accs = red + 32;  // [P][Dh]
    const int64_t pos = pos0 + t, pb = first_pos(pos, window);
    const int64_t beg = pb + s * chunk, end = beg + chunk < pos + 1 ? beg + chunk : pos + 1;
    const int64_t Dq = (int64_t)H * Dh, Dkv = (int64_t)Hkv * Dh;
    float* out = part + ((int64_t)th * S + s) * (Dh + 2);
    const float* qh = q + t * Dq + (int64_t)h * Dh;
    for (int i = threadIdx.x; i < Dh; i += blockDim.x) qs[i] = rope.k ? rope_elem(qh, i, Dh, rope.c, rope.s) : qh[i];
    const bool holds = rope.k && beg <= pos && pos < end;  // RoPE fused (T = 1): this chunk holds the new position
    const float* kn = holds ? rope.k + (int64_t)kvh * Dh : nullptr;
    const float* vn = holds ? rope.v + (int64_t)kvh * Dh : nullptr;
    if (holds && h % (H / Hkv) == 0)
        for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
            kc[kvh * k_head_stride + (pos / kKTile) * kKTile * Dh + (int64_t)i * kKTile + pos % kKTile] = rope_elem(kn, i, Dh, rope.c, rope.s);
            vc[pos * Dkv + (int64_t)kvh * Dh + i] = vn[i];
        }
    for (int i = threadIdx.x; i < P * Dh; i += blockDim.x) accs[i] = 0.f;
    const float scale = 1.0f / sqrtf((float)Dh);
    const float* kh = kc + kvh * k_head_stride;
    const float* vh = vc + (int64_t)kvh * Dh;
    const bool vec_k = (((uintptr_t)kh) & 15) == 0 && Dh % 4 == 0;
    const bool vec_v = (((uintptr_t)vh) & 15) == 0 && Dh % 4 == 0 && Dkv % 4 == 0;
    const int part_i = threadIdx.x / Dh, dim = threadIdx.x % Dh;  // the V sum: thread owns (part, dim) when P > 1
    float m = -INFINITY, l = 0.f;
    for (int64_t t0 = beg; t0 < end; t0 += TP) {
        const int nt = (int)(end - t0 < TP ? end - t0 : TP);
        const int64_t kt0 = t0 / kKTile, kt1 = (t0 + nt - 1) / kKTile;
        __syncthreads();  // the previous tile's ks / vs / ps are no longer read
        const int nk = (int)(kt1 - kt0 + 1) * kKTile * Dh;
        stage_floats(ks, kh + kt0 * kKTile * Dh, nk, nk, 0, vec_k);
        stage_floats(vs, vh + t0 * Dkv, nt * Dh, Dh, Dkv, vec_v);
        cp_async_wait_all();
        __syncthreads();
        if (holds && pos < t0 + nt) {  // the new position's k and v, in place of what the cache held when staged
            for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
                ks[(pos / kKTile - kt0) * kKTile * Dh + (int64_t)i * kKTile + pos % kKTile] = rope_elem(kn, i, Dh, rope.c, rope.s);
                vs[(pos - t0) * Dh + i] = vn[i];
            }
            __syncthreads();
        }
        const int64_t p = t0 + threadIdx.x;
        float sc = -INFINITY;
        if (threadIdx.x < nt) {
            const float* tile = ks + (p / kKTile - kt0) * kKTile * Dh + p % kKTile;
            float d = 0.f;
            for (int i = 0; i < Dh; ++i) d += qs[i] * tile[i * kKTile];
            sc = d * scale;
        }
        const float mn = fmaxf(m, block4<true>(sc, red));
        const float e = threadIdx.x < nt ? expf(sc - mn) : 0.f;
        ps[threadIdx.x] = e;
        const float corr = expf(m - mn);  // m = -inf on the first tile: 0
        l = l * corr + block4<false>(e, red);  // its barriers also publish ps[]
        m = mn;
        if (P > 1) {
            if (part_i < P) {
                float a = accs[part_i * Dh + dim] * corr;
                for (int j = part_i; j < nt; j += P) a += ps[j] * vs[j * Dh + dim];
                accs[part_i * Dh + dim] = a;
            }
        } else {
            for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
                float a = accs[i] * corr;
                for (int j = 0; j < nt; ++j) a += ps[j] * vs[j * Dh + i];
                accs[i] = a;
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < Dh; i += blockDim.x) {
        float a = 0.f;
        for (int k = 0; k < P; ++k) a += accs[k * Dh + i];
        out[i] = a;
    }
    if (threadIdx.x == 0) {
        out[Dh] = m;  // -inf with l = 0: an empty chunk
        out[Dh + 1] = l;
    }
    // The last of the S CTAs of (token, head) to finish merges the partials (one launch per layer fewer than
    // attn_combine_k): partials published by __threadfence before the count.
    if (!done) return;
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(done + th, 1) == S - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    combine_partials(part, S, th, H, Dh, o);
    if (threadIdx.x == 0) done[th] = 0;  // ready for the next launch (a replayed graph too)
}

__global__ void __launch_bounds__(32 * kFlashQ) attn_flash_k(const float* __restrict__ q, const float* __restrict__ kc,
                                                              const float* __restrict__ vc, int64_t k_head_stride, int64_t T,
                                                              int64_t pos0, int H, int Hkv, int Dh, int64_t window,
                                                              float* __restrict__ out) {
    extern __shared__ float sh[];
    float* ks = sh;                        // [Dh][32]
    float* vs = ks + Dh * kFlashKeys;      // [32][Dh]
    float* qs = vs + kFlashKeys * Dh;      // [8][Dh]
    float* ps = qs + kFlashQ * Dh;         // [8][32]
    const int h = blockIdx.y, kvh = h / (H / Hkv), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t t0 = (int64_t)blockIdx.x * kFlashQ, t = t0 + warp;
    const bool active = t < T;
    const int64_t tl = t0 + kFlashQ - 1 < T - 1 ? t0 + kFlashQ - 1 : T - 1;  // the CTA's last token
    const int64_t pos = pos0 + t, pb = first_pos(pos, window);
    const int64_t lo = first_pos(pos0 + t0, window), hi = pos0 + tl;  // key range of the CTA's tokens
    const int64_t Dq = (int64_t)H * Dh, Dkv = (int64_t)Hkv * Dh;
    for (int i = lane; i < Dh; i += 32) qs[warp * Dh + i] = active ? q[t * Dq + (int64_t)h * Dh + i] : 0.f;
    const float scale = 1.0f / sqrtf((float)Dh);
    const float* kh = kc + kvh * k_head_stride;
    const float* vh = vc + (int64_t)kvh * Dh;
    float acc[kMaxDhRegs];
#pragma unroll
    for (int k = 0; k < kMaxDhRegs; ++k) acc[k] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int64_t k0 = lo; k0 <= hi; k0 += kFlashKeys) {
        __syncthreads();  // the previous tile's ks / vs / ps are no longer read (and qs is written)
        for (int i = threadIdx.x; i < Dh * kFlashKeys; i += blockDim.x) {
            const int d = i / kFlashKeys, j = i % kFlashKeys;
            const int64_t p = k0 + j;
            ks[i] = p <= hi ? kh[(p / kKTile) * kKTile * Dh + (int64_t)d * kKTile + p % kKTile] : 0.f;
        }
        for (int i = threadIdx.x; i < Dh * kFlashKeys; i += blockDim.x) {
            const int j = i / Dh, d = i % Dh;
            const int64_t p = k0 + j;
            vs[i] = p <= hi ? vh[p * Dkv + d] : 0.f;
        }
        __syncthreads();
        if (!active) continue;
        const int64_t p = k0 + lane;
        float sc = -INFINITY;
        if (p >= pb && p <= pos) {
            float d = 0.f;
            for (int i = 0; i < Dh; ++i) d += qs[warp * Dh + i] * ks[i * kFlashKeys + lane];
            sc = d * scale;
        }
        const float mt = warp_max(sc);
        if (mt == -INFINITY) continue;  // no key of this tile is visible to this token
        const float mn = fmaxf(m, mt);
        const float e = sc == -INFINITY ? 0.f : expf(sc - mn);
        const float corr = expf(m - mn);
        l = l * corr + warp_sum(e);
        m = mn;
        ps[warp * kFlashKeys + lane] = e;
        __syncwarp();
#pragma unroll
        for (int k = 0; k < kMaxDhRegs; ++k) {
            const int d = lane + 32 * k;
            if (d < Dh) {
                float a = acc[k] * corr;
                for (int j = 0; j < kFlashKeys; ++j) a += ps[warp * kFlashKeys + j] * vs[j * Dh + d];
                acc[k] = a;
            }
        }
        __syncwarp();  // ps is rewritten by the next tile
    }
    if (!active) return;
    const float inv = 1.0f / l;
#pragma unroll
    for (int k = 0; k < kMaxDhRegs; ++k) {
        const int d = lane + 32 * k;
        if (d < Dh) out[t * Dq + (int64_t)h * Dh + d] = acc[k] * inv;
    }
}

int64_t split_smem_bytes(int64_t Dh, int64_t chunk = kSplitThreads) {
    const int64_t P = Dh <= kSplitThreads ? kSplitThreads / Dh : 1, TP = split_tile_positions((int)Dh, chunk);
    return ((2 * TP + kKTile) * Dh + Dh + kSplitThreads + 32 + P * Dh) * (int64_t)sizeof(float);
}
int64_t flash_smem_bytes(int64_t Dh) { return (2 * kFlashKeys * Dh + kFlashQ * Dh + kFlashQ * kFlashKeys) * (int64_t)sizeof(float); }

}  // namespace

// The split of ctx positions into chunks: chunk a multiple of kSplitChunk, at most kMaxSplits chunks. Short
// contexts get short chunks (ctx 400: 13 of 32 positions; 4096: 32 of 128), so that a decode step has a few
// hundred CTAs whose serial work is short, not a few dozen walking 128 positions each.
int64_t cuda_attention_chunk(int64_t ctx) {
    const int64_t per = (ctx + kMaxSplits - 1) / kMaxSplits;
    const int64_t c = (per + kSplitChunk - 1) / kSplitChunk * kSplitChunk;
    return c < kSplitChunk ? kSplitChunk : c;
}

Status cuda_attention_kernels_prepare(int64_t max_dh, int64_t max_smem) {
    const int64_t fb = flash_smem_bytes(max_dh), sb = split_smem_bytes(max_dh);
    if (max_dh > 32 * kMaxDhRegs || fb > max_smem || sb > max_smem)
        return status_error(Code::UNSUPPORTED, strfmt("CUDA attention: head_dim %lld is larger than the kernels support (256)", (long long)max_dh));
    cudaError_t e = cudaFuncSetAttribute(attn_flash_k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)fb);
    if (e == cudaSuccess) e = cudaFuncSetAttribute(attn_split_k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sb);
    if (e != cudaSuccess) return status_error(Code::UNSUPPORTED, strfmt("CUDA attention: %s", cudaGetErrorString(e)));
    return Status::ok();
}

void CudaBackend::attention_split(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                                  int64_t window, float* out, const CudaSplitRope& rope) {
    const int64_t chunk = cuda_attention_chunk(shape_.ctx), S = (shape_.ctx + chunk - 1) / chunk;
    note(launch_pdl(attn_split_k, dim3((unsigned)(T * H), (unsigned)S), dim3(kSplitThreads), (size_t)split_smem_bytes(Dh, chunk),
                    stream_, pdl_, q, kv.k, kv.v, kv.k_head_stride, pos0, (int)H, (int)Hkv, (int)Dh, window, chunk, attn_part_,
                    split_combine_ ? attn_done_ : nullptr, out, (const CudaStepInputs*)(in_step_ ? step_ : nullptr), rope),
         "attention");
    if (!split_combine_)
        attn_combine_k<<<(unsigned)(T * H), Dh < 128 ? 64 : 128, 0, stream_>>>(attn_part_, (int)S, (int)H, (int)Dh, out);
}

void CudaBackend::rope_kv_attention(float* q, float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh,
                                    const float* cos, const float* sin, const KvLayer& kv, int64_t pos0, int64_t window, float* out) {
    if (T != 1 || !fuse_ || !rope_attn_ || !flash_ || Dh % 2 || kv.type != KvType::F32 || kv.ring) {
        Backend::rope_kv_attention(q, k, v, T, H, Hkv, Dh, cos, sin, kv, pos0, window, out);
        return;
    }
    attention_split(q, kv, T, pos0, H, Hkv, Dh, window, out, CudaSplitRope{k, v, cos, sin});
}

void CudaBackend::attention_flash(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                                  int64_t window, float* out) {
    attn_flash_k<<<dim3((unsigned)((T + kFlashQ - 1) / kFlashQ), (unsigned)H), 32 * kFlashQ, (size_t)flash_smem_bytes(Dh), stream_>>>(
        q, kv.k, kv.v, kv.k_head_stride, T, pos0, (int)H, (int)Hkv, (int)Dh, window, out);
}

}  // namespace edge
