// model_load.cpp — loading: the llm.* / moe.* configuration and layout keys, every tensor validated
// against it, one Planner that sizes every buffer (checked against the budget before anything large is
// allocated) and then allocates them, and the expert store / layer stream in the planned memory.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cmath>

#include "backend/backend_cuda_loader.h"
#include "io_reader.h"
#include "model.h"

#include <cstring>

namespace edge {

namespace {

// What a process needs beyond its resident set at planning time and the planned terms: thread stacks,
// allocator slack, the sampler's and bindings' per-call buffers.
constexpr int64_t kProcessMargin = 24 << 20;
// Device memory left free by default (no --gpu-mem): the CUDA context, the kernels' own needs, fragmentation.
constexpr int64_t kDeviceMargin = 256 << 20;

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

// A layout key (docs/FORMAT.md): absent means `dflt` (files written before the key); any value but
// the supported ones is UNSUPPORTED naming the key.
Status layout_key(const EdgeFile& f, const char* key, const char* dflt, std::initializer_list<const char*> ok, bool* present) {
    const MetaValue* v = f.get(key);
    if (!v) return Status::ok();
    *present = true;
    std::string list;
    for (const char* o : ok) {
        if (v->type == META_STR && v->s == o) return Status::ok();
        list += list.empty() ? o : std::string(", ") + o;
    }
    return status_error(Code::UNSUPPORTED, f.path() + ": " + key + " '" + (v->type == META_STR ? v->s : std::string("?")) +
                                               "' is not supported by this runtime (supported: " + list + "; default " + dflt + ")");
}

// Every llm.* key this runtime reads. A file with another one declares a layout feature this runtime
// does not implement (a newer converter, a new family's key): refused, never ignored.
Status known_llm_keys(const EdgeFile& f, const std::string& arch) {
    static const char* const kKnown[] = {"llm.n_layers", "llm.d_model", "llm.n_heads", "llm.n_kv_heads", "llm.head_dim",
                                         "llm.d_ff", "llm.vocab_size", "llm.max_ctx", "llm.rope_theta", "llm.rms_eps",
                                         "llm.qkv_bias", "llm.qk_norm", "llm.qk_norm_scope", "llm.tied_head", "llm.rope_layers",
                                         "llm.swa_layers", "llm.swa_window", "llm.norm", "llm.ffn_act", "llm.rope_type",
                                         "llm.post_norms", "llm.embed_scale", "llm.rope_theta_swa"};
    for (const auto& kv : f.meta()) {
        if (kv.first.compare(0, 4, "llm.") != 0) continue;
        if (std::find_if(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return kv.first == k; }) == std::end(kKnown))
            return status_error(Code::UNSUPPORTED, f.path() + ": architecture '" + arch + "' declares " + kv.first +
                                                       ", a layout key this runtime does not implement (update edgerun)");
    }
    return Status::ok();
}

// Files written before the layout keys name their layout by general.architecture alone: these are the
// families that existed then (frozen; a new family declares layout keys instead).
Status legacy_layout(const EdgeFile& f, const std::string& arch, bool has_moe) {
    static const char* const kDense[] = {"llama", "qwen2", "qwen3"};
    static const char* const kMoe[] = {"smallthinker", "qwen3moe", "mixtral", "olmoe"};
    const bool moe = std::find(std::begin(kMoe), std::end(kMoe), arch) != std::end(kMoe);
    if (!moe && std::find(std::begin(kDense), std::end(kDense), arch) == std::end(kDense))
        return status_error(Code::UNSUPPORTED, f.path() + ": architecture '" + arch +
                                                   "' is not supported by this runtime: the file has no layout keys (llm.norm, llm.ffn_act, "
                                                   "llm.rope_type) and is not one of the families that predate them; re-export it with the current edgeconv");
    if (moe && !has_moe)
        return status_error(Code::UNSUPPORTED, f.path() + ": architecture '" + arch + "' is not supported without the moe.* keys of "
                                                   "docs/MOE.md (moe.n_experts is missing); re-export the model with the current edgeconv");
    if (!moe && has_moe)
        return status_error(Code::UNSUPPORTED, f.path() + ": architecture '" + arch + "' with moe.* keys is not supported");
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
    if (const MetaValue* v = f.get("tokenizer.add_space_prefix"); v && v->type == META_I64) spec.add_space_prefix = v->i != 0;
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

Model::~Model() {
    store_.reset();   // its I/O threads write into planned memory
    if (be_ && expert_mirror_) be_->mirror_expert_slots(nullptr, nullptr, 0, 0);  // unpinned before the planner frees
    stream_.reset();
    if (be_ && weights_.data) be_->release(&weights_);  // a device copy of the weights, or a view (unregistered)
}

Status Model::init(const std::string& path, const ModelOptions& opt) {
    EDGE_TRY(edge_file_open(path, &file_));
    const EdgeFile& f = *file_;

    // The layout is what the file's llm.* / moe.* keys say (docs/FORMAT.md); the name is informative.
    EDGE_TRY(f.get_str("general.architecture", &cfg_.arch));
    const bool has_moe = f.get("moe.n_experts") != nullptr;
    bool layout_keys = false;
    EDGE_TRY(layout_key(f, "llm.norm", "rms", {"rms"}, &layout_keys));
    EDGE_TRY(layout_key(f, "llm.ffn_act", "silu", {"silu", "gelu_tanh"}, &layout_keys));
    if (const MetaValue* v = f.get("llm.ffn_act"); v && v->s == "gelu_tanh") cfg_.ffn_act = Act::GELU_TANH;
    EDGE_TRY(layout_key(f, "llm.rope_type", "rotate_half", {"rotate_half"}, &layout_keys));
    if (!layout_keys) EDGE_TRY(legacy_layout(f, cfg_.arch, has_moe));
    EDGE_TRY(known_llm_keys(f, cfg_.arch));
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
    if (f.get("llm.post_norms")) {
        EDGE_TRY(f.get_i64("llm.post_norms", &b));
        cfg_.post_norms = b != 0;
    }
    if (f.get("llm.embed_scale")) {
        double s;
        EDGE_TRY(f.get_f64("llm.embed_scale", &s));
        if (!(s > 0 && s < 1e6)) return bad_model(path, strfmt("llm.embed_scale = %g must be positive", s));
        cfg_.embed_scale = (float)s;
    }
    if (f.get("llm.rope_theta_swa")) {
        EDGE_TRY(f.get_f64("llm.rope_theta_swa", &cfg_.rope_theta_swa));
        if (!(cfg_.rope_theta_swa > 0)) return bad_model(path, "llm.rope_theta_swa must be positive");
    }
    if (has_moe) EDGE_TRY(moe_config_read(f, cfg_.n_layers, &moe_));
    if (has_moe && (cfg_.post_norms || cfg_.ffn_act != Act::SILU))
        return status_error(Code::UNSUPPORTED, path + ": llm.post_norms / llm.ffn_act gelu_tanh with MoE layers is not supported");
    const LlmConfig& c = cfg_;
    const bool any_dense = !has_moe || std::find(moe_.is_moe.begin(), moe_.is_moe.end(), 0) != moe_.is_moe.end();
    auto in = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
    if (!in(c.n_layers, 1, 1024) || !in(c.d_model, 32, 1 << 16) || !in(c.n_heads, 1, 1024) ||
        !in(c.n_kv_heads, 1, c.n_heads) || c.n_heads % c.n_kv_heads || !in(c.head_dim, 2, 1024) || c.head_dim % 2 ||
        !in(c.d_ff, any_dense ? 32 : 0, 1 << 18) || !in(c.vocab, 1, 1 << 22) || !in(c.max_ctx, 1, 1 << 24) ||
        !(c.rope_theta > 0) || !(c.rms_eps > 0))
        return bad_model(path, strfmt("implausible hyper-parameters (layers %lld, d_model %lld, heads %lld/%lld, head_dim %lld, d_ff %lld, vocab %lld)",
                                      (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.n_kv_heads,
                                      (long long)c.head_dim, (long long)c.d_ff, (long long)c.vocab));

    const KernelTable* kt = opt.kernels.empty() ? kernels_default() : kernels_for(opt.kernels.c_str());
    if (!kt) return status_error(Code::INVALID_ARGUMENT, "kernel level '" + opt.kernels + "' is not supported on this CPU");
    const int threads = opt.threads > 0 ? opt.threads : (int)default_threads();
    cpu_.reset(new CpuBackend(kt, threads));
    be_ = cpu_.get();
    if (opt.device == "cuda") {
        EDGE_TRY(backend_open_cuda(kt, 0, &gpu_));
        be_ = gpu_.get();
    } else if (opt.device != "cpu") {
        return status_error(Code::INVALID_ARGUMENT, "device '" + opt.device + "' is not one of cpu, cuda");
    }
    EDGE_TRY(load_layers());
    EDGE_TRY(load_adapters(opt));
    EDGE_TRY(tokenizer_from_file(f, &tok_));

    ctx_ = opt.ctx > 0 ? opt.ctx : std::min<int64_t>(c.max_ctx, 4096);
    if (ctx_ > (1 << 20)) return status_error(Code::INVALID_ARGUMENT, "context length too large");
    kv_ = !opt.kv_explicit && be_->device() != Device::CPU ? KvType::F32 : opt.kv;
    swa_ring_ = opt.swa_ring;
    if (kv_ != KvType::F32 && be_->device() != Device::CPU)
        return status_error(Code::UNSUPPORTED, std::string("--kv ") + kv_type_name(kv_) + " is not implemented on the " + be_->name() +
                                                   " backend; use --kv f32 or --device cpu");
    if (kv_type_kivi(kv_) && cfg_.head_dim % kKiviGroup)
        return status_error(Code::UNSUPPORTED, strfmt("--kv %s needs a head dim that is a multiple of %lld (this model's is %lld); use --kv q8 or f16",
                                                      kv_type_name(kv_), (long long)kKiviGroup, (long long)cfg_.head_dim));
    batch_ = std::max<int64_t>(1, std::min<int64_t>(opt.batch, ctx_));
    if (opt.n_seq < 1 || opt.n_seq > 1024)
        return status_error(Code::INVALID_ARGUMENT, strfmt("n_seq must be in [1, 1024], got %lld", (long long)opt.n_seq));
    past_.assign((size_t)opt.n_seq, 0);
    EDGE_TRY(plan_memory(opt));
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
        if (!be_->supports(t->dtype) && std::strcmp(be_->name(), "cpu") && dtype_traits(t->dtype).int_dot && cols % 32 == 0)
            return status_error(Code::UNSUPPORTED, path + ": tensor '" + name + "' has dtype " + dtype_traits(t->dtype).name +
                                                       ", which the " + be_->name() + " backend cannot multiply yet: run it with --device cpu");
        if (!be_->supports(t->dtype) || (dtype_traits(t->dtype).int_dot && cols % 32))
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
        if (c.post_norms) {
            EDGE_TRY(vec(p + "attn_post_norm", D, &L.w.attn_post_norm));
            EDGE_TRY(vec(p + "ffn_post_norm", D, &L.w.ffn_post_norm));
        }
    }
    return Status::ok();
}

// Every buffer the forward pass uses, on the backend's device (the routing tables on the host). The
// byte counts are the memory plan's kv_cache and scratch terms (converter/edgeconv/device.py mirrors
// the dense ones; tests/test_devices.py checks it).
Status Model::plan_buffers() {
    const LlmConfig& c = cfg_;
    const int64_t T = batch_, D = c.d_model, Dh = c.head_dim, Dq = c.n_heads * Dh, Dkv = c.n_kv_heads * Dh;
    const int64_t E = moe_.n_experts, k = moe_.n_used, F = moe_.d_expert;
    Planner& p = planner_;
    Backend* be = be_;
    const int64_t ctx_tiles = (ctx_ + kKTile - 1) / kKTile * kKTile;
    const int64_t eb = kv_type_bytes(kv_);
    // sliding-window layers on the CPU: a ring of R slots kept twice (backend.h) when 2R is smaller
    const int64_t ring = (c.swa_window + T - 1 + kKTile - 1) / kKTile * kKTile;
    const bool use_ring = swa_ring_ && c.swa_window > 0 && be->device() == Device::CPU && 2 * ring < ctx_tiles;
    ring_ = use_ring ? ring : 0;
    for (size_t i = 0; i < layers_.size(); ++i) {  // sequence 0: kv.<layer>.k/v; sequence s > 0: kv.<layer>.k/v.s<s>
        Layer& L = layers_[i];
        const bool r = use_ring && L.swa;
        const int64_t slots = r ? 2 * ring : ctx_tiles;  // positions (slots) of K tiles, V rows and scales
        L.kv.assign(past_.size(), KvLayer());
        if (kv_type_kivi(kv_) && !r) {  // KIVI (backend.h): blocks of the positions that can be quantized + the f16 ring
            plan_kivi(L, i);
            continue;
        }
        for (size_t s = 0; s < L.kv.size(); ++s) {
            const std::string tag = s ? strfmt(".s%zu", s) : std::string();
            KvLayer& kv = L.kv[s];
            kv.type = kv_type_kivi(kv_) ? KvType::F16 : kv_;  // a KIVI model's sliding-window rings stay f16
            kv.ring = r ? ring : 0;
            kv.k_head_stride = slots * Dh;
            p.add_bytes(strfmt("kv.%zu.k%s", i, tag.c_str()), MemKind::KV_CACHE, be, slots * Dh * c.n_kv_heads * eb,
                        reinterpret_cast<void**>(&kv.k), false, 64);
            p.add_bytes(strfmt("kv.%zu.v%s", i, tag.c_str()), MemKind::KV_CACHE, be, (r ? slots : ctx_) * Dkv * eb,
                        reinterpret_cast<void**>(&kv.v), false, 64);
            if (kv_ == KvType::Q8) {
                kv.scale_head_stride = slots;
                p.add(strfmt("kv.%zu.k_scale%s", i, tag.c_str()).c_str(), MemKind::KV_CACHE, be, slots * c.n_kv_heads, &kv.k_scale, false);
                p.add(strfmt("kv.%zu.v_scale%s", i, tag.c_str()).c_str(), MemKind::KV_CACHE, be, slots * c.n_kv_heads, &kv.v_scale, false);
            }
        }
    }
    p.add("x", MemKind::SCRATCH, be, T * D, &x_);
    p.add("xn", MemKind::SCRATCH, be, T * D, &xn_);
    p.add("q", MemKind::SCRATCH, be, T * Dq, &q_);
    p.add("att", MemKind::SCRATCH, be, T * Dq, &att_);
    p.add("k", MemKind::SCRATCH, be, T * Dkv, &k_);
    p.add("v", MemKind::SCRATCH, be, T * Dkv, &v_);
    p.add("gate", MemKind::SCRATCH, be, T * c.d_ff, &gate_);
    p.add("up", MemKind::SCRATCH, be, T * c.d_ff, &up_);
    p.add("rope.cos", MemKind::SCRATCH, be, T * (Dh / 2), &rope_cos_);
    p.add("rope.sin", MemKind::SCRATCH, be, T * (Dh / 2), &rope_sin_);
    p.add("rope.inv_freq", MemKind::SCRATCH, be, Dh / 2, &inv_freq_);
    if (c.rope_theta_swa > 0 && c.rope_theta_swa != c.rope_theta) {  // the sliding layers' own RoPE base
        p.add("rope.cos_swa", MemKind::SCRATCH, be, T * (Dh / 2), &rope_cos_swa_);
        p.add("rope.sin_swa", MemKind::SCRATCH, be, T * (Dh / 2), &rope_sin_swa_);
        p.add("rope.inv_freq_swa", MemKind::SCRATCH, be, Dh / 2, &inv_freq_swa_);
    }
    p.add("logits", MemKind::SCRATCH, be, c.vocab, &logits_out_);
    if (E > 0) {
        p.add("moe.router_logits", MemKind::SCRATCH, be, T * E, &logits_);
        p.add("moe.pred_logits", MemKind::SCRATCH, be, T * E, &pred_logits_);
        p.add("moe.route_w", MemKind::SCRATCH, nullptr, T * k, &route_w_);
        p.add("moe.route_idx", MemKind::SCRATCH, nullptr, T * k, &route_idx_);
        p.add("moe.pred_idx", MemKind::SCRATCH, nullptr, T * k, &pred_idx_);
        p.add("moe.union", MemKind::SCRATCH, nullptr, E, &union_);
        p.add("moe.union_w", MemKind::SCRATCH, nullptr, E, &union_w_);
        p.add("moe.seen", MemKind::SCRATCH, nullptr, E, &seen_);
        moe_buf_.plan(&p, be, T, D, E, k, F);
    }
    StepShape shape;
    shape.tokens = T;
    shape.ctx = ctx_;
    shape.max_width = std::max({D, c.d_ff, Dq, F});
    shape.head_dim = Dh;
    shape.kv = kv_;
    shape.max_rank = adapters_.max_rank;
    plan_adapters();
    if (E > 0 && !be->host_addressable()) {  // experts are read into host slots, then staged for the device
        ExpertStore::Sizes sz;
        EDGE_TRY(ExpertStore::measure(*file_, ExpertStore::Options(), &sz));
        shape.stage_bytes = sz.slot_bytes + 3 * 256;  // three matrices, each 256-byte aligned
    }
    shape.n_experts = E;
    shape.n_used = k;
    if (E > 0 && !be->host_addressable()) {  // MoE in device steps (moe_make_resident)
        shape.moe_layers = moe_.n_moe_layers();
        shape.d_expert = F;
        shape.d_model = D;
    }
    shape.vocab = c.vocab;
    be->plan_scratch(shape, &p);
    return Status::ok();
}

// One layer's KIVI caches, one per sequence (backend.h KvLayer): K blocks [Hkv][groups][Dh], V blocks
// [groups·32][Dkv/32] (groups = the most that can leave the residual window, kivi_quantized(ctx) / 32, less
// the sink group), kivi2's K outlier channels [Hkv][groups][kKiviOutliers2] (kernels.h KiviOutlier), the f16 ring
// of kivi_ring slots + the 32 sink slots where groups exist (K tiles per kv head, V rows). The plan counts exactly
// these bytes.
void Model::plan_kivi(Layer& L, size_t i) {
    const LlmConfig& c = cfg_;
    const int64_t Dh = c.head_dim, Hkv = c.n_kv_heads, Dkv = Hkv * Dh;
    const int64_t ctx_tiles = (ctx_ + kKTile - 1) / kKTile * kKTile;
    const int64_t ring = std::min<int64_t>((kKiviResidual + 31 + batch_ + kKTile - 1) / kKTile * kKTile, ctx_tiles);
    const int64_t all = kivi_quantized(ctx_) / kKiviGroup, sink = all > 0 ? kKiviGroup : 0;
    const int64_t groups = all - sink / kKiviGroup, slots = ring + sink;
    const int64_t bsize = kv_ == KvType::KIVI4 ? (int64_t)sizeof(block_kivi4) : (int64_t)sizeof(block_kivi2);
    const int64_t n_out = kv_ == KvType::KIVI2 ? kKiviOutliers2 : 0;
    for (size_t s = 0; s < L.kv.size(); ++s) {
        const std::string tag = s ? strfmt(".s%zu", s) : std::string();
        KvLayer& kv = L.kv[s];
        kv.type = kv_;
        kv.kivi_ring = ring;
        kv.kivi_sink = sink;
        kv.k_head_stride = slots * Dh;
        kv.kq_head_stride = groups * Dh;
        kv.kivi_out = n_out;
        kv.ko_head_stride = groups * n_out;
        planner_.add_bytes(strfmt("kv.%zu.k%s", i, tag.c_str()), MemKind::KV_CACHE, be_, slots * Dkv * 2, reinterpret_cast<void**>(&kv.k), false, 64);
        planner_.add_bytes(strfmt("kv.%zu.v%s", i, tag.c_str()), MemKind::KV_CACHE, be_, slots * Dkv * 2, reinterpret_cast<void**>(&kv.v), false, 64);
        planner_.add_bytes(strfmt("kv.%zu.kq%s", i, tag.c_str()), MemKind::KV_CACHE, be_, Hkv * groups * Dh * bsize, &kv.kq, false, 64);
        planner_.add_bytes(strfmt("kv.%zu.vq%s", i, tag.c_str()), MemKind::KV_CACHE, be_, groups * kKiviGroup * (Dkv / kKiviGroup) * bsize,
                           &kv.vq, false, 64);
        if (n_out)
            planner_.add_bytes(strfmt("kv.%zu.ko%s", i, tag.c_str()), MemKind::KV_CACHE, be_,
                               Hkv * groups * n_out * (int64_t)sizeof(KiviOutlier), &kv.ko, false, 64);
    }
}

// With a budget and no ctx (dense models): the longest context up to the trained one whose plan fits
// (the plan grows with ctx: KV cache and attention scores), in whole K tiles. Where not even one tile
// fits, ctx stays the default and plan_memory's own checks (layer streaming, the refusal) decide.
Status Model::choose_ctx(const ModelOptions& opt) {
    if (opt.mem_budget <= 0 || opt.ctx > 0 || moe_.n_experts > 0) return Status::ok();
    Planner& p = planner_;
    bool ok = false;
    auto fits = [&](int64_t n) -> Status {  // sets ok: the plan at ctx n fits the budget
        ctx_ = n;
        batch_ = std::max<int64_t>(1, std::min<int64_t>(opt.batch, ctx_));
        Status st = plan_buffers();
        ok = st.is_ok() && p.host_total() <= opt.mem_budget;
        p.forget(MemKind::KV_CACHE);
        p.forget(MemKind::SCRATCH);
        p.forget(MemKind::ADAPTERS);
        return st;
    };
    const int64_t dflt = ctx_, top = std::min<int64_t>(cfg_.max_ctx, 1 << 20);
    EDGE_TRY(fits(top));
    int64_t chosen = top;
    if (!ok) {
        int64_t lo = 0, hi = top / kKTile;  // tiles: the largest t with fits(t · kKTile), 0 if none
        while (lo < hi) {
            const int64_t mid = (lo + hi + 1) / 2;
            EDGE_TRY(fits(mid * kKTile));
            if (ok) lo = mid; else hi = mid - 1;
        }
        chosen = lo > 0 ? lo * kKTile : 0;
    }
    ctx_ = chosen > 0 ? chosen : dflt;
    batch_ = std::max<int64_t>(1, std::min<int64_t>(opt.batch, ctx_));
    ctx_from_budget_ = chosen > 0;
    return Status::ok();
}

// Budget (docs/MOE.md §4): process + resident (mapped non-expert tensors) + KV + scratch + I/O buffers +
// expert cache (the rest, whole slots) <= mem_budget. Without a budget the expert cache holds every
// expert. Everything is planned first, then allocated at once; the store / layer stream open in it.
Status Model::plan_memory(const ModelOptions& opt) {
    const EdgeFile& f = *file_;
    Planner& p = planner_;
    if (opt.budget_covers_process) p.count("process", MemKind::PROCESS, Device::CPU, process_resident_bytes() + kProcessMargin);
    int64_t resident = 0;
    for (const TensorInfo& t : f.tensors())
        if (!is_expert_blob(t)) resident += (int64_t)t.nbytes;
    // on a device that cannot read the mapping, the copy of the byte range holding the non-expert tensors; read in
    // place (weights_in_place: the CPU, unified memory, mapped host memory), the mapping alone, counted once as host memory
    const bool in_place = be_->weights_in_place();
    p.count("weights", MemKind::WEIGHTS, in_place ? Device::CPU : be_->device(), in_place ? resident : (int64_t)weights_end());
    EDGE_TRY(choose_ctx(opt));
    EDGE_TRY(plan_buffers());
    plan_ = p.plan();
    const int64_t fixed = p.host_total();
    const bool moe = moe_.n_experts > 0;
    if (!moe && opt.mem_budget > 0 && fixed > opt.mem_budget && !be_->host_addressable())
        return status_error(Code::OUT_OF_MEMORY, strfmt("%s needs %.1f MiB of host memory but --mem is %.1f MiB; streaming the layers of a "
                                                        "dense model is done on the CPU backend only (--device cpu)",
                                                        f.path().c_str(), mib(fixed), mib(opt.mem_budget)));
    if (!moe && opt.mem_budget > 0 && fixed > opt.mem_budget) {
        // A dense model whose weights do not fit: stream its layers when the rest does.
        Status st = plan_layer_stream(opt);
        if (!st.is_ok() && st.code != Code::OUT_OF_MEMORY) return st;
        if (!st.is_ok())
            return status_error(Code::OUT_OF_MEMORY,
                                strfmt("%s needs %.1f MiB (weights %.1f + KV cache %.1f for %lld tokens + scratch %.1f) but --mem is %.1f MiB, "
                                       "and streaming its layers does not fit either (%s); use a smaller quantization recipe "
                                       "(e.g. `edgeconv export ... --quant int4`) or a shorter --ctx",
                                       f.path().c_str(), mib(fixed), mib(plan_.resident), mib(plan_.kv_cache), (long long)ctx_,
                                       mib(plan_.scratch), mib(opt.mem_budget), st.msg.c_str()));
    } else if (opt.mem_budget > 0 && fixed > opt.mem_budget) {
        std::string remedy = moe ? "use a larger --mem, a shorter --ctx or a smaller quantization recipe"
                                 : "use a smaller quantization recipe (e.g. `edgeconv export ... --quant int4`) or a shorter --ctx";
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s needs %.1f MiB before any expert cache (resident weights %.1f + KV cache %.1f for %lld tokens + "
                                   "scratch %.1f) but --mem is %.1f MiB (%.1f MiB missing); %s",
                                   f.path().c_str(), mib(fixed), mib(plan_.resident), mib(plan_.kv_cache), (long long)ctx_,
                                   mib(plan_.scratch), mib(opt.mem_budget), mib(fixed - opt.mem_budget), remedy.c_str()));
    }
    ExpertStore::Options so;
    if (moe) EDGE_TRY(plan_store(opt, fixed, &so));

    EDGE_TRY(check_device_budget(opt));
    EDGE_TRY(p.allocate());  // the plan fit: every buffer at once
    bind_adapters();
    EDGE_TRY(be_->take_error());
    auto upload_inv_freq = [&](double theta, float* dst) {
        std::vector<float> inv_freq((size_t)(cfg_.head_dim / 2));
        for (size_t i = 0; i < inv_freq.size(); ++i)
            inv_freq[i] = (float)(1.0 / std::pow(theta, (double)(2 * i) / (double)cfg_.head_dim));
        be_->upload(dst, inv_freq.data(), (int64_t)(inv_freq.size() * sizeof(float)));
    };
    upload_inv_freq(cfg_.rope_theta, inv_freq_);
    if (inv_freq_swa_) {
        upload_inv_freq(cfg_.rope_theta_swa, inv_freq_swa_);
    } else {
        rope_cos_swa_ = rope_cos_, rope_sin_swa_ = rope_sin_;
    }
    // the non-expert tensors as the backend reads them: a view of the mapping, or a device copy
    EDGE_TRY(be_->map_weights(f.data(), be_->host_addressable() ? (int64_t)f.size() : (int64_t)weights_end(), &weights_));
    if (weights_.data != f.data() || (be_->weights_in_place() && !be_->host_addressable())) {  // a device's view or copy
        rebase_weights(f.data(), static_cast<const uint8_t*>(weights_.data));
        tok_embd_dev_ = tok_embd_;
        tok_embd_dev_.data = static_cast<const uint8_t*>(weights_.data) + (tok_embd_.data - f.data());
        // one-token steps recorded on the device: dense models whose every weight is in the device copy
        device_steps_ = be_->step_supported() && stream_opt_.window == 0 && be_->embed_step_supported(tok_embd_.dtype);
    }
    if (moe) EDGE_TRY(ExpertStore::open(f, so, &store_));
    if (store_ && expert_mirror_)  // the store's slots as planned (plan_ is refreshed below)
        be_->mirror_expert_slots(so.slots, expert_mirror_, store_->n_slots() * store_->slot_bytes(), store_->slot_bytes());
    if (moe && device_steps_) EDGE_TRY(moe_make_resident(so.lowbit));
    if (moe) device_steps_ = device_steps_ && moe_device_;  // else MoE steps route on the host, eagerly
    if (stream_opt_.window > 0) EDGE_TRY(LayerStream::open(f, stream_opt_, &stream_));

    const int64_t slots = plan_.expert_slots, slot = plan_.slot_bytes, window = plan_.layer_window;
    plan_ = p.plan();
    plan_.expert_slots = slots, plan_.slot_bytes = slot, plan_.layer_window = window;
    EDGE_ASSERT(!store_ || store_->n_slots() * store_->slot_bytes() == plan_.expert_cache);  // it used the planned slots
    if (opt.mem_budget > 0 && plan_.total() > opt.mem_budget)
        return status_error(Code::OUT_OF_MEMORY, strfmt("%s: the plan took %.1f MiB more than --mem allows",
                                                        f.path().c_str(), mib(plan_.total() - opt.mem_budget)));
    return Status::ok();
}

// The end of the last non-expert tensor: experts are placed after all of them (docs/MOE.md), so a
// device copy of [0, weights_end()) holds every tensor the backend reads in place.
uint64_t Model::weights_end() const {
    uint64_t end = 0;
    for (const TensorInfo& t : file_->tensors())
        if (!is_expert_blob(t)) end = std::max<uint64_t>(end, t.offset + t.nbytes);
    return end;
}

// On an accelerator the plan's device term must fit --gpu-mem (default: what is free minus a margin).
Status Model::check_device_budget(const ModelOptions& opt) {
    if (be_->device() == Device::CPU) return Status::ok();
    const int64_t need = planner_.device_total();
    const int64_t free_now = be_->memory_free();
    const int64_t budget = opt.gpu_mem > 0 ? opt.gpu_mem : std::max<int64_t>(0, free_now - kDeviceMargin);
    if (need > budget)
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s needs %.1f MiB of %s memory (weights, KV cache for %lld tokens, scratch) but %s is %.1f MiB "
                                   "(%.1f MiB free); use a smaller quantization recipe, a shorter --ctx, a larger --gpu-mem or --device cpu",
                                   file_->path().c_str(), mib(need), be_->name(), (long long)ctx_,
                                   opt.gpu_mem > 0 ? "--gpu-mem" : "the free memory less a 256 MiB margin", mib(budget), mib(free_now)));
    return Status::ok();
}

// Every weight pointer from the mapping (origin) to the backend's copy of it (base); the embedding
// table stays in the mapping (Backend::embed reads host memory).
void Model::rebase_weights(const uint8_t* origin, const uint8_t* base) {
    for (Layer& L : layers_) L.w = L.w.rebased(origin, base);
    const uint8_t* on = reinterpret_cast<const uint8_t*>(output_norm_);
    output_norm_ = reinterpret_cast<const float*>(base + (on - origin));
    output_.data = base + (output_.data - origin);
}

// Dense layers through a window of W layer buffers (layer_stream.h): resident keeps only the tensors
// outside the layers; W is as large as the budget allows, up to 4 (reads of 3 layers ahead).
Status Model::plan_layer_stream(const ModelOptions& opt) {
    const EdgeFile& f = *file_;
    int64_t outside = 0;
    for (const TensorInfo& t : f.tensors())
        if (t.name.compare(0, 4, "blk.") != 0) outside += (int64_t)t.nbytes;
    const int64_t fixed = planner_.host_total() - planner_.total(MemKind::WEIGHTS) + outside;
    if (fixed >= opt.mem_budget)
        return status_error(Code::OUT_OF_MEMORY, strfmt("embeddings, head and norms %.1f MiB + KV cache + scratch = %.1f MiB "
                                                        "already exceed it", mib(outside), mib(fixed)));
    int64_t buf = 0;
    EDGE_TRY(LayerStream::measure(f, &buf));
    const int64_t w = std::min<int64_t>({4, cfg_.n_layers, (opt.mem_budget - fixed) / buf});
    if (w < 1)
        return status_error(Code::OUT_OF_MEMORY, strfmt("one layer buffer of %.1f MiB does not fit the %.1f MiB left",
                                                        mib(buf), mib(opt.mem_budget - fixed)));
    planner_.forget(MemKind::WEIGHTS);
    planner_.count("weights (outside the layers)", MemKind::WEIGHTS, be_->device(), outside);
    planner_.add("layer_window", MemKind::IO_BUFFERS, nullptr, buf * w, &stream_opt_.buffers, false, (int64_t)kIoAlign);
    stream_opt_.window = (int)w;
    stream_opt_.io_threads = opt.io_threads;
    map_base_ = f.tensors().front().data - f.tensors().front().offset;
    plan_ = planner_.plan();
    plan_.layer_window = w;
    return Status::ok();
}

// MoE in device steps (model.h moe_device_): when the store's slots hold every expert in its planned variant and the
// backend mirrors them, each expert is read once now, staged into its device slot (where it stays: nothing is ever
// evicted) and each MoE layer's device addresses are handed to Backend::moe_device_experts. Any other case — a budget
// smaller than the experts, low-bit serving, expert adapters, dtypes or shapes the backend's kernels lack, the experts
// of a layer in different dtypes — keeps the host-routed MoE (moe_predict / moe_forward) and eager one-token steps.
Status Model::moe_make_resident(bool lowbit) {
    moe_device_ = false;
    const int64_t E = moe_.n_experts, F = moe_.d_expert, D = cfg_.d_model;
    moe_slot_.assign(layers_.size(), -1);
    moe_layers_ = 0;
    bool adapters = false;
    for (size_t il = 0; il < layers_.size(); ++il) {
        if (layers_[il].moe) moe_slot_[il] = (int)moe_layers_++;
        adapters |= !layers_[il].expert_ad.empty();
    }
    if (!expert_mirror_ || lowbit || adapters || store_->n_slots() < moe_layers_ * E) return Status::ok();
    std::vector<Matrix> m((size_t)(3 * E));
    for (size_t il = 0; il < layers_.size(); ++il) {
        if (!layers_[il].moe) continue;
        bool uniform = true;
        for (int32_t e = 0; e < (int32_t)E; ++e) {
            int which = 0;
            ExpertMatrices em;
            EDGE_TRY(store_->acquire_any((int)il, &e, nullptr, 1, &which, &em));
            Status st = moe_check_expert(moe_, *be_, D, (int)il, e, em);
            const Matrix hm[3] = {em.gate, em.up, em.down};
            if (st.is_ok()) be_->stage_expert((int)il, e, em.variant, hm, 3, &m[(size_t)(3 * e)]);
            store_->release((int)il, e);
            EDGE_TRY(st);
            for (int r = 0; r < 3; ++r)
                uniform &= m[(size_t)(3 * e + r)].dtype == m[(size_t)r].dtype && m[(size_t)(3 * e + r)].row_bytes == m[(size_t)r].row_bytes;
        }
        if (!uniform || m[0].dtype != m[1].dtype || !be_->moe_device_supported(m[0].dtype, m[2].dtype, F, D)) return Status::ok();
        be_->moe_device_experts(moe_slot_[il], m.data(), E);
    }
    be_->sync();
    EDGE_TRY(be_->take_error());
    moe_device_ = true;
    return Status::ok();
}

// The expert cache gets what the budget leaves after everything else, in whole slots.
Status Model::plan_store(const ModelOptions& opt, int64_t fixed, ExpertStore::Options* so) {
    const EdgeFile& f = *file_;
    const int64_t k = moe_.n_used;
    so->io_threads = opt.io_threads;
    so->policy = opt.cache_policy;
    so->lowbit = opt.moe_lowbit;
    so->lowbit_threshold = opt.moe_lowbit_threshold;
    ExpertStore::Sizes sz;
    EDGE_TRY(ExpertStore::measure(f, *so, &sz));
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
    const bool mirror = !be_->host_addressable() && be_->expert_mirror_supported();
    if (mirror) {  // the slots are mirrored in device memory: --gpu-mem bounds them too
        const int64_t budget = opt.gpu_mem > 0 ? opt.gpu_mem : std::max<int64_t>(0, be_->memory_free() - kDeviceMargin);
        const int64_t left = budget - planner_.device_total();
        if (left < k * slot)
            return status_error(Code::OUT_OF_MEMORY,
                                strfmt("%s: the GPU's expert cache needs at least %lld slots of %.2f MiB but %s leaves %.1f MiB "
                                       "after the weights, KV cache and scratch; use a larger --gpu-mem, a shorter --ctx or --device cpu",
                                       f.path().c_str(), (long long)k, mib(slot), opt.gpu_mem > 0 ? "--gpu-mem" : "the free memory",
                                       mib(std::max<int64_t>(0, left))));
        cache = std::min(cache, left / slot * slot);
    }
    so->cache_bytes = cache;
    const int64_t slots_bytes = ExpertStore::slots_bytes(sz, cache);
    if (mirror) planner_.add("expert.slots (device mirror)", MemKind::EXPERT_CACHE, be_, slots_bytes, &expert_mirror_, false, 256);
    planner_.add("expert.staging", MemKind::IO_BUFFERS, nullptr, io, &so->staging, false, (int64_t)kIoAlign);
    planner_.add("expert.slots", MemKind::EXPERT_CACHE, nullptr, slots_bytes, &so->slots, false, (int64_t)kIoAlign);
    plan_.expert_slots = slot > 0 ? slots_bytes / slot : 0;
    plan_.slot_bytes = slot;
    return Status::ok();
}

}  // namespace edge
