// model_adapter.cpp — ModelOptions::adapters in a Model: merged on the host by adapters_load (adapter.h),
// planned as one ADAPTERS buffer (every term's A [R, in], B [out, R] and bias [out], each 64-byte
// aligned), copied there after the plan is allocated, and handed to Backend::matmul / add_bias by the
// forward pass (model.cpp). The host copy is dropped once bound.
#include "model.h"

namespace edge {

namespace {

constexpr int64_t kAlignFloats = 16;  // 64 bytes

int64_t padded(size_t n) { return ((int64_t)n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

}  // namespace

Status Model::load_adapters(const ModelOptions& opt) {
    if (opt.adapters.empty()) return Status::ok();
    if (be_->device() != Device::CPU)
        return status_error(Code::UNSUPPORTED, strfmt("adapters run on the CPU backend only for now (the %s matmul has no LowRank term): "
                                                      "use --device cpu, or fold the adapter into a new file with `edgeconv merge`",
                                                      be_->name()));
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
    return adapters_load(*file_, shape, opt.adapters, &adapters_);
}

void Model::plan_adapters() {
    int64_t floats = 0;
    for (const AdapterTerm& t : adapters_.terms) floats += padded(t.a.size()) + padded(t.b.size()) + padded(t.bias.size());
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
    }
    adapters_ = AdapterSet();
}

void Model::add_adapter_bias(const Layer& L, int target, float* y, int64_t T, int64_t n) {
    if (L.bias[target]) be_->add_bias(y, L.bias[target], T, n);
}

}  // namespace edge
