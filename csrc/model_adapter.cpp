// model_adapter.cpp — ModelOptions::adapters in a Model: merged on the host by adapters_load (adapter.h),
// planned as one ADAPTERS buffer (every term's A [R, in], B [out, R] and bias [out], each 64-byte
// aligned; the experts' terms too: they stay resident whether the experts are resident or streamed),
// copied there after the plan is allocated, and handed to Backend::matmul / add_bias by the forward
// pass (model.cpp) and, per expert, to moe_ffn as ExpertAdapter terms. The host copy is dropped once bound.
// Expert terms run on the CPU backend only (the CUDA backend stages experts in moe_ffn but is not tested
// with their LowRank terms): a clear UNSUPPORTED elsewhere.
#include "model.h"

namespace edge {

namespace {

constexpr int64_t kAlignFloats = 16;  // 64 bytes

int64_t padded(size_t n) { return ((int64_t)n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

}  // namespace

Status Model::load_adapters(const ModelOptions& opt) {
    if (opt.adapters.empty()) return Status::ok();
    AdapterShape shape;
    shape.n_layers = cfg_.n_layers;
    shape.rows.assign((size_t)(cfg_.n_layers * AT_COUNT), 0);
    shape.cols.assign((size_t)(cfg_.n_layers * AT_COUNT), 0);
    for (int64_t il = 0; il < cfg_.n_layers; ++il) {
        const LayerWeights& w = layers_[(size_t)il].w;
        const Matrix* ms[AT_COUNT] = {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down};
        for (int t = 0; t < AT_COUNT; ++t) {
            if (!ms[t]->data) continue;  // a MoE layer has no dense FFN
            shape.rows[(size_t)(il * AT_COUNT + t)] = ms[t]->rows;
            shape.cols[(size_t)(il * AT_COUNT + t)] = ms[t]->cols;
        }
    }
    if (moe_.n_experts > 0) {
        const int64_t D = cfg_.d_model, F = moe_.d_expert;
        shape.n_experts = moe_.n_experts;
        shape.is_moe = moe_.is_moe;
        const int64_t rows[3] = {F, F, D}, cols[3] = {D, D, F};
        for (int j = 0; j < 3; ++j) shape.expert_rows[j] = rows[j], shape.expert_cols[j] = cols[j];
    }
    EDGE_TRY(adapters_load(*file_, shape, opt.adapters, &adapters_));
    if (be_->device() != Device::CPU && adapters_.has_expert_terms())
        return status_error(Code::UNSUPPORTED, strfmt("adapters with terms on MoE experts (blk.{i}.exp.{e}.*) run on the CPU backend only "
                                                      "(the %s backend does not apply them to its experts): use --device cpu, or fold "
                                                      "the adapter into a new file with `edgeconv merge`",
                                                      be_->name()));
    if (be_->device() != Device::CPU)
        return status_error(Code::UNSUPPORTED, strfmt("adapters run on the CPU backend only for now (the %s matmul has no LowRank term): "
                                                      "use --device cpu, or fold the adapter into a new file with `edgeconv merge`",
                                                      be_->name()));
    return Status::ok();
}

void Model::plan_adapters() {
    int64_t floats = 0;
    for (const std::vector<AdapterTerm>* v : {&adapters_.terms, &adapters_.expert_terms})
        for (const AdapterTerm& t : *v) floats += padded(t.a.size()) + padded(t.b.size()) + padded(t.bias.size());
    if (floats > 0) planner_.add("adapters", MemKind::ADAPTERS, be_, floats, &adapter_mem_, false);
}

void Model::bind_adapters() {
    if (!adapter_mem_) return;
    float* p = adapter_mem_;
    auto put = [&](const std::vector<float>& v) {
        float* dst = p;
        be_->upload(dst, v.data(), (int64_t)(v.size() * sizeof(float)));
        p += padded(v.size());
        return dst;
    };
    for (int64_t il = 0; il < adapters_.n_layers; ++il) {
        Layer& L = layers_[(size_t)il];
        for (int t = 0; t < AT_COUNT; ++t) {
            const AdapterTerm& term = adapters_.at(il, t);
            if (term.rank > 0) {
                L.lora[t].a = put(term.a);
                L.lora[t].b = put(term.b);
                L.lora[t].rank = term.rank;
                L.lora[t].scale = 1.f;  // the scales are in B's columns
                L.lora_ptr[t] = &L.lora[t];
            }
            if (!term.bias.empty()) L.bias[t] = put(term.bias);
        }
        bool any = false;  // the layer's experts' terms (moe_ffn), when it has some
        for (int64_t e = 0; e < adapters_.n_experts; ++e)
            for (int j = 0; j < 3; ++j) {
                const AdapterTerm& term = adapters_.expert_at(il, e, j);
                any |= term.rank > 0 || !term.bias.empty();
            }
        if (!any) continue;
        L.expert_ad.assign((size_t)adapters_.n_experts, ExpertAdapter());
        for (int64_t e = 0; e < adapters_.n_experts; ++e)
            for (int j = 0; j < 3; ++j) {
                const AdapterTerm& term = adapters_.expert_at(il, e, j);
                ExpertAdapter& ea = L.expert_ad[(size_t)e];
                if (term.rank > 0) {
                    ea.lora[j].a = put(term.a);
                    ea.lora[j].b = put(term.b);
                    ea.lora[j].rank = term.rank;
                    ea.lora[j].scale = 1.f;
                }
                if (!term.bias.empty()) ea.bias[j] = put(term.bias);
            }
    }
    adapters_ = AdapterSet();
}

void Model::add_adapter_bias(const Layer& L, int target, float* y, int64_t T, int64_t n) {
    if (L.bias[target]) be_->add_bias(y, L.bias[target], T, n);
}

}  // namespace edge
