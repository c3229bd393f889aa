// model_load.cpp — loading: the llm.* / moe.* configuration, every tensor validated against it, the
// memory plan checked against the budget before anything large is allocated, and the expert store.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cmath>

#include "model.h"

namespace edge {

namespace {

// What a process needs beyond its resident set at planning time and the planned terms: thread stacks,
// allocator slack, the sampler's and bindings' per-call buffers.
constexpr int64_t kProcessMargin = 24 << 20;

// Bytes the process has resident now (/proc/self/statm); 0 if unknown.
int64_t process_resident_bytes() {
    FILE* fp = std::fopen("/proc/self/statm", "r");
    if (!fp) return 0;
    long long size = 0, resident = 0;
    const int n = std::fscanf(fp, "%lld %lld", &size, &resident);
    std::fclose(fp);
    return n == 2 ? resident * (int64_t)sysconf(_SC_PAGESIZE) : 0;
}


Status bad_model(const std::string& path, const std::string& msg) {
    return status_error(Code::BAD_FILE, path + ": " + msg);
}

int64_t default_threads() {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n;
}

double mib(int64_t b) { return (double)b / 1048576.0; }

bool is_expert_blob(const TensorInfo& t) { return t.dtype == EDGE_DTYPE_BLOB; }

// Optional per-layer 0/1 array; absent: every layer gets `dflt`.
Status layer_flags(const EdgeFile& f, const std::string& key, int64_t n_layers, bool dflt, std::vector<uint8_t>* out) {
    out->assign((size_t)n_layers, dflt ? 1 : 0);
    const MetaValue* v = f.get(key);
    if (!v) return Status::ok();
    if (v->type != META_ARR_I64 || (int64_t)v->ai.size() != n_layers)
        return bad_model(f.path(), strfmt("%s must be an integer array of llm.n_layers = %lld entries", key.c_str(), (long long)n_layers));
    for (int64_t i = 0; i < n_layers; ++i) {
        if (v->ai[(size_t)i] != 0 && v->ai[(size_t)i] != 1)
            return bad_model(f.path(), strfmt("%s[%lld] must be 0 or 1", key.c_str(), (long long)i));
        (*out)[(size_t)i] = (uint8_t)v->ai[(size_t)i];
    }
    return Status::ok();
}

}  // namespace

Status tokenizer_from_file(const EdgeFile& f, std::unique_ptr<Tokenizer>* out) {
    out->reset();
    const MetaValue* model = f.get("tokenizer.model");
    if (!model) return Status::ok();
    TokenizerSpec spec;
    EDGE_TRY(f.get_str("tokenizer.model", &spec.model));
    if (const MetaValue* v = f.get("tokenizer.pre"); v && v->type == META_STR) spec.pre = v->s;
    const MetaValue* toks = f.get("tokenizer.tokens");
    if (!toks || toks->type != META_ARR_STR) return bad_model(f.path(), "tokenizer.tokens missing or not a string array");
    spec.tokens = toks->as;
    if (const MetaValue* v = f.get("tokenizer.scores"); v && v->type == META_ARR_F32) spec.scores = v->af;
    if (const MetaValue* v = f.get("tokenizer.token_type"); v && v->type == META_ARR_I64)
        spec.types.assign(v->ai.begin(), v->ai.end());
    if (const MetaValue* v = f.get("tokenizer.merges"); v && v->type == META_ARR_STR) spec.merges = v->as;
    auto id = [&](const char* key, int32_t* dst) {
        if (const MetaValue* v = f.get(key); v && v->type == META_I64) *dst = (int32_t)v->i;
    };
    id("tokenizer.bos_id", &spec.bos_id);
    id("tokenizer.eos_id", &spec.eos_id);
    id("tokenizer.unk_id", &spec.unk_id);
    id("tokenizer.pad_id", &spec.pad_id);
    if (const MetaValue* v = f.get("tokenizer.add_bos"); v && v->type == META_I64) spec.add_bos = v->i != 0;
    Status st = Tokenizer::create(spec, out);
    if (!st.is_ok()) return status_error(st.code, f.path() + ": tokenizer: " + st.msg);
    return Status::ok();
}

Status Model::load(const std::string& path, const ModelOptions& opt, std::unique_ptr<Model>* out) {
    std::unique_ptr<Model> m(new Model());
    EDGE_TRY(m->init(path, opt));
    *out = std::move(m);
    return Status::ok();
}

Model::~Model() = default;

Status Model::init(const std::string& path, const ModelOptions& opt) {
    EDGE_TRY(edge_file_open(path, &file_));
    const EdgeFile& f = *file_;

    // Decoder families this executor implements; each differs only in the llm.* / moe.* keys below.
    static const char* const kDense[] = {"llama", "qwen2", "qwen3"};
    static const char* const kMoe[] = {"smallthinker", "qwen3moe", "mixtral", "olmoe"};
    EDGE_TRY(f.get_str("general.architecture", &cfg_.arch));
    const std::string& arch = cfg_.arch;
    const bool moe_arch = std::find(std::begin(kMoe), std::end(kMoe), arch) != std::end(kMoe);
    if (!moe_arch && std::find(std::begin(kDense), std::end(kDense), arch) == std::end(kDense))
        return status_error(Code::UNSUPPORTED, path + ": architecture '" + arch +
                                                   "' is not supported by this runtime (supported: llama, qwen2, qwen3, "
                                                   "smallthinker, qwen3moe, mixtral, olmoe)");
    int64_t b;
    EDGE_TRY(f.get_i64("llm.n_layers", &cfg_.n_layers));
    EDGE_TRY(f.get_i64("llm.d_model", &cfg_.d_model));
    EDGE_TRY(f.get_i64("llm.n_heads", &cfg_.n_heads));
    EDGE_TRY(f.get_i64("llm.n_kv_heads", &cfg_.n_kv_heads));
    EDGE_TRY(f.get_i64("llm.head_dim", &cfg_.head_dim));
    EDGE_TRY(f.get_i64("llm.d_ff", &cfg_.d_ff));
    EDGE_TRY(f.get_i64("llm.vocab_size", &cfg_.vocab));
    EDGE_TRY(f.get_i64("llm.max_ctx", &cfg_.max_ctx));
    EDGE_TRY(f.get_f64("llm.rope_theta", &cfg_.rope_theta));
    EDGE_TRY(f.get_f64("llm.rms_eps", &cfg_.rms_eps));
    EDGE_TRY(f.get_i64("llm.qkv_bias", &b)); cfg_.qkv_bias = b != 0;
    EDGE_TRY(f.get_i64("llm.qk_norm", &b)); cfg_.qk_norm = b != 0;
    EDGE_TRY(f.get_i64("llm.tied_head", &b)); cfg_.tied_head = b != 0;
    if (const MetaValue* v = f.get("llm.qk_norm_scope")) {
        if (v->type != META_STR || (v->s != "head" && v->s != "full"))
            return status_error(Code::UNSUPPORTED, path + ": llm.qk_norm_scope must be 'head' or 'full'");
        cfg_.qk_norm_full = v->s == "full";
    }
    if (moe_arch && !f.get("moe.n_experts")) {
        return status_error(Code::UNSUPPORTED, path + ": architecture '" + arch + "' is not supported without the moe.* keys of "
                                                   "docs/MOE.md (moe.n_experts is missing); re-export the model with the current edgeconv");
    } else if (moe_arch) {
        EDGE_TRY(moe_config_read(f, cfg_.n_layers, &moe_));
    } else if (f.get("moe.n_experts")) {
        return status_error(Code::UNSUPPORTED, path + ": architecture '" + arch + "' with moe.* keys is not supported");
    }
    const LlmConfig& c = cfg_;
    const bool any_dense = !moe_arch || std::find(moe_.is_moe.begin(), moe_.is_moe.end(), 0) != moe_.is_moe.end();
    auto in = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
    if (!in(c.n_layers, 1, 1024) || !in(c.d_model, 32, 1 << 16) || !in(c.n_heads, 1, 1024) ||
        !in(c.n_kv_heads, 1, c.n_heads) || c.n_heads % c.n_kv_heads || !in(c.head_dim, 2, 1024) || c.head_dim % 2 ||
        !in(c.d_ff, any_dense ? 32 : 0, 1 << 18) || !in(c.vocab, 1, 1 << 22) || !in(c.max_ctx, 1, 1 << 24) ||
        !(c.rope_theta > 0) || !(c.rms_eps > 0))
        return bad_model(path, strfmt("implausible hyper-parameters (layers %lld, d_model %lld, heads %lld/%lld, head_dim %lld, d_ff %lld, vocab %lld)",
                                      (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.n_kv_heads,
                                      (long long)c.head_dim, (long long)c.d_ff, (long long)c.vocab));

    kt_ = opt.kernels.empty() ? kernels_default() : kernels_for(opt.kernels.c_str());
    if (!kt_) return status_error(Code::INVALID_ARGUMENT, "kernel level '" + opt.kernels + "' is not supported on this CPU");
    EDGE_TRY(load_layers());
    EDGE_TRY(tokenizer_from_file(f, &tok_));

    ctx_ = opt.ctx > 0 ? opt.ctx : std::min<int64_t>(c.max_ctx, 4096);
    if (ctx_ > (1 << 20)) return status_error(Code::INVALID_ARGUMENT, "context length too large");
    batch_ = std::max<int64_t>(1, std::min<int64_t>(opt.batch, ctx_));
    const int threads = opt.threads > 0 ? opt.threads : (int)default_threads();
    pool_.reset(new ThreadPool(threads));
    EDGE_TRY(plan_memory(opt));

    // allocation (the plan fit)
    const int64_t T = batch_, D = c.d_model, Dq = c.n_heads * c.head_dim, Dkv = c.n_kv_heads * c.head_dim;
    const int64_t E = moe_.n_experts, k = moe_.n_used, F = moe_.d_expert;
    const int64_t maxw = std::max({D, c.d_ff, Dq, F});
    for (Layer& L : layers_) {
        L.k_cache.reset(new float[(size_t)(ktile_head_ * c.n_kv_heads)]);
        L.v_cache.reset(new float[(size_t)(ctx_ * Dkv)]);
    }
    x_.resize((size_t)(T * D));
    xn_.resize((size_t)(T * D));
    q_.resize((size_t)(T * Dq));
    att_.resize((size_t)(T * Dq));
    k_.resize((size_t)(T * Dkv));
    v_.resize((size_t)(T * Dkv));
    gate_.resize((size_t)(T * c.d_ff));
    up_.resize((size_t)(T * c.d_ff));
    scores_.resize((size_t)(threads * ctx_));
    xq_.resize((size_t)(T * ((maxw + 31) / 32)));
    inv_freq_.resize((size_t)(c.head_dim / 2));
    rope_cos_.resize((size_t)(T * c.head_dim / 2));
    rope_sin_.resize((size_t)(T * c.head_dim / 2));
    for (int64_t i = 0; i < c.head_dim / 2; ++i)
        inv_freq_[(size_t)i] = (float)(1.0 / std::pow(c.rope_theta, (double)(2 * i) / (double)c.head_dim));
    if (E > 0) {
        logits_.resize((size_t)(T * E));
        pred_logits_.resize((size_t)(T * E));
        route_w_.resize((size_t)(T * k));
        route_idx_.resize((size_t)(T * k));
        pred_idx_.resize((size_t)(T * k));
        union_.resize((size_t)E);
        seen_.resize((size_t)E);
        moe_buf_.resize(T, D, E, k, F);
    }
    return Status::ok();
}

Status Model::load_layers() {
    const EdgeFile& f = *file_;
    const std::string& path = f.path();
    const LlmConfig& c = cfg_;
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, Matrix* m) -> Status {
        const TensorInfo* t = f.find(name);
        if (!t) return bad_model(path, "missing tensor '" + name + "'");
        if (t->shape.size() != 2 || t->shape[0] != rows || t->shape[1] != cols)
            return bad_model(path, strfmt("tensor '%s' should be [%lld, %lld]", name.c_str(), (long long)rows, (long long)cols));
        if (!kt_->gemm[t->dtype].fn || !kt_->dequant[t->dtype].fn || (dtype_traits(t->dtype).int_dot && cols % 32))
            return status_error(Code::UNSUPPORTED, path + ": tensor '" + name + "' has dtype " + dtype_traits(t->dtype).name + ", which cannot be a matmul weight");
        *m = Matrix{t->data, t->dtype, rows, cols, dtype_row_bytes(t->dtype, cols)};
        return Status::ok();
    };
    auto f32_matrix = [&](const std::string& name, int64_t rows, int64_t cols, Matrix* m) -> Status {
        EDGE_TRY(matrix(name, rows, cols, m));
        if (m->dtype != EDGE_DTYPE_F32)  // top-k on raw logits must not flip through quantization (docs/MOE.md §3)
            return bad_model(path, strfmt("tensor '%s' must be f32, not %s", name.c_str(), dtype_traits(m->dtype).name));
        return Status::ok();
    };
    auto vec = [&](const std::string& name, int64_t n, const float** dst) -> Status {
        const TensorInfo* t = f.find(name);
        if (!t) return bad_model(path, "missing tensor '" + name + "'");
        if (t->dtype != EDGE_DTYPE_F32 || t->shape.size() != 1 || t->shape[0] != n)
            return bad_model(path, strfmt("tensor '%s' should be f32 [%lld]", name.c_str(), (long long)n));
        *dst = reinterpret_cast<const float*>(t->data);  // 64-byte aligned by the format
        return Status::ok();
    };

    const int64_t D = c.d_model, Dq = c.n_heads * c.head_dim, Dkv = c.n_kv_heads * c.head_dim, E = moe_.n_experts;
    EDGE_TRY(matrix("tok_embd", c.vocab, D, &tok_embd_));
    EDGE_TRY(vec("output_norm", D, &output_norm_));
    if (c.tied_head) {
        output_ = tok_embd_;
    } else {
        EDGE_TRY(matrix("output", c.vocab, D, &output_));
    }
    std::vector<uint8_t> rope, swa;
    EDGE_TRY(layer_flags(f, "llm.rope_layers", c.n_layers, true, &rope));
    EDGE_TRY(layer_flags(f, "llm.swa_layers", c.n_layers, false, &swa));
    if (std::find(swa.begin(), swa.end(), 1) != swa.end()) {
        EDGE_TRY(f.get_i64("llm.swa_window", &cfg_.swa_window));
        if (cfg_.swa_window < 1) return bad_model(path, strfmt("llm.swa_window = %lld must be >= 1", (long long)cfg_.swa_window));
    }
    layers_.resize((size_t)c.n_layers);
    for (int64_t i = 0; i < c.n_layers; ++i) {
        Layer& L = layers_[(size_t)i];
        std::string p = "blk." + std::to_string(i) + ".";
        L.rope = rope[(size_t)i] != 0;
        L.swa = swa[(size_t)i] != 0;
        L.moe = E > 0 && moe_.is_moe[(size_t)i];
        EDGE_TRY(vec(p + "attn_norm", D, &L.w.attn_norm));
        EDGE_TRY(vec(p + "ffn_norm", D, &L.w.ffn_norm));
        EDGE_TRY(matrix(p + "attn_q", Dq, D, &L.w.q));
        EDGE_TRY(matrix(p + "attn_k", Dkv, D, &L.w.k));
        EDGE_TRY(matrix(p + "attn_v", Dkv, D, &L.w.v));
        EDGE_TRY(matrix(p + "attn_o", D, Dq, &L.w.o));
        if (L.moe) {
            EDGE_TRY(f32_matrix(p + "ffn_router", E, D, &L.w.router));
            if (moe_.predictor_linear) {
                EDGE_TRY(f32_matrix(p + "ffn_router_pred", E, D, &L.w.pred));
                EDGE_TRY(vec(p + "ffn_router_pred_b", E, &L.w.pred_b));
            }
        } else {
            EDGE_TRY(matrix(p + "ffn_gate", c.d_ff, D, &L.w.gate));
            EDGE_TRY(matrix(p + "ffn_up", c.d_ff, D, &L.w.up));
            EDGE_TRY(matrix(p + "ffn_down", D, c.d_ff, &L.w.down));
        }
        if (c.qkv_bias) {
            EDGE_TRY(vec(p + "attn_q_bias", Dq, &L.w.q_bias));
            EDGE_TRY(vec(p + "attn_k_bias", Dkv, &L.w.k_bias));
            EDGE_TRY(vec(p + "attn_v_bias", Dkv, &L.w.v_bias));
        }
        if (c.qk_norm) {
            EDGE_TRY(vec(p + "attn_q_norm", c.qk_norm_full ? Dq : c.head_dim, &L.w.q_norm));
            EDGE_TRY(vec(p + "attn_k_norm", c.qk_norm_full ? Dkv : c.head_dim, &L.w.k_norm));
        }
    }
    return Status::ok();
}

// Budget (docs/MOE.md §4): resident (mapped non-expert tensors) + KV + scratch + store I/O buffers +
// expert cache (the rest, whole slots) <= mem_budget. Without a budget the expert cache holds every expert.
Status Model::plan_memory(const ModelOptions& opt) {
    const EdgeFile& f = *file_;
    const LlmConfig& c = cfg_;
    const int64_t T = batch_, D = c.d_model, Dq = c.n_heads * c.head_dim, Dkv = c.n_kv_heads * c.head_dim;
    const int64_t E = moe_.n_experts, k = moe_.n_used, F = moe_.d_expert;
    const int64_t maxw = std::max({D, c.d_ff, Dq, F});
    ktile_head_ = (ctx_ + kKTile - 1) / kKTile * kKTile * c.head_dim;  // K floats per kv head
    plan_ = MemoryPlan();
    if (opt.budget_covers_process) plan_.process = process_resident_bytes() + kProcessMargin;
    for (const TensorInfo& t : f.tensors())
        if (!is_expert_blob(t)) plan_.resident += (int64_t)t.nbytes;
    plan_.kv_cache = c.n_layers * (ktile_head_ * c.n_kv_heads + ctx_ * Dkv) * (int64_t)sizeof(float);
    int64_t scratch_floats = T * (2 * D + Dq + 2 * Dkv + Dq + 2 * c.d_ff + c.head_dim) + (int64_t)threads() * ctx_ + c.vocab;
    plan_.scratch = scratch_floats * (int64_t)sizeof(float) + T * ((maxw + 31) / 32) * (int64_t)sizeof(block_q8x);
    if (E > 0)
        plan_.scratch += (int64_t)sizeof(float) * (2 * T * E + T * k) + (int64_t)sizeof(int32_t) * (2 * T * k + E) + E +
                         MoeBuffers::bytes(T, D, E, k, F);
    const int64_t fixed = plan_.total();
    if (E == 0 && opt.mem_budget > 0 && fixed > opt.mem_budget) {
        // A dense model whose weights do not fit: stream its layers when the rest does.
        Status st = open_layer_stream(opt);
        if (st.is_ok() || st.code != Code::OUT_OF_MEMORY) return st;
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s needs %.1f MiB (weights %.1f + KV cache %.1f for %lld tokens + scratch %.1f) but --mem is %.1f MiB, "
                                   "and streaming its layers does not fit either (%s); use a smaller quantization recipe "
                                   "(e.g. `edgeconv export ... --quant int4`) or a shorter --ctx",
                                   f.path().c_str(), mib(fixed), mib(plan_.resident), mib(plan_.kv_cache), (long long)ctx_,
                                   mib(plan_.scratch), mib(opt.mem_budget), st.msg.c_str()));
    }
    if (opt.mem_budget > 0 && fixed > opt.mem_budget) {
        std::string remedy = E > 0 ? "use a larger --mem, a shorter --ctx or a smaller quantization recipe"
                                   : "use a smaller quantization recipe (e.g. `edgeconv export ... --quant int4`) or a shorter --ctx";
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s needs %.1f MiB before any expert cache (resident weights %.1f + KV cache %.1f for %lld tokens + "
                                   "scratch %.1f) but --mem is %.1f MiB (%.1f MiB missing); %s",
                                   f.path().c_str(), mib(fixed), mib(plan_.resident), mib(plan_.kv_cache), (long long)ctx_,
                                   mib(plan_.scratch), mib(opt.mem_budget), mib(fixed - opt.mem_budget), remedy.c_str()));
    }
    if (E > 0) EDGE_TRY(open_store(opt, fixed));
    return Status::ok();
}

// Dense layers through a window of W layer buffers (layer_stream.h): resident keeps only the tensors
// outside the layers; W is as large as the budget allows, up to 4 (reads of 3 layers ahead).
Status Model::open_layer_stream(const ModelOptions& opt) {
    const EdgeFile& f = *file_;
    int64_t outside = 0;
    for (const TensorInfo& t : f.tensors())
        if (t.name.compare(0, 4, "blk.") != 0) outside += (int64_t)t.nbytes;
    const int64_t fixed = outside + plan_.kv_cache + plan_.scratch;
    if (fixed >= opt.mem_budget)
        return status_error(Code::OUT_OF_MEMORY, strfmt("embeddings, head and norms %.1f MiB + KV cache + scratch = %.1f MiB "
                                                        "already exceed it", mib(outside), mib(fixed)));
    LayerStream::Options so;
    so.window = 1;
    so.io_threads = opt.io_threads;
    EDGE_TRY(LayerStream::open(f, so, &stream_));  // to learn the buffer size
    const int64_t buf = stream_->buffer_bytes();
    const int64_t w = std::min<int64_t>({4, cfg_.n_layers, (opt.mem_budget - fixed) / buf});
    if (w < 1) {
        stream_.reset();
        return status_error(Code::OUT_OF_MEMORY, strfmt("one layer buffer of %.1f MiB does not fit the %.1f MiB left",
                                                        mib(buf), mib(opt.mem_budget - fixed)));
    }
    if (w > 1) {
        stream_.reset();
        so.window = (int)w;
        EDGE_TRY(LayerStream::open(f, so, &stream_));
    }
    plan_.resident = outside;
    plan_.io_buffers = stream_->total_bytes();
    plan_.layer_window = w;
    map_base_ = f.tensors().front().data - f.tensors().front().offset;
    if (plan_.total() > opt.mem_budget)
        return status_error(Code::OUT_OF_MEMORY, strfmt("the layer window took %.1f MiB more than planned", mib(plan_.total() - opt.mem_budget)));
    return Status::ok();
}

Status Model::open_store(const ModelOptions& opt, int64_t fixed) {
    const EdgeFile& f = *file_;
    const int64_t k = moe_.n_used;
    ExpertStore::Options so;
    so.io_threads = opt.io_threads;
    so.policy = opt.cache_policy;
    so.lowbit = opt.moe_lowbit;
    so.lowbit_threshold = opt.moe_lowbit_threshold;
    ExpertStore::Sizes sz;
    EDGE_TRY(ExpertStore::measure(f, so, &sz));
    const int64_t slot = sz.slot_bytes, io = sz.io_buffer_bytes;
    // every expert once (with low-bit serving on, once per variant)
    const int64_t all = sz.n_units / sz.n_variants * (opt.moe_lowbit ? sz.n_variants : 1) * slot;
    int64_t cache = all;
    if (opt.mem_budget > 0) {
        cache = std::min(all, opt.mem_budget - fixed - io) / slot * slot;
        if (cache < k * slot) {
            return status_error(Code::OUT_OF_MEMORY,
                                strfmt("%s needs at least %.1f MiB (resident weights %.1f + KV cache %.1f for %lld tokens + scratch %.1f + "
                                       "expert I/O buffers %.1f + %lld expert slots of %.2f) but --mem is %.1f MiB (%.1f MiB missing); "
                                       "use a larger --mem or a shorter --ctx",
                                       f.path().c_str(), mib(fixed + io + k * slot), mib(plan_.resident), mib(plan_.kv_cache),
                                       (long long)ctx_, mib(plan_.scratch), mib(io), (long long)k, mib(slot), mib(opt.mem_budget),
                                       mib(fixed + io + k * slot - opt.mem_budget)));
        }
    }
    so.cache_bytes = cache;
    EDGE_TRY(ExpertStore::open(f, so, &store_));
    plan_.io_buffers = store_->io_buffer_bytes();
    plan_.expert_slots = store_->n_slots();
    plan_.slot_bytes = store_->slot_bytes();
    plan_.expert_cache = plan_.expert_slots * plan_.slot_bytes;
    if (opt.mem_budget > 0 && plan_.total() > opt.mem_budget)
        return status_error(Code::OUT_OF_MEMORY, strfmt("%s: the expert store took %.1f MiB more than --mem allows",
                                                        f.path().c_str(), mib(plan_.total() - opt.mem_budget)));
    return Status::ok();
}

}  // namespace edge
