// cuda_backend.h — the CUDA backend (backend/backend.h on an NVIDIA GPU), built as the plugin
// libedge_cuda_backend.so (backend_cuda_loader.h). One device, one stream: ops are enqueued on it in
// order and run asynchronously; sync() waits; download() waits for what it reads.
//
// Memory: alloc = cudaMalloc (device memory; 256-byte aligned, so any requested alignment up to 256
// holds); map_weights copies the mapped tensors to the device once, or — on an integrated GPU (Jetson
// Orin, prop.integrated) and with EDGE_CUDA_MAPPED_WEIGHTS=1 — registers the mapping's pages
// (cudaHostRegisterMapped | ReadOnly) and returns their device address: the kernels read the file's
// bytes in place, nothing is copied, and the plan counts them once as host memory (issue 9 §3;
// docs/CUDA.md). On a discrete GPU that view is read over the bus: a stand-in for tests, slow;
// stage_weights copies an expert's matrices into a planned staging area.
// Prefill: a matmul of >= 16 tokens (EDGE_CUDA_MMA_MIN_T) on an int_dot dtype runs on the tensor cores
// (kernels/cuda/gemm_mma.cu, bit-exact with the reference gemm), fewer tokens on the GEMV.
// Numerics vs the CPU backend: matmul uses the same block_q8x activations (bit-exact quantize), so
// int_dot dtypes differ only in the f32 order of the block sum (kernels/cuda/cuda_kernels.h);
// rmsnorm, attention, rope and silu reduce in another order than the CPU loops (f32): |Δ| a few ulp of
// the row's scale; embed (host dequant), add, add_bias, relu, gather / scatter / combine are exact.
// LowRank terms: A·x by the f32 GEMV, then cuda_lowrank_add (the CPU's up-projection bit for bit).
// One-token steps (T = 1) on q8_0 / int4* matrices without adapters use the fused GEMV (cuda_fused.cu): the
// input's norm and its quantization inside the GEMV, q/k/v (gate/up) in one launch, the residual (act·mul) in
// its epilogue — the same bits as the unfused ops (EDGE_CUDA_FUSE=0).
// Scratch of its own: q8 activations, A·x of LowRank terms, the split-K attention's partials (cuda_attention.cu;
// EDGE_CUDA_FLASH=0: the older kernel, scores in shared memory, ctx ≤ the opt-in shared memory / 4 positions), routes / weights staged for the MoE ops, the expert
// staging area, pinned host rows for embed.
#pragma once

#include <cuda_runtime_api.h>

#include <vector>

#include "../../kernels/kernels.h"
#include "../backend.h"

namespace edge {

struct CudaGemvInput;  // kernels/cuda/cuda_kernels.h
struct CudaMoeExpert;

// The device sampler's limits (cuda_sample.cu): beyond them the host samples.
// Attention (cuda_attention.cu): steps of at most kSplitMaxT tokens use the split-K kernel over at most
// kMaxSplits chunks of the context; longer steps the flash-style tile kernel.
constexpr int kSplitMaxT = 8, kMaxSplits = 32;
int64_t cuda_attention_chunk(int64_t ctx);

constexpr int kSampleBlocks = 64, kMaxChunk = 6144, kMaxTopK = 64, kMaxPenaltyIds = 64;

// RoPE + K/V append fused into the split-K attention of one token (cuda_attention.cu): the unrotated k and v [Dkv]
// of the step and its cos / sin [Dh/2]; k == nullptr: not fused.
struct CudaSplitRope {
    const float* k = nullptr;
    const float* v = nullptr;
    const float* c = nullptr;
    const float* s = nullptr;
};

// The inputs of a one-token device step (cuda_step.cu), in device memory.
struct CudaStepInputs {
    int64_t pos = 0;
    int32_t token = 0;
    int32_t pad = 0;
};

class CudaBackend final : public Backend {
public:
    // host: the host kernel table (embedding rows are dequantized on the host); device: GPU index.
    static Status create(const KernelTable* host, int device, CudaBackend** out);
    ~CudaBackend() override;

    const char* name() const override { return "cuda"; }
    Device device() const override { return Device::CUDA; }
    bool host_addressable() const override { return false; }
    int threads() const override { return 1; }
    std::string describe() const override { return describe_; }
    bool supports(uint32_t dtype) const override;

    Status alloc(int64_t bytes, int64_t align, bool zero, const char* what, Buffer* out) override;
    void release(Buffer* b) override;
    Status map_weights(const void* host, int64_t bytes, Buffer* out) override;
    bool weights_in_place() const override { return weights_in_place_; }
    void upload(void* dst, const void* host, int64_t bytes) override;
    void download(void* host, const void* src, int64_t bytes) override;
    void plan_scratch(const StepShape& s, Planner* p) override;
    void stage_weights(const Matrix* in, int n, Matrix* out) override;
    bool stage_expert(int layer, int expert, int variant, const Matrix* in, int n, Matrix* out) override;
    bool expert_mirror_supported() const override { return expert_mirror_; }
    void mirror_expert_slots(uint8_t* host, uint8_t* dev, int64_t bytes, int64_t slot_bytes) override;
    int64_t memory_free() const override;
    void sync() override;

    void embed(const Matrix& table, const int32_t* tokens, int64_t T, float* x) override;
    void rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y) override;
    void matmul(const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T,
                const LowRank* const* adapters = nullptr) override;
    void add_bias(float* y, const float* b, int64_t rows, int64_t n) override;
    void rope_angles(int64_t pos0, int64_t T, const float* inv_freq, int64_t half, float* cos, float* sin) override;
    void rope(float* x, int64_t T, int64_t heads, int64_t Dh, const float* cos, const float* sin) override;
    void kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T, int64_t pos0, int64_t Hkv, int64_t Dh) override;
    void attention(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                   int64_t window, float* out) override;
    void act_mul(float* g, const float* u, int64_t n, Act act) override;
    void scale(float* x, float s, int64_t n) override;
    void add(float* x, const float* y, int64_t n) override;
    void rope_kv_append(float* q, float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh, const float* cos,
                        const float* sin, const KvLayer& kv, int64_t pos0) override;
    void rope_kv_attention(float* q, float* k, const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t Dh, const float* cos,
                           const float* sin, const KvLayer& kv, int64_t pos0, int64_t window, float* out) override;
    void rmsnorm_matmul(const float* x, const float* w, float eps, int64_t T, float* xn, const Matrix* const* ws,
                        float* const* ys, int nw, const LowRank* const* adapters = nullptr) override;
    void matmul_add(const Matrix& w, const float* in, int64_t T, float* y, float* x, const LowRank* adapter = nullptr) override;
    void rmsnorm_glu(const float* x, const float* w, float eps, int64_t T, float* xn, const Matrix& gate, const Matrix& up,
                     Act act, float* g, float* u, const LowRank* const* adapters = nullptr) override;

    void moe_route(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w) override;
    void moe_gather(const float* src, int64_t D, const int32_t* routes, int64_t n, int64_t k, float* dst) override;
    void moe_scatter(const float* ye, int64_t D, const int32_t* routes, int64_t n, float* yk) override;
    void moe_combine(const float* yk, const float* w, int64_t T, int64_t k, int64_t D, float* x) override;
    bool moe_device_supported(uint32_t gu, uint32_t down, int64_t F, int64_t D) const override;
    void moe_device_experts(int slot, const Matrix* m, int64_t E) override;
    void moe_device_ffn(const MoeConfig& c, int slot, const float* logits, const float* in, const float* norm_w, float eps,
                        float* x) override;

    bool step_supported() const override { return true; }
    bool embed_step_supported(uint32_t dtype) const override;
    void embed_step(const Matrix& table, float* x) override;
    void step_inputs(int32_t token, int64_t pos) override;
    bool step_begin() override;
    bool step_end() override;
    void step_reset() override;
    int graph_captures() const { return graph_captures_; }
    bool sample_supported(const SamplerParams& p, int64_t V, int n_penalty) const override;
    void sample(float* logits, int64_t V, const SamplerParams& p, const int32_t* ids, int n_ids, float u,
                int32_t* next) override;
    bool sample_async_supported() const override { return pipeline_; }
    void sample_async(float* logits, int64_t V, const SamplerParams& p, const int32_t* ids, int n_ids, float u) override;
    void sample_wait(int32_t* next) override;
    int picks_in_flight() const override { return pick_count_; }

    Status take_error() override;

private:
    CudaBackend() = default;
    void attention_split(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                         int64_t window, float* out, const CudaSplitRope& rope = CudaSplitRope());
    void attention_flash(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                         int64_t window, float* out);
    void note(cudaError_t e, const char* what);
    // the fused one-token GEMV (cuda_fused.cu)
    bool fusable(const Matrix* const* ws, int nw, int64_t T, const LowRank* const* adapters) const;
    void gemv_fused(const Matrix* const* ws, float* const* ys, float* const* residual, int nw, const CudaGemvInput& in);

    const KernelTable* host_ = nullptr;
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    cudaError_t error_ = cudaSuccess;
    const char* error_what_ = "";
    StepShape shape_;
    block_q8x* xq_ = nullptr;       // [T · max_width / 32] device
    float* lr_ = nullptr;           // [T · max_rank] device: A·x of a LowRank term
    float* host_rows_ = nullptr;    // [T · max_width] pinned host: dequantized embedding rows
    int32_t* routes_ = nullptr;     // [T · k_max] device copy of a route list (k_max: routes per step)
    float* weights_ = nullptr;      // [T · k_max] device copy of routing weights
    uint8_t* stage_ = nullptr;      // [stage_bytes] device: staged expert matrices
    float* logits_host_ = nullptr;  // [T · E_max] pinned host: router logits for moe_route
    int64_t max_smem_ = 0;          // opt-in shared memory per block (attention scores)
    bool weights_in_place_ = false;  // map_weights registers the mapping (integrated GPU, or EDGE_CUDA_MAPPED_WEIGHTS=1)
    void* registered_ = nullptr;     // the page range registered for it
    const void* registered_view_ = nullptr;  // its device address
    bool flash_ = true;             // split-K / flash attention (EDGE_CUDA_FLASH=0: one CTA per (token, head), scores in shared memory)
    float* attn_part_ = nullptr;    // [kSplitMaxT · H · S · (Dh + 2)] device: split-K partials
    int* attn_done_ = nullptr;      // [kSplitMaxT · H] device: split-K CTAs done per (token, head), zero between launches
    std::string describe_;          // "NVIDIA H200 (sm_90, 139.8 GiB, driver 13.0)"
    Status plan_error_;             // what plan_scratch could not provide (reported by take_error)
    // device steps (cuda_step.cu)
    CudaStepInputs* step_ = nullptr;       // device: the current step's token and position
    // pinned host memory of the pipelined steps (cuda_step.cu / cuda_sample.cu): rings of kRing slots, a slot
    // rewritten only after the host has waited for a later pick (at most kMaxPicksInFlight are pending)
    static constexpr int kRing = 4;
    struct Pinned {
        CudaStepInputs step[kRing];  // staging of step_
        int32_t pick[kRing];         // the picks' tokens, read back
    };
    Pinned* pinned_ = nullptr;             // cudaHostAlloc, at create
    cudaEvent_t pick_done_[kRing] = {};    // recorded after each pick's copy
    int step_slot_ = 0, pick_head_ = 0, pick_count_ = 0;  // next staging slot; oldest pending pick, pending picks
    bool pipeline_ = true;                 // sample_async / kStepTokenFromPick (EDGE_CUDA_PIPELINE=0: off)
    bool in_step_ = false;                 // between step_begin and step_end: ops read step_
    bool graphs_ = true;                   // record steps as CUDA graphs (EDGE_CUDA_GRAPH=0: eager)
    bool capturing_ = false;
    cudaGraphExec_t graph_exec_ = nullptr;
    int graph_captures_ = 0;
    const char* graph_failure_ = "";     // why recording was turned off (diagnostics)
    // the device mirror of the expert store's slots (cuda_experts.cu)
    uint8_t* mirror_host_ = nullptr;
    uint8_t* mirror_dev_ = nullptr;
    int64_t mirror_bytes_ = 0, mirror_slot_ = 0;
    bool mirror_pinned_ = false;
    bool expert_mirror_ = true;  // EDGE_CUDA_EXPERT_MIRROR=0: experts staged per use instead
    std::vector<int64_t> mirror_tag_;  // per slot: the unit its device copy holds, -1 none
    // MoE inside device steps (cuda_experts.cu; EDGE_CUDA_MOE_STEP=0: off): per MoE layer slot the E experts'
    // device addresses, and each role's dtype / row bytes
    struct MoeSlot {
        uint32_t gu = 0, down = 0;
        int64_t gs = 0, us = 0, ds = 0;
        bool set = false;
    };
    bool moe_step_ = true;
    CudaMoeExpert* moe_table_ = nullptr;  // [moe_layers · E] device
    std::vector<MoeSlot> moe_slots_;
    int32_t* moe_ids_ = nullptr;  // [k] device: the token's experts (cuda_moe_route)
    float* moe_w_ = nullptr;      // [k] device: their weights
    float* moe_h_ = nullptr;      // [k · F] device: act(gate)·up per rank
    float* moe_y_ = nullptr;      // [k · D] device: the experts' outputs (moe_combine's yk)
    // the sampler (cuda_sample.cu; EDGE_CUDA_SAMPLER=0: the host samples)
    bool gpu_sampler_ = true;
    int cc_major_ = 0;           // compute capability (tensor-core prefill GEMM: 8+)
    int64_t mma_min_tokens_ = 16;  // matmuls of at least this many tokens use cuda_gemm_mma (EDGE_CUDA_MMA_MIN_T; EDGE_CUDA_MMA=0: never)
    bool fuse_ = true;  // one-token matmuls through cuda_gemv_fused (EDGE_CUDA_FUSE=0: quantize + GEMV + separate ops)
    int graph_nodes_ = 0;  // kernel nodes of the recorded step (EDGE_CUDA_GRAPH_REPORT=1 prints them)
    bool rope_attn_ = true;  // one-token RoPE + K/V append inside the split-K attention (EDGE_CUDA_ROPE_ATTN=0: rope_kv_k first)
    bool split_combine_ = true;  // the split-K attention's last CTA merges (EDGE_CUDA_SPLIT_COMBINE=0: a combine launch)
    bool pdl_ = true;  // GEMVs / quantize launched with programmatic dependent launch (EDGE_CUDA_PDL=0: plain)
    float* sample_cv_ = nullptr;    // [kSampleBlocks·kMaxTopK + 2·kMaxTopK] candidate values, then the survivors'
    int32_t* sample_ci_ = nullptr;  // [kSampleBlocks·kMaxTopK + kMaxTopK] candidate ids
    int32_t* sample_next_ = nullptr;  // [1] the token
};

}  // namespace edge
