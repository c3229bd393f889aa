// py_model.h — the Python-side holder of a Model (edgerun._core.Model), shared by the files that bind
// objects built on a model (model.cpp binds it; train.cpp's Trainer takes one).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "common.h"
#include "model.h"

namespace edge {
namespace bindings {

struct PyModel {
    std::unique_ptr<Model> m;
    std::vector<float> logits;  // last-token logits of the latest eval
    bool logits_on_device = false;  // the latest step was sampled on the GPU: `logits` is older
    std::unique_ptr<ActivationStats> stats;  // calib_begin .. calib_end: attached to m (act_stats.h)

    const Tokenizer& tok() const {
        if (!m->tokenizer())
            raise_status(status_error(Code::UNSUPPORTED, m->file().path() + " has no tokenizer; use token ids"));
        return *m->tokenizer();
    }
    std::vector<int32_t> ids(py::array_t<int32_t, py::array::c_style | py::array::forcecast> a) const {
        return std::vector<int32_t>(a.data(), a.data() + a.size());
    }
};

// A MemoryPlan as Model.memory_plan reports it (per-kind byte totals and "total"), and its entries
// (name, kind, device, bytes, allocated) as Model.memory_buffers does.
py::dict plan_dict(const MemoryPlan& p);
py::list plan_buffers_list(const MemoryPlan& p);

}  // namespace bindings
}  // namespace edge
