// cpu_backend.h — the CPU backend: the kernel table (kernels/kernels.h, chosen at run time), a thread
// pool for the row-parallel ops, and plain loops for the small ones (float_ops.h). Host memory, so
// host_addressable(): ops read the mapping and write the caller's arrays directly; sync() is a no-op.
//
// Scratch of its own (plan_scratch): int8 activations for int_dot matmuls (T · max_width / 32
// block_q8x), per-thread attention scores (threads · ctx floats) and the LowRank intermediate
// (T · max_rank floats, only with adapters), one row of moe_combine's sum (MoE models).
// Threading: ops are issued by one thread; matmul, attention and the LowRank term split their rows
// over the pool. Results never depend on the thread count.
#pragma once

#include <memory>

#include "../../kernels/kernels.h"
#include "../../threadpool.h"
#include "../backend.h"

namespace edge {

// The smallest step (tokens) whose attention takes the blocked kernels: $EDGE_ATTN_BLOCK (0 = never), else
// the measured default (cpu_attention_block.cpp). Read when a backend is made.
int64_t cpu_attention_block_min_tokens();

class CpuBackend : public Backend {
public:
    // kt: a kernel table from kernels_for / kernels_default; threads >= 1 (the caller included).
    CpuBackend(const KernelTable* kt, int threads);

    const char* name() const override { return "cpu"; }
    Device device() const override { return Device::CPU; }
    bool host_addressable() const override { return true; }
    int threads() const override { return pool_.size(); }
    bool supports(uint32_t dtype) const override {
        return dtype < EDGE_DTYPE_COUNT && kt_->gemm[dtype].fn && kt_->dequant[dtype].fn;
    }
    const KernelTable& kernels() const { return *kt_; }
    ThreadPool& pool() { return pool_; }

    Status alloc(int64_t bytes, int64_t align, bool zero, const char* what, Buffer* out) override;
    void release(Buffer* b) override;
    Status map_weights(const void* host, int64_t bytes, Buffer* out) override;
    void upload(void* dst, const void* host, int64_t bytes) override;
    void download(void* host, const void* src, int64_t bytes) override;
    void plan_scratch(const StepShape& s, Planner* p) override;
    void stage_weights(const Matrix* in, int n, Matrix* out) override {
        for (int i = 0; i < n; ++i) out[i] = in[i];
    }
    void sync() override {}

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

    void moe_route(const MoeConfig& c, const float* logits, int64_t T, int64_t k, int32_t* idx, float* w) override;
    void moe_gather(const float* src, int64_t D, const int32_t* routes, int64_t n, int64_t k, float* dst) override;
    void moe_scatter(const float* ye, int64_t D, const int32_t* routes, int64_t n, float* yk) override;
    void moe_combine(const float* yk, const float* w, int64_t T, int64_t k, int64_t D, float* x) override;

private:
    // Multi-token steps over the blocked kernels (cpu_attention_block.cpp): false (nothing done) when T is
    // below block_min_tokens_, the KV type has no blocked kernel or the scratch is too small.
    bool attention_blocked(const float* q, const KvLayer& kv, int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t Dh,
                           int64_t window, float* out);
    void low_rank(const LowRank& a, int64_t rows, const float* x, int64_t n, int64_t T, float* y);

    const KernelTable* kt_;
    ThreadPool pool_;
    StepShape shape_;            // what plan_scratch sized the scratch for
    block_q8x* xq_ = nullptr;    // [T · max_width / 32] int8 activations
    float* scores_ = nullptr;    // [threads][scores_stride_] attention scratch
    int64_t scores_stride_ = 0;  // ctx (+ kAttnBlockKiviTileFloats·head_dim with a KIVI cache)
    float* lr_ = nullptr;        // [T · max_rank] A·x of a LowRank term
    float* acc_ = nullptr;       // [max_width] one row of moe_combine's sum (MoE models only)
    int64_t block_min_tokens_ = cpu_attention_block_min_tokens();
};

}  // namespace edge
