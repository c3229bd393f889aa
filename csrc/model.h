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
// sizes and allocates every buffer — KV cache (per layer and sequence, f32 / f16 / q8, K transposed), scratch for `batch` tokens,
// expert slots and I/O staging, the layer window — and its output, the MemoryPlan, fits one budget.
// Adapters (adapter.h, ModelOptions::adapters): every targeted matmul gets its merged LoRA term and bias delta,
// an MoE expert's gate / up / down included (moe_ffn's ExpertAdapter terms).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "act_stats.h"
#include "adapter.h"
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
#include "sampler.h"
#include "tokenizer/tokenizer.h"

namespace edge {

struct LlmConfig {
    int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0, vocab = 0;
    int64_t max_ctx = 0;
    double rope_theta = 10000.0, rms_eps = 1e-6;
    bool qkv_bias = false, qk_norm = false, tied_head = false;
    bool qk_norm_full = false;  // llm.qk_norm_scope = full: one norm over the whole q / k projection (OLMoE)
    int64_t swa_window = 0;     // llm.swa_window (used by layers with llm.swa_layers = 1)
    double rope_theta_swa = 0;  // llm.rope_theta_swa: the RoPE base of sliding-window layers (0: rope_theta)
    Act ffn_act = Act::SILU;    // llm.ffn_act: silu | gelu_tanh
    bool post_norms = false;    // llm.post_norms: attention / FFN outputs RMS-normed before the residual add
    float embed_scale = 1.f;    // llm.embed_scale: x = tok_embd[tokens] · embed_scale
    std::string arch;           // general.architecture
};

struct ModelOptions {
    int threads = 0;        // 0: all online CPUs
    int64_t ctx = 0;        // KV cache length; 0: min(max_ctx, 4096), or with mem_budget the longest (<= max_ctx) that fits
    // How K and V are stored (backend.h). Default f16; the CUDA backend has f32 attention only, so there the
    // default is f32 (kv_explicit = false) and an explicit f16 / q8 is refused.
    KvType kv = KvType::F16;
    bool kv_explicit = false;
    bool swa_ring = true;     // sliding-window layers keep a ring of ~window slots (CPU; backend.h KvLayer::ring)
    int64_t batch = 128;    // tokens per prefill step (scratch size); also the most tokens of one eval_batch
    int64_t n_seq = 1;      // KV-cache sequences of ctx positions each (a server's slots); eval() uses sequence 0
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
    // Trained adapters (adapter.h), each with a user scale, applied to every matmul they target; their
    // merged terms are planned (MemoryPlan::adapters), the experts' too. CPU backend only (the CUDA matmul has no
    // LowRank yet).
    std::vector<AdapterSpec> adapters;
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
    int64_t batch() const { return batch_; }
    int64_t n_past() const { return past_[0]; }
    int64_t n_seq() const { return (int64_t)past_.size(); }
    bool ctx_from_budget() const { return ctx_from_budget_; }  // ctx was chosen to fit mem_budget
    int64_t swa_ring() const { return ring_; }  // slots R of each sliding-window layer's ring (0: full caches)
    // The longest prefix <= n of sequence s that seq_truncate() can keep: n, or 0 when a ring has already
    // overwritten positions the next token's window needs (more than R - window + 1 positions would be dropped).
    int64_t seq_keepable(int64_t s, int64_t n) const;
    int64_t keepable(int64_t n) const { return seq_keepable(0, n); }
    KvType kv_type() const { return kv_; }
    // Expert cache statistics since load / the last reset (all zero for a dense model).
    ExpertStats moe_stats() const;
    void moe_reset_stats();
    bool layers_streamed() const { return stream_ != nullptr; }
    LayerStreamStats layer_stream_stats() const { return stream_ ? stream_->stats() : LayerStreamStats(); }

    // Forgets the KV cache of sequence 0 (positions restart at 0).
    void reset() { past_[0] = 0; }
    // Drops cached positions >= n of sequence 0 (n <= n_past), e.g. to re-use a shared prompt prefix.
    Status truncate(int64_t n) { return seq_truncate(0, n); }
    // The same for sequence s < n_seq (INVALID_ARGUMENT for another s or n).
    Status seq_truncate(int64_t s, int64_t n);
    int64_t seq_past(int64_t s) const { return s >= 0 && s < n_seq() ? past_[(size_t)s] : -1; }

    // Appends n tokens at positions n_past.. and runs them through the model in steps of `batch`.
    // logits: if all_logits, n × vocab floats (row t = prediction after token t); else vocab floats
    // for the last token only. May be nullptr to skip the head (prompt caching).
    // An expert read that fails (I/O error, corrupt blob) returns its Status; the tokens of the failing
    // step are not appended (n_past stays at the last completed step).
    Status eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits);

    // Several sequences in one step (continuous batching): token i is appended to sequence seqs[i] at
    // that sequence's next position. The tokens of one sequence are consecutive (a "run": one token for
    // a decoding sequence, a chunk of a prompt); a sequence appears in one run at most. The layers run
    // once over all n tokens (matmuls with T = n columns); RoPE uses each token's own position and
    // attention reads each token's own sequence's cache. n <= batch(). logits: n_runs × vocab floats,
    // row r = the prediction after the last token of run r, runs in order of appearance (*n_runs set).
    // Per column the numerics are eval()'s: a decode token's logits equal a single-sequence eval's
    // (matmul columns are independent; attention per token). On an error nothing is appended.
    Status eval_batch(const int32_t* seqs, const int32_t* tokens, int64_t n, float* logits, int64_t* n_runs);

    // One token evaluated and its successor picked by `sampler` on the device: a recorded one-token step
    // whose logits stay on the device, then Backend::sample (only the id comes back). *done = false, with
    // nothing evaluated, where this model or backend cannot (host memory backends, MoE, a sampler setting
    // beyond the device sampler's limits): then use eval + Sampler::sample. The sampler draws exactly as
    // Sampler::sample would (sampler.h), so both paths give the same tokens but where the device's f32
    // exp differs in the last bits at a draw's boundary (backend/cuda/cuda_sample.cu).
    Status eval_sample_device(int32_t token, Sampler& sampler, const std::vector<int32_t>& history, int32_t* next,
                              bool* done);
    // The same split in two, so that a step can be launched before the previous one's token is known (backend.h
    // pipelined decoding): eval_sample_device_launch enqueues the step of `token` — kTokenFromPick: the token the
    // previous launch picks, still on the device — and its pick, and returns; eval_sample_device_wait returns the
    // oldest launched step's token (in launch order; at most Backend::kMaxPicksInFlight launched and not waited
    // for). n_past counts a step at its launch: a launched step whose token is not wanted is undone by
    // truncate(n_past() - 1) after its wait. *launched = false, with nothing enqueued, where eval_sample_device
    // would not run, where the backend has no asynchronous pick, or with a repetition penalty (its ids would
    // need the pending token): then use eval_sample_device / eval. Same tokens as eval_sample_device.
    static constexpr int32_t kTokenFromPick = Backend::kStepTokenFromPick;
    Status eval_sample_device_launch(int32_t token, Sampler& sampler, bool* launched);
    Status eval_sample_device_wait(int32_t* next);
    bool pipelined_sampling(const Sampler& sampler) const;  // eval_sample_device_launch can run these params
    bool device_steps() const { return device_steps_; }
    // A layer's weights: pointers into the mapping, or into a LayerStream buffer (rebased()).
    struct LayerWeights {
        const float* attn_norm = nullptr;
        const float* ffn_norm = nullptr;
        const float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr;
        const float *q_norm = nullptr, *k_norm = nullptr;  // [head_dim], or [Dq] / [Dkv] when qk_norm_full
        const float *attn_post_norm = nullptr, *ffn_post_norm = nullptr;  // [D], llm.post_norms
        Matrix q, k, v, o, gate, up, down;                 // gate/up/down: dense FFN layers only
        Matrix router, pred;                               // MoE: [E, D] f32 (pred: moe.predictor = linear)
        const float* pred_b = nullptr;                     // [E]
        // The same weights read from a copy of the file bytes [origin, ...) that starts at `base`.
        LayerWeights rebased(const uint8_t* origin, const uint8_t* base) const;
    };
    // Read-only view of the weights for the training engine (csrc/train/): no copies, valid while the
    // model lives. Layer pointers are host addresses only on the CPU backend (backend().device() ==
    // CPU) and when layers are not streamed (layers_streamed() is false).
    const LayerWeights& layer_weights(int64_t il) const { return layers_[(size_t)il].w; }
    bool layer_is_moe(int64_t il) const { return layers_[(size_t)il].moe; }
    bool layer_has_rope(int64_t il) const { return layers_[(size_t)il].rope; }
    bool layer_is_swa(int64_t il) const { return layers_[(size_t)il].swa; }
    // Calibration (act_stats.h): every later eval hands each matmul input to `stats` (nullptr: off, the
    // default; the forward pass then does nothing extra). CPU backend only (UNSUPPORTED otherwise: the
    // activations must be host memory). The caller keeps `stats` alive while it is attached.
    Status set_activation_stats(ActivationStats* stats);
    const Matrix& tok_embd() const { return tok_embd_; }
    const Matrix& output() const { return output_; }  // tok_embd when tied
    const float* output_norm() const { return output_norm_; }
    ExpertStore* expert_store() { return store_.get(); }  // nullptr for a dense model

private:
    struct Layer {
        LayerWeights w;
        // --adapter terms per AdapterTarget: lora[t] (rank 0: none) and a bias delta (nullptr: none)
        LowRank lora[AT_COUNT];
        const LowRank* lora_ptr[AT_COUNT] = {};  // &lora[t] when its rank > 0, for Backend::matmul
        float* bias[AT_COUNT] = {};
        std::vector<ExpertAdapter> expert_ad;  // MoE: [E] the experts' --adapter terms (empty: none)
        bool moe = false, rope = true, swa = false;
        std::vector<KvLayer> kv;  // one per sequence; planned without zero-fill: pages become resident only as positions are written
    };
    // Consecutive tokens [t0, t0 + len) of one step that belong to sequence seq, from position pos0.
    struct Run {
        int64_t seq = 0, t0 = 0, len = 0, pos0 = 0;
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
    void plan_kivi(Layer& L, size_t i);  // one layer's KIVI caches (model_load.cpp)
    Status load_adapters(const ModelOptions& opt);  // model_adapter.cpp
    void plan_adapters();
    void bind_adapters();
    void add_adapter_bias(const Layer& L, int target, float* y, int64_t T, int64_t n);
    Status choose_ctx(const ModelOptions& opt);
    Status step(const int32_t* tokens, int64_t T, const Run* runs, int64_t n_runs, bool all_logits, float* logits);
    void rope_angles(const Run* runs, int64_t n_runs);
    Status forward_layers(int64_t T, const Run* runs, int64_t n_runs, bool device_moe = false);
    Status device_step(int32_t token, float* logits);
    void attention(Layer& L, const LayerWeights& w, int64_t T, const Run* runs, int64_t n_runs);
    void dense_ffn(const Layer& L, const LayerWeights& w, int64_t T);
    Status moe_predict(int64_t il, const LayerWeights& w, int64_t T);
    Status moe_forward(int64_t il, const LayerWeights& w, int64_t T);
    // an MoE layer's FFN around its attention (forward_layers): device_moe = routed on the device (moe_device_ffn)
    Status moe_pre_attention(int64_t il, const LayerWeights& w, int64_t T, bool device_moe);
    Status moe_post_attention(int64_t il, const LayerWeights& w, int64_t T, bool device_moe);
    Status moe_make_resident(bool lowbit);  // model_load.cpp

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
    Matrix tok_embd_dev_;        // the embedding table in the backend's copy of the weights (device steps)
    bool device_steps_ = false;  // one-token steps recorded and replayed by the backend (Backend::step_*)
    // MoE in device steps (Backend::moe_device_*): every expert resident in device memory, each MoE layer's number
    // among the MoE layers in moe_slot_ (-1: dense)
    bool moe_device_ = false;
    std::vector<int> moe_slot_;
    int64_t moe_layers_ = 0;
    const float* output_norm_ = nullptr;
    std::vector<Layer> layers_;
    AdapterSet adapters_;          // merged on the host at load; copied into adapter_mem_, then dropped
    float* adapter_mem_ = nullptr;  // one planned buffer holding every term
    std::vector<int32_t> penalty_ids_;  // eval_sample_device's scratch
    ActivationStats* stats_ = nullptr;   // set_activation_stats: matmul inputs observed when non-null
    uint8_t* expert_mirror_ = nullptr;  // the device mirror of the store's slots (Backend::mirror_expert_slots)
    int64_t ctx_ = 0, batch_ = 0;
    std::vector<int64_t> past_ = std::vector<int64_t>(1, 0);  // positions cached per sequence
    KvType kv_ = KvType::F32;
    bool swa_ring_ = true;
    int64_t ring_ = 0;  // R of the sliding-window layers' rings (0: none)
    bool ctx_from_budget_ = false;

    // Scratch for batch_ tokens (device memory of be_, planned in plan_buffers)
    float *x_ = nullptr, *xn_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr;
    float *gate_ = nullptr, *up_ = nullptr, *rope_cos_ = nullptr, *rope_sin_ = nullptr, *inv_freq_ = nullptr;
    // the sliding-window layers' RoPE when llm.rope_theta_swa differs (else these alias the ones above)
    float *rope_cos_swa_ = nullptr, *rope_sin_swa_ = nullptr, *inv_freq_swa_ = nullptr;
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
