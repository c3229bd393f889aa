// model.h — a decoder-only transformer executed from an .edge file: dense (llama, qwen2, qwen3) and
// mixture-of-experts (smallthinker, qwen3moe, mixtral, olmoe; docs/MOE.md) families.
//
//   x = tok_embd[tokens]                                   [T, D]
//   per layer:
//     MoE layer: predict the experts of each token (router on x, or W_pred·rms(x) + b) and prefetch them
//     x += o(attn(rope?(q(n1 x)), rope?(k(n1 x)), v(n1 x)))       per-layer RoPE/NoPE and sliding window
//     dense FFN: x += down(silu(gate(n2 x)) * up(n2 x))
//     MoE FFN:   route (router on x_in or n2 x), x += Σ_j w_j expert_j(n2 x)   (moe.h; experts from ExpertStore)
//   logits = head(norm(x))                                 [T, V]
// The architecture is described by the file's llm.* / moe.* keys (docs/FORMAT.md, docs/MOE.md); nothing
// here knows model names. Every op runs on a Backend (backend/backend.h; the CPU backend today): this
// file and model.cpp only sequence them. Non-expert weights stay in the read-only mapping (a view the
// backend reads); experts are read into the ExpertStore's cache slots. One Planner (backend/planner.h)
// sizes and allocates every buffer — KV cache (f32 per layer, K transposed), scratch for `batch` tokens,
// expert slots and I/O staging, the layer window — and its output, the MemoryPlan, fits one budget.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/planner.h"
#include "common.h"
#include "expert_store.h"
#include "format.h"
#include "kernels/kernels.h"
#include "layer_stream.h"
#include "matrix.h"
#include "moe.h"
#include "tokenizer/tokenizer.h"

namespace edge {

struct LlmConfig {
    int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0, vocab = 0;
    int64_t max_ctx = 0;
    double rope_theta = 10000.0, rms_eps = 1e-6;
    bool qkv_bias = false, qk_norm = false, tied_head = false;
    bool qk_norm_full = false;  // llm.qk_norm_scope = full: one norm over the whole q / k projection (OLMoE)
    int64_t swa_window = 0;     // llm.swa_window (used by layers with llm.swa_layers = 1)
    std::string arch;           // general.architecture
};

struct ModelOptions {
    int threads = 0;        // 0: all online CPUs
    int64_t ctx = 0;        // KV cache length; 0: min(max_ctx, 4096), or with mem_budget the longest (<= max_ctx) that fits
    KvType kv = KvType::F32;  // how K and V are stored (backend.h); the CUDA backend takes f32 only
    bool swa_ring = true;     // sliding-window layers keep a ring of ~window slots (CPU; backend.h KvLayer::ring)
    int64_t batch = 128;    // tokens per prefill step (scratch size)
    int64_t mem_budget = 0; // bytes; 0 = unlimited. Checked before allocating (see MemoryPlan).
    // true: mem_budget bounds the whole process — what it already holds (interpreter, libraries, the
    // tokenizer: its resident set when the plan is made) plus a margin is counted as MemoryPlan::process.
    // The CLIs set it (`--mem` under a cgroup must hold the process); an embedding API may budget the model only.
    bool budget_covers_process = false;
    std::string kernels;    // kernel level ("" = best available / $EDGE_KERNELS)
    std::string device = "cpu";  // "cpu" | "cuda" (the CUDA backend plugin, backend_cuda_loader.h)
    int64_t gpu_mem = 0;    // bytes of device memory the plan may use; 0: what is free minus a 256 MiB margin
    // MoE expert streaming (docs/MOE.md §4; ignored by dense models)
    std::string cache_policy = "lfru";  // "lfru" | "lru"
    int io_threads = 2;
    bool moe_lowbit = false;            // serve cold misses with a low weight from the next lower variant
    float moe_lowbit_threshold = 0.2f;
};

class Model {
public:
    static Status load(const std::string& path, const ModelOptions& opt, std::unique_ptr<Model>* out);
    ~Model();

    const LlmConfig& config() const { return cfg_; }
    const MoeConfig& moe_config() const { return moe_; }  // n_experts == 0 for a dense model
    bool is_moe() const { return store_ != nullptr; }
    const EdgeFile& file() const { return *file_; }
    const Tokenizer* tokenizer() const { return tok_.get(); }  // nullptr if the file has none
    const KernelTable& kernels() const { return cpu_->kernels(); }
    const Backend& backend() const { return *be_; }
    const MemoryPlan& memory_plan() const { return plan_; }
    int threads() const { return be_->threads(); }
    int64_t ctx() const { return ctx_; }
    bool ctx_from_budget() const { return ctx_from_budget_; }  // ctx was chosen to fit mem_budget
    int64_t swa_ring() const { return ring_; }  // slots R of each sliding-window layer's ring (0: full caches)
    // The longest prefix <= n that truncate() can keep: n, or 0 when a ring has already overwritten
    // positions the next token's window needs (more than R - window + 1 positions would be dropped).
    int64_t keepable(int64_t n) const;
    KvType kv_type() const { return kv_; }
    int64_t n_past() const { return n_past_; }
    // Expert cache statistics since load / the last reset (all zero for a dense model).
    ExpertStats moe_stats() const;
    void moe_reset_stats();
    bool layers_streamed() const { return stream_ != nullptr; }
    LayerStreamStats layer_stream_stats() const { return stream_ ? stream_->stats() : LayerStreamStats(); }

    // Forgets the KV cache (positions restart at 0).
    void reset() { n_past_ = 0; }
    // Drops cached positions >= n (n <= n_past), e.g. to re-use a shared prompt prefix.
    Status truncate(int64_t n);

    // Appends n tokens at positions n_past.. and runs them through the model in steps of `batch`.
    // logits: if all_logits, n × vocab floats (row t = prediction after token t); else vocab floats
    // for the last token only. May be nullptr to skip the head (prompt caching).
    // An expert read that fails (I/O error, corrupt blob) returns its Status; the tokens of the failing
    // step are not appended (n_past stays at the last completed step).
    Status eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits);

private:
    // A layer's weights: pointers into the mapping, or into a LayerStream buffer (rebased()).
    struct LayerWeights {
        const float* attn_norm = nullptr;
        const float* ffn_norm = nullptr;
        const float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr;
        const float *q_norm = nullptr, *k_norm = nullptr;  // [head_dim], or [Dq] / [Dkv] when qk_norm_full
        Matrix q, k, v, o, gate, up, down;                 // gate/up/down: dense FFN layers only
        Matrix router, pred;                               // MoE: [E, D] f32 (pred: moe.predictor = linear)
        const float* pred_b = nullptr;                     // [E]
        // The same weights read from a copy of the file bytes [origin, ...) that starts at `base`.
        LayerWeights rebased(const uint8_t* origin, const uint8_t* base) const;
    };
    struct Layer {
        LayerWeights w;
        bool moe = false, rope = true, swa = false;
        KvLayer kv;  // planned without zero-fill: pages become resident only as positions are written
    };

    Model() = default;
    Status init(const std::string& path, const ModelOptions& opt);
    Status load_layers();
    Status plan_memory(const ModelOptions& opt);
    Status plan_layer_stream(const ModelOptions& opt);
    Status plan_store(const ModelOptions& opt, int64_t fixed, ExpertStore::Options* so);
    Status check_device_budget(const ModelOptions& opt);
    void rebase_weights(const uint8_t* origin, const uint8_t* base);
    uint64_t weights_end() const;
    Status plan_buffers();
    Status choose_ctx(const ModelOptions& opt);
    Status step(const int32_t* tokens, int64_t T, bool all_logits, float* logits);
    void attention(Layer& L, const LayerWeights& w, int64_t T);
    void dense_ffn(const LayerWeights& w, int64_t T);
    Status moe_predict(int64_t il, const LayerWeights& w, int64_t T);
    Status moe_forward(int64_t il, const LayerWeights& w, int64_t T);

    std::unique_ptr<EdgeFile> file_;
    std::unique_ptr<Tokenizer> tok_;
    std::unique_ptr<CpuBackend> cpu_;      // the host's kernels (and the backend, on the CPU)
    std::unique_ptr<Backend> gpu_;         // ModelOptions::device = "cuda"
    Backend* be_ = nullptr;                // runs every op: cpu_ or gpu_
    Planner planner_;                      // owns every buffer below; destroyed after the users
    std::unique_ptr<ExpertStore> store_;
    std::unique_ptr<LayerStream> stream_;  // dense layers streamed when the model exceeds the budget
    LayerStream::Options stream_opt_{0};   // window > 0: planned by plan_layer_stream
    const uint8_t* map_base_ = nullptr;    // file offset 0 in the mapping
    Buffer weights_;                       // the backend's view (or copy) of the mapped tensors
    LlmConfig cfg_;
    MoeConfig moe_;
    MemoryPlan plan_;
    Matrix tok_embd_, output_;
    const float* output_norm_ = nullptr;
    std::vector<Layer> layers_;
    int64_t ctx_ = 0, batch_ = 0, n_past_ = 0;
    KvType kv_ = KvType::F32;
    bool swa_ring_ = true;
    int64_t ring_ = 0;  // R of the sliding-window layers' rings (0: none)
    bool ctx_from_budget_ = false;

    // Scratch for batch_ tokens (device memory of be_, planned in plan_buffers)
    float *x_ = nullptr, *xn_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr;
    float *gate_ = nullptr, *up_ = nullptr, *rope_cos_ = nullptr, *rope_sin_ = nullptr, *inv_freq_ = nullptr;
    float* logits_out_ = nullptr;  // [vocab] the head's output when be_ cannot write host memory
    // MoE: router / predictor logits [T, E] (device); routes [T, k], the union and its weights (host)
    float *logits_ = nullptr, *pred_logits_ = nullptr;
    float *route_w_ = nullptr, *union_w_ = nullptr;
    int32_t *route_idx_ = nullptr, *pred_idx_ = nullptr, *union_ = nullptr;
    uint8_t* seen_ = nullptr;
    MoeBuffers moe_buf_;
};

// Builds the tokenizer described by the file's tokenizer.* keys; *out stays null if there is none.
Status tokenizer_from_file(const EdgeFile& f, std::unique_ptr<Tokenizer>* out);

}  // namespace edge
