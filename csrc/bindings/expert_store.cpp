// expert_store.cpp — edgerun._core's test/benchmark access to the streaming engine: ExpertStore
// (csrc/expert_store.h), LayerStream (csrc/layer_stream.h) and the cache-policy simulator
// (cache_simulate, csrc/expert_cache_policy.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "expert_cache_policy.h"
#include "expert_store.h"
#include "format.h"
#include "layer_stream.h"
#include "quant.h"

namespace edge {
namespace bindings {

namespace {

struct PyExpertStore {
    std::unique_ptr<EdgeFile> file;     // destroyed after the store (declared first)
    std::unique_ptr<ExpertStore> store;
};

py::dict expert_matrix_to_py(const Matrix& w, bool copy) {
    py::dict d;
    d["dtype"] = dtype_traits(w.dtype).name;
    d["rows"] = w.rows;
    d["cols"] = w.cols;
    d["row_bytes"] = w.row_bytes;
    if (copy) {
        py::array_t<uint8_t> a({(py::ssize_t)w.rows, (py::ssize_t)w.row_bytes});
        std::memcpy(a.mutable_data(), w.data, (size_t)w.rows * w.row_bytes);
        d["data"] = a;
    }
    return d;
}

py::dict expert_stats_to_py(const ExpertStats& s) {
    py::dict d;
    d["hits"] = s.hits; d["misses"] = s.misses;
    d["hit_rate"] = s.hits + s.misses ? (double)s.hits / (double)(s.hits + s.misses) : 0.0;
    d["prefetch_issued"] = s.prefetch_issued; d["prefetch_used"] = s.prefetch_used;
    d["evictions"] = s.evictions; d["reads"] = s.reads; d["bytes_read"] = s.bytes_read;
    d["lowbit_serves"] = s.lowbit_serves; d["retries"] = s.retries;
    d["io_stall_s"] = s.io_stall_s; d["io_busy_s"] = s.io_busy_s;
    d["true_total"] = s.true_total; d["predicted_true"] = s.predicted_true;
    d["predictor_recall"] = s.true_total ? (double)s.predicted_true / (double)s.true_total : 0.0;
    return d;
}

struct PyLayerStream {
    std::unique_ptr<EdgeFile> file;
    std::unique_ptr<LayerStream> stream;
    std::vector<const uint8_t*> base;  // per layer: set while pinned by acquire()
    std::vector<int> pins;
};

}  // namespace

void bind_expert_store(py::module_& m) {
    py::class_<PyExpertStore>(m, "ExpertStore", "MoE experts streamed from disk into a fixed slot cache (csrc/expert_store.h).")
        .def(py::init([](const std::string& path, int64_t cache_bytes, int io_threads, bool direct_io, const std::string& policy,
                         bool lowbit, float lowbit_threshold, int64_t decay_tokens) {
                 auto p = std::make_unique<PyExpertStore>();
                 ExpertStore::Options o;
                 o.cache_bytes = cache_bytes; o.io_threads = io_threads; o.direct_io = direct_io; o.policy = policy;
                 o.lowbit = lowbit; o.lowbit_threshold = lowbit_threshold; o.decay_tokens = decay_tokens;
                 Status st;
                 {
                     py::gil_scoped_release release;
                     st = edge_file_open(path, &p->file);
                     if (st.is_ok()) st = ExpertStore::open(*p->file, o, &p->store);
                 }
                 check(st);
                 return p;
             }),
             py::arg("path"), py::arg("cache_bytes"), py::arg("io_threads") = 2, py::arg("direct_io") = true,
             py::arg("policy") = "lfru", py::arg("lowbit") = false, py::arg("lowbit_threshold") = 0.2f, py::arg("decay_tokens") = 64)
        .def_property_readonly("slot_bytes", [](const PyExpertStore& p) { return p.store->slot_bytes(); })
        .def_property_readonly("n_slots", [](const PyExpertStore& p) { return p.store->n_slots(); })
        .def_property_readonly("io_buffer_bytes", [](const PyExpertStore& p) { return p.store->io_buffer_bytes(); })
        .def_property_readonly("n_variants", [](const PyExpertStore& p) { return p.store->n_variants(); })
        .def_property_readonly("direct_io", [](const PyExpertStore& p) { return p.store->direct_io(); })
        .def("default_variant", [](const PyExpertStore& p, int layer, int expert) { return p.store->default_variant(layer, expert); },
             py::arg("layer"), py::arg("expert"))
        .def("begin_layer", [](PyExpertStore& p, int layer) { p.store->begin_layer(layer); }, py::arg("layer"))
        .def("prefetch", [](PyExpertStore& p, int layer, const std::vector<int32_t>& experts, py::object weights) {
                 std::vector<float> w;
                 if (!weights.is_none()) {
                     w = weights.cast<std::vector<float>>();
                     if (w.size() != experts.size())
                         raise_status(status_error(Code::INVALID_ARGUMENT, "prefetch: weights and experts differ in length"));
                 }
                 p.store->prefetch(layer, experts.data(), w.empty() ? nullptr : w.data(), (int)experts.size());
             }, py::arg("layer"), py::arg("experts"), py::arg("weights") = py::none(),
             "Queues reads for absent experts; weights (true routing weights, or None) drive the low-bit policy.")
        .def("acquire", [](PyExpertStore& p, int layer, const std::vector<int32_t>& experts, py::object weights, bool copy) {
                 std::vector<float> w;
                 if (!weights.is_none()) {
                     w = weights.cast<std::vector<float>>();
                     if (w.size() != experts.size())
                         raise_status(status_error(Code::INVALID_ARGUMENT, "acquire: weights and experts differ in length"));
                 }
                 int which = -1;
                 ExpertMatrices em;
                 Status st;
                 {
                     py::gil_scoped_release release;
                     st = p.store->acquire_any(layer, experts.data(), w.empty() ? nullptr : w.data(), (int)experts.size(), &which, &em);
                 }
                 check(st);
                 py::dict d;
                 d["index"] = which;
                 d["expert"] = experts[(size_t)which];
                 d["variant"] = em.variant;
                 d["gate"] = expert_matrix_to_py(em.gate, copy);
                 d["up"] = expert_matrix_to_py(em.up, copy);
                 d["down"] = expert_matrix_to_py(em.down, copy);
                 return d;
             }, py::arg("layer"), py::arg("experts"), py::arg("weights") = py::none(), py::arg("copy") = true,
             "Blocks until one of `experts` is ready, pins it and returns {index, expert, variant, gate, up, down}.")
        .def("release", [](PyExpertStore& p, int layer, int expert) { p.store->release(layer, expert); }, py::arg("layer"), py::arg("expert"))
        .def("note_prediction", [](PyExpertStore& p, int64_t t, int64_t pt) { p.store->note_prediction(t, pt); },
             py::arg("true_total"), py::arg("predicted_true"))
        .def("stats", [](const PyExpertStore& p) { return expert_stats_to_py(p.store->stats()); })
        .def("reset_stats", [](PyExpertStore& p) { p.store->reset_stats(); });

    py::class_<PyLayerStream>(m, "LayerStream", "Dense layers streamed through a window of buffers (csrc/layer_stream.h).")
        .def(py::init([](const std::string& path, int window, int io_threads, bool direct_io) {
                 auto p = std::make_unique<PyLayerStream>();
                 LayerStream::Options o;
                 o.window = window; o.io_threads = io_threads; o.direct_io = direct_io;
                 Status st;
                 {
                     py::gil_scoped_release release;
                     st = edge_file_open(path, &p->file);
                     if (st.is_ok()) st = LayerStream::open(*p->file, o, &p->stream);
                 }
                 check(st);
                 p->base.assign((size_t)p->stream->n_layers(), nullptr);
                 p->pins.assign((size_t)p->stream->n_layers(), 0);
                 return p;
             }),
             py::arg("path"), py::arg("window") = 2, py::arg("io_threads") = 2, py::arg("direct_io") = true)
        .def_property_readonly("n_layers", [](const PyLayerStream& p) { return p.stream->n_layers(); })
        .def_property_readonly("buffer_bytes", [](const PyLayerStream& p) { return p.stream->buffer_bytes(); })
        .def_property_readonly("total_bytes", [](const PyLayerStream& p) { return p.stream->total_bytes(); })
        .def_property_readonly("direct_io", [](const PyLayerStream& p) { return p.stream->direct_io(); })
        .def("range", [](const PyLayerStream& p, int i) { return py::make_tuple(p.stream->range_begin(i), p.stream->range_end(i)); },
             py::arg("layer"))
        .def("acquire", [](PyLayerStream& p, int i) {
                 const uint8_t* base = nullptr;
                 Status st;
                 {
                     py::gil_scoped_release release;
                     st = p.stream->acquire_layer(i, &base);
                 }
                 check(st);
                 p.base[(size_t)i] = base;
                 ++p.pins[(size_t)i];
             }, py::arg("layer"))
        .def("read", [](const PyLayerStream& p, int i, uint64_t offset, uint64_t n) {
                 if (i < 0 || i >= p.stream->n_layers() || !p.pins[(size_t)i])
                     raise_status(status_error(Code::INVALID_ARGUMENT, "read: layer is not acquired"));
                 const uint64_t b = p.stream->range_begin(i), e = p.stream->range_end(i);
                 if (offset < b || n > e - b || offset - b > e - b - n)
                     raise_status(status_error(Code::INVALID_ARGUMENT, "read: bytes outside the layer's range"));
                 return py::bytes(reinterpret_cast<const char*>(p.base[(size_t)i] + (offset - b)), (size_t)n);
             }, py::arg("layer"), py::arg("offset"), py::arg("n"), "File bytes [offset, offset+n) as held in the layer's buffer.")
        .def("release", [](PyLayerStream& p, int i) {
                 if (i >= 0 && i < p.stream->n_layers() && p.pins[(size_t)i] > 0 && --p.pins[(size_t)i] == 0) p.base[(size_t)i] = nullptr;
                 p.stream->release_layer(i);
             }, py::arg("layer"))
        .def("stats", [](const PyLayerStream& p) {
            LayerStreamStats s = p.stream->stats();
            py::dict d;
            d["hits"] = s.hits; d["misses"] = s.misses; d["reads"] = s.reads; d["bytes_read"] = s.bytes_read;
            d["retries"] = s.retries; d["io_stall_s"] = s.io_stall_s; d["io_busy_s"] = s.io_busy_s;
            return d;
        })
        .def("reset_stats", [](PyLayerStream& p) { p.stream->reset_stats(); });

    m.def("cache_simulate", [](py::array_t<int32_t, py::array::c_style | py::array::forcecast> trace, int n_experts, int64_t n_slots,
                               const std::string& policy, py::object pred, int64_t decay_tokens) {
              if (trace.ndim() != 3) raise_status(status_error(Code::INVALID_ARGUMENT, "cache_simulate: trace must be [tokens, layers, k]"));
              ExpertCache::Config c;
              c.n_layers = (int)trace.shape(1);
              c.n_used = (int)trace.shape(2);
              c.n_experts = n_experts;
              c.n_slots = n_slots;
              c.decay_tokens = decay_tokens;
              check(cache_policy_parse(policy, &c.policy));
              py::array_t<int32_t, py::array::c_style | py::array::forcecast> p;
              int n_pred = 0;
              if (!pred.is_none()) {
                  p = pred.cast<py::array_t<int32_t, py::array::c_style | py::array::forcecast>>();
                  if (p.ndim() != 3 || p.shape(0) != trace.shape(0) || p.shape(1) != trace.shape(1))
                      raise_status(status_error(Code::INVALID_ARGUMENT, "cache_simulate: pred must be [tokens, layers, n_pred]"));
                  n_pred = (int)p.shape(2);
              }
              CacheSimResult r;
              Status st;
              {
                  py::gil_scoped_release release;
                  st = cache_simulate(c, trace.shape(0), trace.data(), n_pred ? p.data() : nullptr, n_pred, &r);
              }
              check(st);
              py::dict d;
              d["hits"] = r.hits; d["misses"] = r.misses; d["evictions"] = r.evictions;
              d["prefetch_issued"] = r.prefetch_issued; d["prefetch_used"] = r.prefetch_used; d["reads"] = r.reads();
              d["hit_rate"] = r.hits + r.misses ? (double)r.hits / (double)(r.hits + r.misses) : 0.0;
              return d;
          },
          py::arg("trace"), py::arg("n_experts"), py::arg("n_slots"), py::arg("policy") = "lfru", py::arg("pred") = py::none(),
          py::arg("decay_tokens") = 64,
          "Replays a routing trace [tokens, layers, k] through the expert cache policy with instant reads (no I/O).");
}

}  // namespace bindings
}  // namespace edge
