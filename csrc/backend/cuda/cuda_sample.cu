// cuda_sample.cu — the sampler on the GPU (Backend::sample; the chain of csrc/sampler.cpp): only the
// token id comes back to the host.
//
//   penalty_k   logits[id] /= penalty (> 0) or *= penalty, for the distinct ids (kernel argument)
//   topk1_k     kSampleBlocks blocks, block b over logits [b·chunk, (b+1)·chunk): its K best (value, id)
//               in order (value descending, ties to the lower id: sampler.cpp's comparator), K rounds of
//               a block arg-max over the chunk in shared memory (taken entries become NaN)
//   topk2_k     one block: the K best of the kSampleBlocks·K candidates (the same rounds), then one
//               thread runs sampler.cpp's scalar chain on them in its order and with the same f32
//               operations (no FMA): softmax at temperature 1 → top-p → min-p → temperature → the
//               draw r = u·total. Greedy (temperature <= 0) is K = 1: the arg-max, first index on ties.
// sample = sample_async (the kernels, then the token's copy into pinned memory and an event) + sample_wait (the
// event, then the token): a caller may launch the next step before it waits (backend.h pipelined decoding).
// Sizes: V <= kSampleBlocks · kMaxChunk, top_k in 1..kMaxTopK (sample_supported); else the host samples.
// Differences from the CPU: expf is CUDA's (≤ 2 ulp) where the host uses libm's, so the survivors'
// weights can differ in the last bits; the token differs only when u·total falls that close to a
// boundary between two candidates' cumulative weights.
#include <algorithm>
#include <cmath>

#include "../../sampler.h"
#include "cuda_backend.h"

namespace edge {

namespace {

constexpr int kThreads = 256;

struct PenaltyIds {
    int n;
    float penalty;
    int32_t ids[kMaxPenaltyIds];
};

__global__ void penalty_k(float* logits, int64_t V, PenaltyIds p) {
    for (int i = threadIdx.x; i < p.n; i += blockDim.x) {
        const int32_t t = p.ids[i];
        if (t < 0 || t >= V) continue;
        const float l = logits[t];
        logits[t] = l > 0 ? __fdiv_rn(l, p.penalty) : __fmul_rn(l, p.penalty);
    }
}

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    // NaN (taken / invalid) never wins; ties go to the lower id
    return !(v != v) && ((bv != bv) || v > bv || (v == bv && i < bi));
}

// arg-max of (v, i) over the block; every thread gets it. red: 2 × 32 words of shared memory.
__device__ void block_best(float& v, int& i, float* rv, int* ri) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(ov, oi, v, i)) v = ov, i = oi;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) rv[warp] = v, ri[warp] = i;
    __syncthreads();
    v = lane < nw ? rv[lane] : __int_as_float(0x7fffffff);
    i = lane < nw ? ri[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(ov, oi, v, i)) v = ov, i = oi;
    }
}

// K rounds over n entries (sv values, si ids, in shared memory): out[r] = the r-th best.
__device__ void select_k(float* sv, const int* si, int n, int K, float* ov, int* oi, float* rv, int* ri) {
    for (int r = 0; r < K; ++r) {
        float v = __int_as_float(0x7fffffff);
        int i = 0x7fffffff, at = -1;
        for (int j = threadIdx.x; j < n; j += blockDim.x)
            if (better(sv[j], si[j], v, i)) v = sv[j], i = si[j], at = j;
        float bv = v;
        int bi = i;
        block_best(bv, bi, rv, ri);
        if (at >= 0 && i == bi && !(v != v)) sv[at] = __int_as_float(0x7fffffff);  // the winner's owner marks it taken
        if (threadIdx.x == 0) {
            ov[r] = (bv != bv) ? -INFINITY : bv;  // fewer than K entries: an empty candidate
            oi[r] = (bv != bv) ? -1 : bi;
        }
        __syncthreads();
    }
}

__global__ void topk1_k(const float* __restrict__ logits, int64_t V, int64_t chunk, int K, float* cv, int* ci) {
    extern __shared__ float sh[];
    __shared__ float rv[32];
    __shared__ int ri[32];
    float* sv = sh;
    int* si = reinterpret_cast<int*>(sh + chunk);
    const int64_t b0 = blockIdx.x * chunk;
    const int n = (int)(b0 >= V ? 0 : (V - b0 < chunk ? V - b0 : chunk));
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        sv[j] = logits[b0 + j];
        si[j] = (int)(b0 + j);
    }
    __syncthreads();
    select_k(sv, si, n, K, cv + blockIdx.x * K, ci + blockIdx.x * K, rv, ri);
}

struct ChainParams {
    int K;            // candidates kept by top-k (1 = greedy)
    float temperature, top_p, min_p, u;
};

__global__ void topk2_k(const float* __restrict__ cv, const int* __restrict__ ci, int n, ChainParams p, float* wv, int* wi,
                        int32_t* next) {
    extern __shared__ float sh[];
    __shared__ float rv[32];
    __shared__ int ri[32];
    float* sv = sh;
    int* si = reinterpret_cast<int*>(sh + n);
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        // empty candidates (id -1) stay out of the selection
        sv[j] = ci[j] < 0 ? __int_as_float(0x7fffffff) : cv[j];
        si[j] = ci[j] < 0 ? 0x7fffffff : ci[j];
    }
    __syncthreads();
    select_k(sv, si, n, p.K, wv, wi, rv, ri);
    if (threadIdx.x != 0) return;
    if (p.temperature <= 0.f) {
        *next = wi[0] < 0 ? 0 : wi[0];  // every logit NaN: token 0, as std::max_element gives
        return;
    }
    int k = p.K;
    while (k > 1 && wi[k - 1] < 0) --k;  // fewer candidates than top_k (a tiny vocabulary)
    float* w = wv + p.K;                 // weights beside the values (scratch of 2K floats)
    const float m = wv[0];
    float sum = 0.f;
    for (int i = 0; i < k; ++i) sum = __fadd_rn(sum, (w[i] = expf(__fsub_rn(wv[i], m))));
    if (p.top_p < 1.0f) {
        float cum = 0.f;
        for (int i = 0; i < k; ++i) {
            cum = __fadd_rn(cum, __fdiv_rn(w[i], sum));
            if (cum >= p.top_p) {
                k = i + 1;
                break;
            }
        }
    }
    if (p.min_p > 0.f) {
        int keep = 1;
        while (keep < k && w[keep] >= p.min_p) ++keep;
        k = keep;
    }
    float total = 0.f;
    for (int i = 0; i < k; ++i) total = __fadd_rn(total, (w[i] = expf(__fdiv_rn(__fsub_rn(wv[i], m), p.temperature))));
    const float r = __fmul_rn(p.u, total);
    float acc = 0.f;
    for (int i = 0; i < k; ++i) {
        acc = __fadd_rn(acc, w[i]);
        if (r < acc) {
            *next = wi[i];
            return;
        }
    }
    *next = wi[k - 1];
}

}  // namespace

bool CudaBackend::sample_supported(const SamplerParams& p, int64_t V, int n_penalty) const {
    if (!gpu_sampler_ || !sample_cv_) return false;
    if (V > (int64_t)kSampleBlocks * kMaxChunk || V > shape_.vocab || n_penalty > kMaxPenaltyIds) return false;
    if (p.temperature <= 0.f) return true;
    return p.top_k >= 1 && p.top_k <= kMaxTopK;
}

void CudaBackend::sample(float* logits, int64_t V, const SamplerParams& p, const int32_t* ids, int n_ids, float u,
                         int32_t* next) {
    sample_async(logits, V, p, ids, n_ids, u);
    sample_wait(next);
}

// The pick's kernels, then its token copied into a pinned ring slot and an event recorded after it.
void CudaBackend::sample_async(float* logits, int64_t V, const SamplerParams& p, const int32_t* ids, int n_ids, float u) {
    if (n_ids > 0) {
        PenaltyIds pi;
        pi.n = n_ids;
        pi.penalty = p.repeat_penalty;
        for (int i = 0; i < n_ids; ++i) pi.ids[i] = ids[i];
        penalty_k<<<1, kThreads, 0, stream_>>>(logits, V, pi);
    }
    const int K = p.temperature <= 0.f ? 1 : (int)std::min<int64_t>(p.top_k, V);
    const int64_t chunk = (V + kSampleBlocks - 1) / kSampleBlocks;
    topk1_k<<<kSampleBlocks, kThreads, (size_t)chunk * 8, stream_>>>(logits, V, chunk, K, sample_cv_, sample_ci_);
    ChainParams cp{K, p.temperature, p.top_p, p.min_p, u};
    const int n = kSampleBlocks * K;
    topk2_k<<<1, kThreads, (size_t)n * 8, stream_>>>(sample_cv_, sample_ci_, n, cp, sample_cv_ + n, sample_ci_ + n, sample_next_);
    note(cudaGetLastError(), "the sampler's kernels");
    if (pick_count_ == kRing) {  // a caller past kMaxPicksInFlight: drop the oldest (its wait would read a reused slot)
        pick_head_ = (pick_head_ + 1) % kRing;
        --pick_count_;
        note(cudaErrorInvalidValue, "sample_async: too many picks in flight");
    }
    const int slot = (pick_head_ + pick_count_) % kRing;
    ++pick_count_;
    note(cudaMemcpyAsync(&pinned_->pick[slot], sample_next_, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_), "the pick's copy");
    note(cudaEventRecord(pick_done_[slot], stream_), "the pick's event");
}

void CudaBackend::sample_wait(int32_t* next) {
    *next = -1;
    if (pick_count_ == 0) {
        note(cudaErrorInvalidValue, "sample_wait: no pick in flight");
        return;
    }
    const int slot = pick_head_;
    pick_head_ = (pick_head_ + 1) % kRing;
    --pick_count_;
    note(cudaEventSynchronize(pick_done_[slot]), "the pick");
    *next = pinned_->pick[slot];
}

}  // namespace edge
