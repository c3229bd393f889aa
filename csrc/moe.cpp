// moe.cpp — see moe.h.
#include "moe.h"

#include <algorithm>
#include <cmath>

namespace edge {

namespace {

Status bad_key(const EdgeFile& f, const std::string& key, const std::string& msg) {
    return status_error(Code::BAD_FILE, f.path() + ": " + key + " " + msg);
}

Status read_choice(const EdgeFile& f, const std::string& key, const char* a, const char* b, bool* is_b) {
    std::string v;
    EDGE_TRY(f.get_str(key, &v));
    if (v != a && v != b)
        return status_error(Code::UNSUPPORTED, f.path() + ": " + key + " '" + v + "' is not supported (expected " + a +
                                                   " or " + b + ")");
    *is_b = v == b;
    return Status::ok();
}

}  // namespace

Status moe_config_read(const EdgeFile& f, int64_t n_layers, MoeConfig* out) {
    MoeConfig c;
    EDGE_TRY(f.get_i64("moe.n_experts", &c.n_experts));
    EDGE_TRY(f.get_i64("moe.n_experts_used", &c.n_used));
    EDGE_TRY(f.get_i64("moe.d_expert", &c.d_expert));
    if (c.n_experts < 1 || c.n_experts > 4096) return bad_key(f, "moe.n_experts", strfmt("= %lld is implausible", (long long)c.n_experts));
    if (c.n_used < 1 || c.n_used > c.n_experts)
        return bad_key(f, "moe.n_experts_used", strfmt("= %lld must be in [1, n_experts = %lld]", (long long)c.n_used, (long long)c.n_experts));
    if (c.d_expert < 1 || c.d_expert > (1 << 18)) return bad_key(f, "moe.d_expert", strfmt("= %lld is implausible", (long long)c.d_expert));
    bool sigmoid = false, residual = false, linear = false, silu = false;
    EDGE_TRY(read_choice(f, "moe.gating", "softmax", "sigmoid", &sigmoid));
    EDGE_TRY(read_choice(f, "moe.act", "relu", "silu", &silu));
    EDGE_TRY(read_choice(f, "moe.router_input", "ffn_norm", "residual", &residual));
    EDGE_TRY(read_choice(f, "moe.predictor", "router", "linear", &linear));
    c.gating_softmax = !sigmoid;
    c.act_relu = !silu;
    c.router_on_residual = residual;
    c.predictor_linear = linear;
    int64_t norm = 0;
    EDGE_TRY(f.get_i64("moe.norm_topk", &norm));
    c.norm_topk = norm != 0;
    if (!linear && !residual)
        return status_error(Code::UNSUPPORTED, f.path() + ": moe.predictor 'router' needs moe.router_input 'residual' "
                                                          "(the router must read the layer input to predict before attention); "
                                                          "re-export with a linear predictor");
    const MetaValue* layers = f.get("moe.layers");
    if (!layers || layers->type != META_ARR_I64 || (int64_t)layers->ai.size() != n_layers)
        return bad_key(f, "moe.layers", strfmt("must be an integer array of llm.n_layers = %lld entries", (long long)n_layers));
    c.is_moe.resize((size_t)n_layers);
    for (int64_t i = 0; i < n_layers; ++i) {
        int64_t v = layers->ai[(size_t)i];
        if (v != 0 && v != 1) return bad_key(f, "moe.layers", strfmt("[%lld] = %lld must be 0 or 1", (long long)i, (long long)v));
        c.is_moe[(size_t)i] = (uint8_t)v;
    }
    *out = std::move(c);
    return Status::ok();
}

void moe_topk(const float* logits, int64_t E, int64_t k, int32_t* idx) {
    int64_t n = 0;  // idx[0..n) sorted by descending logit, ties in index order
    for (int64_t e = 0; e < E; ++e) {
        const float v = logits[e];
        if (n == k && !(v > logits[idx[k - 1]])) continue;
        int64_t pos = n < k ? n++ : k - 1;
        while (pos > 0 && v > logits[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            --pos;
        }
        idx[pos] = (int32_t)e;
    }
}

void moe_route(const MoeConfig& c, const float* logits, int32_t* idx, float* w) {
    const int64_t E = c.n_experts, k = c.n_used;
    moe_topk(logits, E, k, idx);
    if (c.gating_softmax) {
        float mx = logits[idx[0]];
        float sum = 0.f;
        for (int64_t e = 0; e < E; ++e) sum += std::exp(logits[e] - mx);
        for (int64_t j = 0; j < k; ++j) w[j] = std::exp(logits[idx[j]] - mx) / sum;
    } else {
        for (int64_t j = 0; j < k; ++j) w[j] = 1.0f / (1.0f + std::exp(-logits[idx[j]]));
    }
    if (c.norm_topk) {
        float s = 0.f;
        for (int64_t j = 0; j < k; ++j) s += w[j];
        for (int64_t j = 0; j < k; ++j) w[j] /= s;
    }
}

int64_t moe_overlap(const int32_t* true_idx, const int32_t* pred_idx, int64_t T, int64_t k) {
    int64_t hits = 0;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t a = 0; a < k; ++a)
            for (int64_t b = 0; b < k; ++b)
                if (true_idx[t * k + a] == pred_idx[t * k + b]) {
                    ++hits;
                    break;
                }
    return hits;
}

void MoeBuffers::resize(int64_t T, int64_t D, int64_t E, int64_t k, int64_t F) {
    xe.resize((size_t)(T * D));
    gate.resize((size_t)(T * F));
    up.resize((size_t)(T * F));
    ye.resize((size_t)(T * D));
    yk.resize((size_t)(T * k * D));
    experts.resize((size_t)E);
    order.resize((size_t)E);
    count.resize((size_t)E);
    start.resize((size_t)E + 1);
    token_of.resize((size_t)(T * k));
    wmax.resize((size_t)E);
    wpos.resize((size_t)E);
}

int64_t MoeBuffers::bytes(int64_t T, int64_t D, int64_t E, int64_t k, int64_t F) {
    return (int64_t)sizeof(float) * (3 * T * D + 2 * T * F + T * k * D + 2 * E) + (int64_t)sizeof(int32_t) * (5 * E + 1 + T * k);
}

namespace {

Status check_expert(const MoeConfig& c, const KernelTable& kt, int64_t D, int layer, int expert, const ExpertMatrices& m) {
    const int64_t F = c.d_expert;
    const Matrix* ms[3] = {&m.gate, &m.up, &m.down};
    const int64_t rows[3] = {F, F, D}, cols[3] = {D, D, F};
    for (int i = 0; i < 3; ++i) {
        const Matrix& w = *ms[i];
        if (!w.data || w.rows != rows[i] || w.cols != cols[i] || w.dtype >= EDGE_DTYPE_COUNT || !kt.gemm[w.dtype].fn ||
            (dtype_traits(w.dtype).int_dot && w.cols % 32))
            return status_error(Code::BAD_FILE, strfmt("layer %d expert %d: the store served a %lld x %lld matrix of dtype %u "
                                                       "where a %lld x %lld matmul weight was expected",
                                                       layer, expert, (long long)w.rows, (long long)w.cols, w.dtype,
                                                       (long long)rows[i], (long long)cols[i]));
    }
    return Status::ok();
}

}  // namespace

Status moe_ffn(const MoeConfig& c, ExpertStore* store, const MatmulCtx& mm, int layer, const float* xn,
               const int32_t* idx, const float* w, int64_t T, int64_t D, MoeBuffers* buf, float* x) {
    const int64_t E = c.n_experts, k = c.n_used, F = c.d_expert;
    MoeBuffers& b = *buf;
    // group the T·k routes r = t·k + j by expert (counting sort, routes in token order within an expert)
    std::fill(b.count.begin(), b.count.end(), 0);
    std::fill(b.wmax.begin(), b.wmax.end(), 0.f);
    for (int64_t r = 0; r < T * k; ++r) {
        ++b.count[(size_t)idx[r]];
        b.wmax[(size_t)idx[r]] = std::max(b.wmax[(size_t)idx[r]], w[r]);
    }
    b.start[0] = 0;
    for (int64_t e = 0; e < E; ++e) b.start[(size_t)e + 1] = b.start[(size_t)e] + b.count[(size_t)e];
    for (int64_t e = 0; e < E; ++e) b.order[(size_t)e] = b.start[(size_t)e];  // fill cursor
    for (int64_t r = 0; r < T * k; ++r) b.token_of[(size_t)b.order[(size_t)idx[r]]++] = (int32_t)r;
    int n = 0;
    for (int64_t e = 0; e < E; ++e)
        if (b.count[(size_t)e]) b.experts[(size_t)n++] = (int32_t)e;
    std::stable_sort(b.experts.begin(), b.experts.begin() + n,
                     [&](int32_t a, int32_t z) { return b.count[(size_t)a] > b.count[(size_t)z]; });
    for (int i = 0; i < n; ++i) b.wpos[(size_t)i] = b.wmax[(size_t)b.experts[(size_t)i]];

    while (n > 0) {
        int which = -1;
        ExpertMatrices em;
        EDGE_TRY(store->acquire_any(layer, b.experts.data(), b.wpos.data(), n, &which, &em));
        const int32_t e = b.experts[(size_t)which];
        Status st = check_expert(c, *mm.kt, D, layer, e, em);
        if (!st.is_ok()) {
            store->release(layer, e);
            return st;
        }
        const int32_t* routes = b.token_of.data() + b.start[(size_t)e];
        const int64_t ne = b.count[(size_t)e];
        for (int64_t i = 0; i < ne; ++i) {
            const float* src = xn + (routes[i] / k) * D;
            std::copy(src, src + D, b.xe.data() + i * D);
        }
        {
            const Matrix* ws[2] = {&em.gate, &em.up};
            float* ys[2] = {b.gate.data(), b.up.data()};
            matmul(mm, ws, ys, 2, b.xe.data(), ne);
        }
        if (c.act_relu) {
            float* g = b.gate.data();
            const float* u = b.up.data();
            for (int64_t i = 0; i < ne * F; ++i) g[i] = (g[i] > 0.f ? g[i] : 0.f) * u[i];
        } else {
            mm.kt->silu_mul.fn(b.gate.data(), b.up.data(), ne * F, b.gate.data());
        }
        {
            const Matrix* ws[1] = {&em.down};
            float* ys[1] = {b.ye.data()};
            matmul(mm, ws, ys, 1, b.gate.data(), ne);
        }
        store->release(layer, e);
        for (int64_t i = 0; i < ne; ++i) std::copy(b.ye.data() + i * D, b.ye.data() + (i + 1) * D, b.yk.data() + routes[i] * D);
        // drop position `which`, keeping the hottest-first order of the rest
        for (int i = which; i + 1 < n; ++i) {
            b.experts[(size_t)i] = b.experts[(size_t)i + 1];
            b.wpos[(size_t)i] = b.wpos[(size_t)i + 1];
        }
        --n;
    }
    // x[t] += Σ_j w[t][j] · y[t][j], in rank order
    for (int64_t t = 0; t < T; ++t) {
        float* acc = b.xe.data();
        const float* y0 = b.yk.data() + (t * k) * D;
        for (int64_t d = 0; d < D; ++d) acc[d] = w[t * k] * y0[d];
        for (int64_t j = 1; j < k; ++j) {
            const float wj = w[t * k + j];
            const float* yj = b.yk.data() + (t * k + j) * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += wj * yj[d];
        }
        float* xt = x + t * D;
        for (int64_t d = 0; d < D; ++d) xt[d] += acc[d];
    }
    return Status::ok();
}

}  // namespace edge
