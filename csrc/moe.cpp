// moe.cpp — see moe.h.
#include "moe.h"

#include "backend/planner.h"
#include "quant.h"

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

void MoeBuffers::plan(Planner* p, Backend* be, int64_t T, int64_t D, int64_t E, int64_t k, int64_t F) {
    p->add("moe.xe", MemKind::SCRATCH, be, T * D, &xe);
    p->add("moe.gate", MemKind::SCRATCH, be, T * F, &gate);
    p->add("moe.up", MemKind::SCRATCH, be, T * F, &up);
    p->add("moe.ye", MemKind::SCRATCH, be, T * D, &ye);
    p->add("moe.yk", MemKind::SCRATCH, be, T * k * D, &yk);
    MoeGroups& g = groups;
    p->add("moe.experts", MemKind::SCRATCH, nullptr, E, &g.experts);
    p->add("moe.count", MemKind::SCRATCH, nullptr, E, &g.count);
    p->add("moe.start", MemKind::SCRATCH, nullptr, E + 1, &g.start);
    p->add("moe.token_of", MemKind::SCRATCH, nullptr, T * k, &g.token_of);
    p->add("moe.cursor", MemKind::SCRATCH, nullptr, E, &g.cursor);
    p->add("moe.wmax", MemKind::SCRATCH, nullptr, E, &g.wmax);
    p->add("moe.wpos", MemKind::SCRATCH, nullptr, E, &g.wpos);
}

Status moe_check_expert(const MoeConfig& c, const Backend& be, int64_t D, int layer, int expert, const ExpertMatrices& m) {
    const int64_t F = c.d_expert;
    const Matrix* ms[3] = {&m.gate, &m.up, &m.down};
    const int64_t rows[3] = {F, F, D}, cols[3] = {D, D, F};
    for (int i = 0; i < 3; ++i) {
        const Matrix& w = *ms[i];
        if (!w.data || w.rows != rows[i] || w.cols != cols[i] || !be.supports(w.dtype) ||
            (dtype_traits(w.dtype).int_dot && w.cols % 32))
            return status_error(Code::BAD_FILE, strfmt("layer %d expert %d: the store served a %lld x %lld matrix of dtype %u "
                                                       "where a %lld x %lld matmul weight was expected",
                                                       layer, expert, (long long)w.rows, (long long)w.cols, w.dtype,
                                                       (long long)rows[i], (long long)cols[i]));
    }
    return Status::ok();
}

void moe_expert_ffn(Backend* be, Act act, const Matrix* m, const ExpertAdapter* ad, const float* xe, int64_t ne,
                    float* gate, float* up, float* h, float* ye) {
    const int64_t F = m[0].rows, D = m[2].rows;
    auto term = [&](int j) -> const LowRank* { return ad && ad->lora[j].rank > 0 ? &ad->lora[j] : nullptr; };
    auto bias = [&](int j, float* y, int64_t n) {
        if (ad && ad->bias[j]) be->add_bias(y, ad->bias[j], ne, n);
    };
    {
        const Matrix* ws[2] = {&m[0], &m[1]};
        float* ys[2] = {gate, up};
        const LowRank* lr[2] = {term(0), term(1)};
        be->matmul(ws, ys, 2, xe, ne, ad ? lr : nullptr);
    }
    bias(0, gate, F);
    bias(1, up, F);
    if (h != gate) {
        EDGE_ASSERT(be->host_addressable());
        std::copy(gate, gate + ne * F, h);
    }
    be->act_mul(h, up, ne * F, act);
    const Matrix* wd = &m[2];
    const LowRank* lr = term(2);
    be->matmul(&wd, &ye, 1, h, ne, ad ? &lr : nullptr);
    bias(2, ye, D);
}

Status moe_ffn(const MoeConfig& c, ExpertStore* store, Backend* be, int layer, const float* xn,
               const int32_t* idx, const float* w, int64_t T, int64_t D, MoeBuffers* buf, float* x,
               const ExpertAdapter* adapters, CpuBackend* cpu, ActivationStats* stats) {
    const int64_t E = c.n_experts, k = c.n_used, F = c.d_expert;
    MoeBuffers& b = *buf;
    const MoeGroups& g = b.groups;
    int n = moe_group(idx, w, T, k, E, g);
    while (n > 0) {
        int which = -1;
        ExpertMatrices em;
        EDGE_TRY(store->acquire_any(layer, g.experts, g.wpos, n, &which, &em));
        const int32_t e = g.experts[which];
        Status st = moe_check_expert(c, *be, D, layer, e, em);
        if (!st.is_ok()) {
            store->release(layer, e);
            return st;
        }
        Matrix dm[3];  // the expert as the device reads it
        const Matrix hm[3] = {em.gate, em.up, em.down};
        const bool reads_host = be->stage_expert(layer, e, em.variant, hm, 3, dm);
        const int32_t* routes = g.token_of + g.start[e];
        const int64_t ne = g.count[e];
        be->moe_gather(xn, D, routes, ne, k, b.xe);
        if (stats) stats->add(layer, ACT_EXPERT_IN, e, b.xe, ne, D, *cpu);
        moe_expert_ffn(be, c.act_relu ? Act::RELU : Act::SILU, dm, adapters ? adapters + e : nullptr, b.xe, ne, b.gate,
                       b.up, b.gate, b.ye);
        if (stats) stats->add(layer, ACT_EXPERT_MID, e, b.gate, ne, F, *cpu);  // h, in place of gate
        be->moe_scatter(b.ye, D, routes, ne, b.yk);
        if (reads_host) be->sync();  // the slot is reused once released
        store->release(layer, e);
        // drop position `which`, keeping the hottest-first order of the rest
        std::copy(g.experts + which + 1, g.experts + n, g.experts + which);
        std::copy(g.wpos + which + 1, g.wpos + n, g.wpos + which);
        --n;
    }
    be->moe_combine(b.yk, w, T, k, D, x);
    return Status::ok();
}

}  // namespace edge
