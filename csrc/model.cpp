// model.cpp — loading (validation of every tensor against the config) and the forward pass.
#include "model.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "ops.h"

namespace edge {

namespace {

Status bad_model(const std::string& path, const std::string& msg) {
    return status_error(Code::BAD_FILE, path + ": " + msg);
}

int64_t default_threads() {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n;
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

    // Dense decoder families this executor implements; each differs only in the llm.* flags below.
    static const char* const kDense[] = {"llama", "qwen2", "qwen3"};
    std::string arch;
    EDGE_TRY(f.get_str("general.architecture", &arch));
    if (std::find(std::begin(kDense), std::end(kDense), arch) == std::end(kDense))
        return status_error(Code::UNSUPPORTED, path + ": architecture '" + arch +
                                                   "' is not supported by this runtime (supported: llama, qwen2, qwen3)");
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
    const LlmConfig& c = cfg_;
    auto in = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
    if (!in(c.n_layers, 1, 1024) || !in(c.d_model, 32, 1 << 16) || !in(c.n_heads, 1, 1024) ||
        !in(c.n_kv_heads, 1, c.n_heads) || c.n_heads % c.n_kv_heads || !in(c.head_dim, 2, 1024) || c.head_dim % 2 ||
        !in(c.d_ff, 32, 1 << 18) || !in(c.vocab, 1, 1 << 22) || !in(c.max_ctx, 1, 1 << 24) ||
        !(c.rope_theta > 0) || !(c.rms_eps > 0))
        return bad_model(path, strfmt("implausible hyper-parameters (layers %lld, d_model %lld, heads %lld/%lld, head_dim %lld, d_ff %lld, vocab %lld)",
                                      (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.n_kv_heads,
                                      (long long)c.head_dim, (long long)c.d_ff, (long long)c.vocab));

    kt_ = opt.kernels.empty() ? kernels_default() : kernels_for(opt.kernels.c_str());
    if (!kt_) return status_error(Code::INVALID_ARGUMENT, "kernel level '" + opt.kernels + "' is not supported on this CPU");

    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, Matrix* m) -> Status {
        const TensorInfo* t = f.find(name);
        if (!t) return bad_model(path, "missing tensor '" + name + "'");
        if (t->shape.size() != 2 || t->shape[0] != rows || t->shape[1] != cols)
            return bad_model(path, strfmt("tensor '%s' should be [%lld, %lld]", name.c_str(), (long long)rows, (long long)cols));
        if (!kt_->gemm[t->dtype] || !kt_->dequant[t->dtype] || (dtype_traits(t->dtype).int_dot && cols % 32))
            return status_error(Code::UNSUPPORTED, path + ": tensor '" + name + "' has dtype " + dtype_traits(t->dtype).name + ", which cannot be a matmul weight");
        *m = Matrix{t->data, t->dtype, rows, cols, dtype_row_bytes(t->dtype, cols)};
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

    const int64_t D = c.d_model, Dq = c.n_heads * c.head_dim, Dkv = c.n_kv_heads * c.head_dim;
    EDGE_TRY(matrix("tok_embd", c.vocab, D, &tok_embd_));
    EDGE_TRY(vec("output_norm", D, &output_norm_));
    if (c.tied_head) {
        output_ = tok_embd_;
    } else {
        EDGE_TRY(matrix("output", c.vocab, D, &output_));
    }
    layers_.resize((size_t)c.n_layers);
    for (int64_t i = 0; i < c.n_layers; ++i) {
        Layer& L = layers_[(size_t)i];
        std::string p = "blk." + std::to_string(i) + ".";
        EDGE_TRY(vec(p + "attn_norm", D, &L.attn_norm));
        EDGE_TRY(vec(p + "ffn_norm", D, &L.ffn_norm));
        EDGE_TRY(matrix(p + "attn_q", Dq, D, &L.q));
        EDGE_TRY(matrix(p + "attn_k", Dkv, D, &L.k));
        EDGE_TRY(matrix(p + "attn_v", Dkv, D, &L.v));
        EDGE_TRY(matrix(p + "attn_o", D, Dq, &L.o));
        EDGE_TRY(matrix(p + "ffn_gate", c.d_ff, D, &L.gate));
        EDGE_TRY(matrix(p + "ffn_up", c.d_ff, D, &L.up));
        EDGE_TRY(matrix(p + "ffn_down", D, c.d_ff, &L.down));
        if (c.qkv_bias) {
            EDGE_TRY(vec(p + "attn_q_bias", Dq, &L.q_bias));
            EDGE_TRY(vec(p + "attn_k_bias", Dkv, &L.k_bias));
            EDGE_TRY(vec(p + "attn_v_bias", Dkv, &L.v_bias));
        }
        if (c.qk_norm) {
            EDGE_TRY(vec(p + "attn_q_norm", c.head_dim, &L.q_norm));
            EDGE_TRY(vec(p + "attn_k_norm", c.head_dim, &L.k_norm));
        }
    }
    EDGE_TRY(tokenizer_from_file(f, &tok_));

    ctx_ = opt.ctx > 0 ? opt.ctx : std::min<int64_t>(c.max_ctx, 4096);
    if (ctx_ > (1 << 20)) return status_error(Code::INVALID_ARGUMENT, "context length too large");
    batch_ = std::max<int64_t>(1, std::min<int64_t>(opt.batch, ctx_));
    int threads = opt.threads > 0 ? opt.threads : (int)default_threads();

    // Memory plan: checked before anything large is allocated.
    const int64_t T = batch_, maxw = std::max(std::max(D, c.d_ff), Dq);
    int64_t scratch_floats = T * (2 * D + Dq + 2 * Dkv + Dq + 2 * c.d_ff) + (int64_t)threads * ctx_ + c.vocab;
    plan_.weights = 0;
    for (const TensorInfo& t : f.tensors()) plan_.weights += (int64_t)t.nbytes;
    plan_.kv_cache = c.n_layers * 2 * ctx_ * Dkv * (int64_t)sizeof(float);
    plan_.scratch = scratch_floats * (int64_t)sizeof(float) + T * (maxw / 32) * (int64_t)sizeof(block_q8x);
    if (opt.mem_budget > 0 && plan_.total() > opt.mem_budget) {
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s needs %.1f MiB (weights %.1f + KV cache %.1f for %lld tokens + scratch %.1f) but --mem is %.1f MiB; "
                                   "use a smaller quantization recipe (e.g. `edgeconv export ... --quant int4`) or a shorter --ctx",
                                   path.c_str(), plan_.total() / 1048576.0, plan_.weights / 1048576.0, plan_.kv_cache / 1048576.0,
                                   (long long)ctx_, plan_.scratch / 1048576.0, opt.mem_budget / 1048576.0));
    }

    ktile_head_ = (ctx_ + kKTile - 1) / kKTile * kKTile * c.head_dim;  // K floats per kv head
    pool_.reset(new ThreadPool(threads));
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
    xq_.resize((size_t)(T * (maxw / 32)));
    inv_freq_.resize((size_t)(c.head_dim / 2));
    rope_cos_.resize((size_t)(T * c.head_dim / 2));
    rope_sin_.resize((size_t)(T * c.head_dim / 2));
    for (int64_t i = 0; i < c.head_dim / 2; ++i)
        inv_freq_[(size_t)i] = (float)(1.0 / std::pow(c.rope_theta, (double)(2 * i) / (double)c.head_dim));
    return Status::ok();
}

Status Model::truncate(int64_t n) {
    if (n < 0 || n > n_past_) return status_error(Code::INVALID_ARGUMENT, "truncate: position out of range");
    n_past_ = n;
    return Status::ok();
}

Status Model::eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits) {
    if (n <= 0) return status_error(Code::INVALID_ARGUMENT, "eval: no tokens");
    if (n_past_ + n > ctx_)
        return status_error(Code::INVALID_ARGUMENT, strfmt("context is full: %lld cached + %lld new tokens > ctx %lld (use a larger ctx or reset)",
                                                           (long long)n_past_, (long long)n, (long long)ctx_));
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
            return status_error(Code::INVALID_ARGUMENT, strfmt("token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)cfg_.vocab));
    for (int64_t i = 0; i < n; i += batch_) {
        int64_t T = std::min(batch_, n - i);
        bool last = i + T == n;
        float* out = nullptr;
        if (logits) out = all_logits ? logits + i * cfg_.vocab : (last ? logits : nullptr);
        step(tokens + i, T, all_logits, out);
    }
    return Status::ok();
}

void Model::matmul(const Matrix* const* ws, float* const* ys, int nw, const float* x, int64_t T) {
    const int64_t n = ws[0]->cols;
    bool need_q8 = false;
    int64_t total = 0;
    for (int i = 0; i < nw; ++i) {
        need_q8 |= dtype_traits(ws[i]->dtype).int_dot;
        total += ws[i]->rows;
    }
    if (need_q8)
        for (int64_t t = 0; t < T; ++t) kt_->quantize_q8x(x + t * n, xq_.data() + t * (n / 32), n);
    const KernelTable* kt = kt_;
    const block_q8x* xq = xq_.data();
    pool_->run(total, [&](int64_t b, int64_t e, int) {
        int64_t base = 0;
        for (int i = 0; i < nw; ++i) {
            const Matrix& w = *ws[i];
            int64_t lo = std::max(b, base), hi = std::min(e, base + w.rows);
            if (lo < hi) {
                int64_t r0 = lo - base;
                bool q8 = dtype_traits(w.dtype).int_dot;
                kt->gemm[w.dtype](w.data + (size_t)r0 * w.row_bytes, (int64_t)w.row_bytes, hi - lo, n,
                                  q8 ? (const void*)xq : (const void*)x, q8 ? n / 32 : n, T, ys[i] + r0, w.rows);
            }
            base += w.rows;
        }
    }, 16);
}

void Model::head(const float* x, int64_t T, float* logits) {
    const Matrix* w = &output_;
    float* y = logits;
    matmul(&w, &y, 1, x, T);
}

void Model::step(const int32_t* tokens, int64_t T, bool all_logits, float* logits) {
    const LlmConfig& c = cfg_;
    const int64_t D = c.d_model, Dh = c.head_dim, H = c.n_heads, Hkv = c.n_kv_heads;
    const int64_t Dq = H * Dh, Dkv = Hkv * Dh, group = H / Hkv;
    const float eps = (float)c.rms_eps;
    const int64_t pos0 = n_past_;

    for (int64_t t = 0; t < T; ++t)
        kt_->dequant[tok_embd_.dtype](tok_embd_.data + (size_t)tokens[t] * tok_embd_.row_bytes, x_.data() + t * D, D);
    const int64_t half = Dh / 2;
    for (int64_t t = 0; t < T; ++t)
        rope_angles(pos0 + t, inv_freq_.data(), half, rope_cos_.data() + t * half, rope_sin_.data() + t * half);

    for (Layer& L : layers_) {
        for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, L.attn_norm, eps, D, xn_.data() + t * D);
        {
            const Matrix* ws[3] = {&L.q, &L.k, &L.v};
            float* ys[3] = {q_.data(), k_.data(), v_.data()};
            matmul(ws, ys, 3, xn_.data(), T);
        }
        for (int64_t t = 0; t < T; ++t) {
            float* q = q_.data() + t * Dq;
            float* k = k_.data() + t * Dkv;
            float* v = v_.data() + t * Dkv;
            if (L.q_bias) {
                for (int64_t i = 0; i < Dq; ++i) q[i] += L.q_bias[i];
                for (int64_t i = 0; i < Dkv; ++i) k[i] += L.k_bias[i];
                for (int64_t i = 0; i < Dkv; ++i) v[i] += L.v_bias[i];
            }
            for (int64_t h = 0; h < H; ++h) {
                if (L.q_norm) rmsnorm(q + h * Dh, L.q_norm, eps, Dh, q + h * Dh);
                rope_rotate_half(q + h * Dh, Dh, rope_cos_.data() + t * half, rope_sin_.data() + t * half);
            }
            for (int64_t h = 0; h < Hkv; ++h) {
                if (L.k_norm) rmsnorm(k + h * Dh, L.k_norm, eps, Dh, k + h * Dh);
                rope_rotate_half(k + h * Dh, Dh, rope_cos_.data() + t * half, rope_sin_.data() + t * half);
            }
            // K is cached in transposed tiles of kKTile positions per kv head (see attention_fn)
            const int64_t pos = pos0 + t;
            for (int64_t h = 0; h < Hkv; ++h) {
                float* tile = L.k_cache.get() + h * ktile_head_ + (pos / kKTile) * kKTile * Dh + pos % kKTile;
                for (int64_t i = 0; i < Dh; ++i) tile[i * kKTile] = k[h * Dh + i];
            }
            std::copy(v, v + Dkv, L.v_cache.get() + (pos0 + t) * Dkv);
        }
        // attention: one task per (token, head)
        pool_->run(T * H, [&](int64_t b, int64_t e, int tid) {
            float* scratch = scores_.data() + (size_t)tid * ctx_;
            for (int64_t i = b; i < e; ++i) {
                int64_t t = i / H, h = i % H, kvh = h / group;
                kt_->attention(q_.data() + t * Dq + h * Dh, L.k_cache.get() + kvh * ktile_head_, L.v_cache.get() + kvh * Dh,
                               Dkv, 0, pos0 + t + 1, Dh, scratch, att_.data() + t * Dq + h * Dh);
            }
        });
        {
            const Matrix* w = &L.o;
            float* y = xn_.data();
            matmul(&w, &y, 1, att_.data(), T);
            for (int64_t i = 0; i < T * D; ++i) x_[(size_t)i] += xn_[(size_t)i];
        }
        for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, L.ffn_norm, eps, D, xn_.data() + t * D);
        {
            const Matrix* ws[2] = {&L.gate, &L.up};
            float* ys[2] = {gate_.data(), up_.data()};
            matmul(ws, ys, 2, xn_.data(), T);
        }
        kt_->silu_mul(gate_.data(), up_.data(), T * c.d_ff, gate_.data());
        {
            const Matrix* w = &L.down;
            float* y = xn_.data();
            matmul(&w, &y, 1, gate_.data(), T);
            for (int64_t i = 0; i < T * D; ++i) x_[(size_t)i] += xn_[(size_t)i];
        }
    }
    n_past_ += T;
    if (!logits) return;
    if (all_logits) {
        for (int64_t t = 0; t < T; ++t) rmsnorm(x_.data() + t * D, output_norm_, eps, D, xn_.data() + t * D);
        head(xn_.data(), T, logits);
    } else {
        rmsnorm(x_.data() + (T - 1) * D, output_norm_, eps, D, xn_.data());
        head(xn_.data(), 1, logits);
    }
}

}  // namespace edge
