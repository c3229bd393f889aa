// model.h — a decoder-only transformer (Llama / Qwen2 / Qwen3 family) executed from an .edge file.
//
//   x = tok_embd[tokens]                                   [T, D]
//   per layer: x += o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))));  x += down(silu(gate(n2 x)) * up(n2 x))
//   logits = head(norm(x))                                 [T, V]
// The architecture is described by the file's llm.* keys (docs/FORMAT.md); nothing here knows model
// names. Weights stay in the read-only mapping; the model owns only the KV cache (f32 per layer,
// K transposed) and scratch sized for `batch` tokens at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "format.h"
#include "kernels/kernels.h"
#include "matrix.h"
#include "threadpool.h"
#include "tokenizer/tokenizer.h"

namespace edge {

struct LlmConfig {
    int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0, vocab = 0;
    int64_t max_ctx = 0;
    double rope_theta = 10000.0, rms_eps = 1e-6;
    bool qkv_bias = false, qk_norm = false, tied_head = false;
};

struct ModelOptions {
    int threads = 0;        // 0: all online CPUs
    int64_t ctx = 0;        // KV cache length; 0: min(max_ctx, 4096)
    int64_t batch = 128;    // tokens per prefill step (scratch size)
    int64_t mem_budget = 0; // bytes; 0 = unlimited. Checked before allocating (see memory_plan).
    std::string kernels;    // kernel level ("" = best available / $EDGE_KERNELS)
};

// Where the bytes of a dense model go; `total` must fit the budget.
struct MemoryPlan {
    int64_t weights = 0;  // mapped tensor bytes (all touched once per token)
    int64_t kv_cache = 0;
    int64_t scratch = 0;
    int64_t total() const { return weights + kv_cache + scratch; }
};

class Model {
public:
    static Status load(const std::string& path, const ModelOptions& opt, std::unique_ptr<Model>* out);
    ~Model();

    const LlmConfig& config() const { return cfg_; }
    const EdgeFile& file() const { return *file_; }
    const Tokenizer* tokenizer() const { return tok_.get(); }  // nullptr if the file has none
    const KernelTable& kernels() const { return *kt_; }
    const MemoryPlan& memory_plan() const { return plan_; }
    int threads() const { return pool_->size(); }
    int64_t ctx() const { return ctx_; }
    int64_t n_past() const { return n_past_; }

    // Forgets the KV cache (positions restart at 0).
    void reset() { n_past_ = 0; }
    // Drops cached positions >= n (n <= n_past), e.g. to re-use a shared prompt prefix.
    Status truncate(int64_t n);

    // Appends n tokens at positions n_past.. and runs them through the model in steps of `batch`.
    // logits: if all_logits, n × vocab floats (row t = prediction after token t); else vocab floats
    // for the last token only. May be nullptr to skip the head (prompt caching).
    Status eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits);

private:
    Model() = default;
    Status init(const std::string& path, const ModelOptions& opt);
    void step(const int32_t* tokens, int64_t T, bool all_logits, float* logits);
    // Y[T][W.rows] = X[T][W.cols] · W^T for several matrices sharing X, in one parallel dispatch.
    void matmul(const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T);
    void head(const float* x, int64_t T, float* logits);

    struct Layer {
        const float* attn_norm = nullptr;
        const float* ffn_norm = nullptr;
        const float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr;
        const float *q_norm = nullptr, *k_norm = nullptr;
        Matrix q, k, v, o, gate, up, down;
        // K: per kv head, transposed tiles of kKTile positions (see attention_fn); V: [ctx][Hkv·Dh].
        // Left uninitialised, so
        // pages become resident only as positions are written.
        std::unique_ptr<float[]> k_cache, v_cache;
    };

    std::unique_ptr<EdgeFile> file_;
    std::unique_ptr<Tokenizer> tok_;
    std::unique_ptr<ThreadPool> pool_;
    const KernelTable* kt_ = nullptr;
    LlmConfig cfg_;
    MemoryPlan plan_;
    Matrix tok_embd_, output_;
    const float* output_norm_ = nullptr;
    std::vector<Layer> layers_;
    std::vector<float> inv_freq_;
    int64_t ctx_ = 0, batch_ = 0, n_past_ = 0;
    int64_t ktile_head_ = 0;  // floats of cached K per kv head (ctx rounded up to whole tiles)

    // scratch, sized for batch_ tokens
    std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_, scores_, rope_cos_, rope_sin_;
    std::vector<block_q8x> xq_;
};

// Builds the tokenizer described by the file's tokenizer.* keys; *out stays null if there is none.
Status tokenizer_from_file(const EdgeFile& f, std::unique_ptr<Tokenizer>* out);

}  // namespace edge
