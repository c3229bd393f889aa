// bindings.cpp — the only pybind11 file: exposes the C++ core as edgerun._core.
// Every Status from the core becomes a Python exception here (EdgeError and subclasses);
// long-running calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "format.h"
#include "kernels/kernels.h"
#include "model.h"
#include "quant.h"
#include "sampler.h"
#include "tokenizer/tokenizer.h"

namespace py = pybind11;
using namespace edge;

namespace {

PyObject* g_error = nullptr;        // edgerun._core.EdgeError (a ValueError)
PyObject* g_file_error = nullptr;   // BadFileError(EdgeError): truncated/corrupt file
PyObject* g_unsupported = nullptr;  // UnsupportedError(EdgeError)
PyObject* g_mem_error = nullptr;    // MemoryBudgetError(EdgeError, MemoryError)

[[noreturn]] void raise_status(const Status& st) {
    PyObject* type = g_error;
    switch (st.code) {
        case Code::BAD_FILE: type = g_file_error; break;
        case Code::UNSUPPORTED: type = g_unsupported; break;
        case Code::OUT_OF_MEMORY: type = g_mem_error; break;
        case Code::IO_ERROR: type = PyExc_OSError; break;
        default: break;
    }
    PyErr_SetString(type, st.msg.c_str());
    throw py::error_already_set();
}

void check(const Status& st) {
    if (!st.is_ok()) raise_status(st);
}

// ---- files and models ----

py::object meta_to_py(const MetaValue& v) {
    switch (v.type) {
        case META_I64: return py::int_(v.i);
        case META_F64: return py::float_(v.f);
        case META_STR: return py::str(v.s);
        case META_ARR_I64: return py::cast(v.ai);
        case META_ARR_F32: return py::cast(v.af);
        case META_ARR_STR: {
            py::list l;
            for (const std::string& s : v.as) l.append(py::bytes(s));  // tokens may hold raw bytes
            return std::move(l);
        }
    }
    return py::none();
}

// Opens and validates a file with the C++ reader; returns {"metadata": {...}, "tensors": [...]}.
py::dict py_file_info(const std::string& path) {
    std::unique_ptr<EdgeFile> f;
    check(edge_file_open(path, &f));
    py::dict meta;
    for (const auto& kv : f->meta()) meta[py::str(kv.first)] = meta_to_py(kv.second);
    py::list tensors;
    for (const TensorInfo& t : f->tensors()) {
        py::dict d;
        d["name"] = t.name;
        d["dtype"] = dtype_traits(t.dtype).name;
        d["shape"] = py::cast(t.shape);
        d["offset"] = t.offset;
        d["nbytes"] = t.nbytes;
        d["crc32"] = t.crc32;
        tensors.append(d);
    }
    py::dict out;
    out["metadata"] = meta;
    out["tensors"] = tensors;
    out["size"] = f->size();
    return out;
}

std::string py_verify(const std::string& path) {
    std::unique_ptr<EdgeFile> f;
    check(edge_file_open(path, &f));
    std::string report;
    Status st;
    {
        py::gil_scoped_release release;
        st = f->verify(&report);
    }
    check(st);
    return report;
}

struct PyModel {
    std::unique_ptr<Model> m;
    std::vector<float> logits;  // last-token logits of the latest eval

    const Tokenizer& tok() const {
        if (!m->tokenizer())
            raise_status(status_error(Code::UNSUPPORTED, m->file().path() + " has no tokenizer; use token ids"));
        return *m->tokenizer();
    }
    std::vector<int32_t> ids(py::array_t<int32_t, py::array::c_style | py::array::forcecast> a) const {
        return std::vector<int32_t>(a.data(), a.data() + a.size());
    }
};

std::unique_ptr<PyModel> py_model_new(const std::string& path, int threads, int64_t ctx, int64_t batch, int64_t mem,
                                      const std::string& kernels, const std::string& cache_policy, int io_threads,
                                      bool moe_lowbit, float moe_lowbit_threshold, bool mem_covers_process) {
    ModelOptions opt;
    opt.budget_covers_process = mem_covers_process;
    opt.threads = threads;
    opt.ctx = ctx;
    opt.batch = batch;
    opt.mem_budget = mem;
    opt.kernels = kernels;
    opt.cache_policy = cache_policy;
    opt.io_threads = io_threads;
    opt.moe_lowbit = moe_lowbit;
    opt.moe_lowbit_threshold = moe_lowbit_threshold;
    auto pm = std::make_unique<PyModel>();
    Status st;
    {
        py::gil_scoped_release release;
        st = Model::load(path, opt, &pm->m);
    }
    check(st);
    pm->logits.resize((size_t)pm->m->config().vocab);
    return pm;
}

py::array_t<float> py_model_eval(PyModel& pm, py::array_t<int32_t, py::array::c_style | py::array::forcecast> toks,
                                 bool all_logits) {
    std::vector<int32_t> t = pm.ids(toks);
    int64_t V = pm.m->config().vocab, n = (int64_t)t.size();
    if (n == 0) raise_status(status_error(Code::INVALID_ARGUMENT, "eval: no tokens"));
    if (all_logits) {
        py::array_t<float> out({n, V});
        float* dst = out.mutable_data();
        Status st;
        {
            py::gil_scoped_release release;
            st = pm.m->eval(t.data(), n, true, dst);
        }
        check(st);
        std::memcpy(pm.logits.data(), dst + (n - 1) * V, (size_t)V * sizeof(float));
        return out;
    }
    Status st;
    {
        py::gil_scoped_release release;
        st = pm.m->eval(t.data(), n, false, pm.logits.data());
    }
    check(st);
    py::array_t<float> out(V);
    std::memcpy(out.mutable_data(), pm.logits.data(), (size_t)V * sizeof(float));
    return out;
}

// Evaluates `toks` (may be empty to re-sample the last logits) and samples the next token.
int32_t py_model_eval_sample(PyModel& pm, py::array_t<int32_t, py::array::c_style | py::array::forcecast> toks,
                             Sampler& sampler, const std::vector<int32_t>& history) {
    std::vector<int32_t> t = pm.ids(toks);
    int32_t next;
    Status st;
    {
        py::gil_scoped_release release;
        if (!t.empty()) st = pm.m->eval(t.data(), (int64_t)t.size(), false, pm.logits.data());
        std::vector<float> work;
        if (st.is_ok()) {
            work = pm.logits;
            next = sampler.sample(work.data(), (int64_t)work.size(), history);
        }
    }
    check(st);
    return next;
}

py::dict py_model_config(const PyModel& pm) {
    const LlmConfig& c = pm.m->config();
    py::dict d;
    d["n_layers"] = c.n_layers; d["d_model"] = c.d_model; d["n_heads"] = c.n_heads; d["n_kv_heads"] = c.n_kv_heads;
    d["head_dim"] = c.head_dim; d["d_ff"] = c.d_ff; d["vocab_size"] = c.vocab; d["max_ctx"] = c.max_ctx;
    d["rope_theta"] = c.rope_theta; d["rms_eps"] = c.rms_eps; d["qkv_bias"] = c.qkv_bias; d["qk_norm"] = c.qk_norm;
    d["tied_head"] = c.tied_head;
    d["architecture"] = c.arch;
    const MoeConfig& mc = pm.m->moe_config();
    if (mc.n_experts > 0) {
        d["n_experts"] = mc.n_experts; d["n_experts_used"] = mc.n_used; d["d_expert"] = mc.d_expert;
        int64_t n = 0;
        for (uint8_t v : mc.is_moe) n += v;
        d["moe_layers"] = n;
    }
    return d;
}

// ExpertStats fields plus hit_rate = hits / (hits + misses) and recall = predicted_true / true_total
// (None until something was counted).
py::dict py_model_moe_stats(const PyModel& pm) {
    ExpertStats s = pm.m->moe_stats();
    py::dict d;
    d["hits"] = s.hits; d["misses"] = s.misses; d["prefetch_issued"] = s.prefetch_issued;
    d["prefetch_used"] = s.prefetch_used; d["evictions"] = s.evictions; d["reads"] = s.reads;
    d["bytes_read"] = s.bytes_read; d["lowbit_serves"] = s.lowbit_serves; d["retries"] = s.retries;
    d["io_stall_s"] = s.io_stall_s; d["io_busy_s"] = s.io_busy_s;
    d["true_total"] = s.true_total; d["predicted_true"] = s.predicted_true;
    int64_t acq = s.hits + s.misses;
    d["hit_rate"] = acq ? py::object(py::float_((double)s.hits / (double)acq)) : py::none();
    d["recall"] = s.true_total ? py::object(py::float_((double)s.predicted_true / (double)s.true_total)) : py::none();
    return d;
}

py::dict py_model_memory(const PyModel& pm) {
    const MemoryPlan& p = pm.m->memory_plan();
    py::dict d;
    d["resident"] = p.resident; d["kv_cache"] = p.kv_cache; d["scratch"] = p.scratch; d["io_buffers"] = p.io_buffers;
    d["expert_cache"] = p.expert_cache; d["expert_slots"] = p.expert_slots; d["slot_bytes"] = p.slot_bytes;
    d["layer_window"] = p.layer_window;
    d["process"] = p.process;
    d["total"] = p.total();
    return d;
}

const KernelTable* table_or_raise(const std::string& level) {
    const KernelTable* t = level.empty() ? kernels_default() : kernels_for(level.c_str());
    if (!t) raise_status(status_error(Code::INVALID_ARGUMENT, "kernel level '" + level + "' is not supported on this CPU"));
    return t;
}

uint32_t dtype_or_raise(int dtype) {
    if (dtype < 0 || !dtype_valid((uint32_t)dtype))
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("unknown dtype id %d", dtype)));
    return (uint32_t)dtype;
}

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

// ---- kernel access for tests: run any level's implementation on numpy data ----

py::array_t<float> py_dequantize(int dtype, py::bytes data, int64_t n, const std::string& level) {
    uint32_t dt = dtype_or_raise(dtype);
    const KernelTable* t = table_or_raise(level);
    std::string buf = data;
    size_t need = dtype_row_bytes(dt, n);
    if (need == 0 || buf.size() < need)
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("dequantize: %lld elements need %zu bytes of %s, got %zu",
                                                                 (long long)n, need, dtype_traits(dt).name, buf.size())));
    if (!t->dequant[dt]) raise_status(status_error(Code::UNSUPPORTED, "no dequantize kernel for this dtype"));
    py::array_t<float> out(n);
    t->dequant[dt](buf.data(), out.mutable_data(), n);
    return out;
}

py::bytes py_quantize_q8x(f32_array x, const std::string& level) {
    const KernelTable* t = table_or_raise(level);
    int64_t n = (int64_t)x.size();
    if (n % 32) raise_status(status_error(Code::INVALID_ARGUMENT, "quantize_q8x: length must be a multiple of 32"));
    std::vector<block_q8x> y((size_t)(n / 32));
    t->quantize_q8x(x.data(), y.data(), n);
    return py::bytes(reinterpret_cast<const char*>(y.data()), y.size() * sizeof(block_q8x));
}

// Y[ncols, rows] = X[ncols, n] · W[rows, n]^T with the level's kernels. `misalign` shifts W, X and Y
// by that many bytes inside their buffers so tests can exercise unaligned pointers.
py::array_t<float> py_gemm(int dtype, py::bytes wdata, int64_t rows, int64_t n, f32_array x,
                           const std::string& level, int misalign) {
    uint32_t dt = dtype_or_raise(dtype);
    const KernelTable* t = table_or_raise(level);
    const DTypeTraits& tr = dtype_traits(dt);
    size_t rb = dtype_row_bytes(dt, n);
    std::string w = wdata;
    if (rb == 0 || n % 32 || w.size() != rb * (size_t)rows)
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("gemm: %lld×%lld %s needs %zu bytes, got %zu", (long long)rows,
                                                                 (long long)n, tr.name, rb * (size_t)rows, w.size())));
    if (x.ndim() != 2 || x.shape(1) != n) raise_status(status_error(Code::INVALID_ARGUMENT, "gemm: x must be [ncols, n]"));
    if (!t->gemm[dt]) raise_status(status_error(Code::UNSUPPORTED, std::string("no gemm kernel for ") + tr.name));
    int64_t ncols = x.shape(0);
    misalign = misalign & 15;
    std::vector<char> wbuf(w.size() + 64);
    char* wp = wbuf.data() + misalign;
    std::memcpy(wp, w.data(), w.size());
    std::vector<char> xbuf;
    const void* xp;
    int64_t x_stride;
    if (tr.int_dot) {
        xbuf.resize((size_t)ncols * (size_t)(n / 32) * sizeof(block_q8x) + 64);
        block_q8x* q = reinterpret_cast<block_q8x*>(xbuf.data() + misalign);
        for (int64_t c = 0; c < ncols; ++c) t->quantize_q8x(x.data() + c * n, q + c * (n / 32), n);
        xp = q;
        x_stride = n / 32;
    } else {
        xbuf.resize((size_t)(ncols * n) * sizeof(float) + 64);
        std::memcpy(xbuf.data() + misalign, x.data(), (size_t)(ncols * n) * sizeof(float));
        xp = xbuf.data() + misalign;
        x_stride = n;
    }
    std::vector<char> ybuf((size_t)(ncols * rows) * sizeof(float) + 64);
    float* yp = reinterpret_cast<float*>(ybuf.data() + misalign);
    {
        py::gil_scoped_release release;
        t->gemm[dt](wp, (int64_t)rb, rows, n, xp, x_stride, ncols, yp, rows);
    }
    py::array_t<float> out({ncols, rows});
    std::memcpy(out.mutable_data(), yp, (size_t)(ncols * rows) * sizeof(float));
    return out;
}

// out[head_dim] = attention of q[head_dim] over k, v [n_pos, stride] (first head_dim columns of each row).
py::array_t<float> py_attention(f32_array q, f32_array k, f32_array v, const std::string& level, int64_t p_begin) {
    const KernelTable* t = table_or_raise(level);
    if (q.ndim() != 1 || k.ndim() != 2 || v.ndim() != 2 || k.shape(0) != v.shape(0) || k.shape(1) != v.shape(1) ||
        q.shape(0) > k.shape(1) || k.shape(0) < 1 || q.shape(0) < 1)
        raise_status(status_error(Code::INVALID_ARGUMENT, "attention: q [Dh], k and v [n_pos, stride >= Dh]"));
    int64_t dh = q.shape(0), n_pos = k.shape(0), stride = k.shape(1);
    if (p_begin < 0 || p_begin >= n_pos) raise_status(status_error(Code::INVALID_ARGUMENT, "attention: need 0 <= p_begin < n_pos"));
    // K in the cache's tiled, transposed layout; unused lanes of the last tile hold NaN
    const int64_t tiles = (n_pos + kKTile - 1) / kKTile;
    std::vector<float> kt((size_t)(tiles * kKTile * dh), NAN), scratch((size_t)n_pos);
    for (int64_t p = 0; p < n_pos; ++p)
        for (int64_t i = 0; i < dh; ++i) kt[(size_t)((p / kKTile) * kKTile * dh + i * kKTile + p % kKTile)] = k.data()[p * stride + i];
    py::array_t<float> out(dh);
    t->attention(q.data(), kt.data(), v.data(), stride, p_begin, n_pos, dh, scratch.data(), out.mutable_data());
    return out;
}

py::array_t<float> py_silu_mul(f32_array g, f32_array u, const std::string& level) {
    const KernelTable* t = table_or_raise(level);
    if (g.ndim() != 1 || u.ndim() != 1 || g.shape(0) != u.shape(0))
        raise_status(status_error(Code::INVALID_ARGUMENT, "silu_mul: g and u must be 1-D of one length"));
    py::array_t<float> out(g.shape(0));
    t->silu_mul(g.data(), u.data(), g.shape(0), out.mutable_data());
    return out;
}

py::dict py_kernel_table(const std::string& level) {
    const KernelTable* t = table_or_raise(level);
    py::dict d, gemm, deq;
    for (uint32_t i = 0; i < EDGE_DTYPE_COUNT; ++i) {
        gemm[dtype_traits(i).name] = t->gemm[i] ? t->gemm_impl[i] : "none";
        deq[dtype_traits(i).name] = t->dequant[i] ? t->dequant_impl[i] : "none";
    }
    d["level"] = t->level;
    d["gemm"] = gemm;
    d["dequant"] = deq;
    d["quantize_q8x"] = t->quantize_q8x_impl;
    d["attention"] = t->attention_impl;
    d["silu_mul"] = t->silu_mul_impl;
    return d;
}

}  // namespace

// === expert store bindings (owned by the streaming-engine work; keep this block self-contained) ===
// Test/benchmark-facing access to csrc/expert_store.h, csrc/layer_stream.h and the cache-policy simulator.
#include "expert_cache_policy.h"
#include "expert_store.h"
#include "layer_stream.h"

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
// === end expert store bindings ===

PYBIND11_MODULE(_core, m) {
    m.doc() = "edgerun C++ core";

    static py::exception<void> err(m, "EdgeError", PyExc_ValueError);
    g_error = err.ptr();
    static py::exception<void> file_err(m, "BadFileError", g_error);
    g_file_error = file_err.ptr();
    static py::exception<void> unsup(m, "UnsupportedError", g_error);
    g_unsupported = unsup.ptr();
    static py::exception<void> mem_err(m, "MemoryBudgetError", g_error);
    g_mem_error = mem_err.ptr();

    // dtypes
    py::dict dtypes;
    for (uint32_t i = 0; i < EDGE_DTYPE_COUNT; ++i) {
        const DTypeTraits& t = dtype_traits(i);
        dtypes[t.name] = py::make_tuple(i, t.block, t.block_bytes, t.int_dot);
    }
    m.attr("DTYPES") = dtypes;  // name -> (id, block, block_bytes, int_dot)

    // kernels
    m.def("kernel_levels", []() {
        const char* names[16];
        int n = kernels_levels(names, 16);
        return std::vector<std::string>(names, names + n);
    }, "Kernel levels this CPU supports, lowest first.");
    m.def("kernel_default_level", []() { return std::string(kernels_default()->level); },
          "The level used by default ($EDGE_KERNELS caps it).");
    m.def("kernel_table", &py_kernel_table, py::arg("level") = "", "Which implementation fills each slot.");
    m.def("dequantize", &py_dequantize, py::arg("dtype"), py::arg("data"), py::arg("n"), py::arg("level") = "ref");
    m.def("silu_mul", &py_silu_mul, py::arg("g"), py::arg("u"), py::arg("level") = "ref");
    m.def("attention", &py_attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("level") = "ref", py::arg("p_begin") = 0);
    m.def("quantize_q8x", &py_quantize_q8x, py::arg("x"), py::arg("level") = "ref");
    m.def("gemm", &py_gemm, py::arg("dtype"), py::arg("w"), py::arg("rows"), py::arg("n"), py::arg("x"),
          py::arg("level") = "ref", py::arg("misalign") = 0);

    bind_expert_store(m);  // expert store / layer stream / cache simulator (its own section above)

    // files
    m.def("file_info", &py_file_info, py::arg("path"), "Open and validate an .edge file with the C++ reader.");
    m.def("verify", &py_verify, py::arg("path"), "Check every tensor checksum; raises BadFileError on a mismatch.");

    // sampling
    py::class_<Sampler>(m, "Sampler")
        .def(py::init([](float temperature, int top_k, float top_p, float min_p, float repeat_penalty, int repeat_last_n,
                         uint64_t seed) {
                 SamplerParams p;
                 p.temperature = temperature; p.top_k = top_k; p.top_p = top_p; p.min_p = min_p;
                 p.repeat_penalty = repeat_penalty; p.repeat_last_n = repeat_last_n; p.seed = seed;
                 return std::make_unique<Sampler>(p);
             }),
             py::arg("temperature") = 0.8f, py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.05f,
             py::arg("repeat_penalty") = 1.0f, py::arg("repeat_last_n") = 64, py::arg("seed") = 0)
        .def("sample", [](Sampler& s, py::array_t<float, py::array::c_style | py::array::forcecast> logits,
                          const std::vector<int32_t>& history) {
            std::vector<float> w(logits.data(), logits.data() + logits.size());
            return s.sample(w.data(), (int64_t)w.size(), history);
        }, py::arg("logits"), py::arg("history") = std::vector<int32_t>{});

    // models
    py::class_<PyModel>(m, "Model")
        .def(py::init(&py_model_new), py::arg("path"), py::arg("threads") = 0, py::arg("ctx") = 0, py::arg("batch") = 128,
             py::arg("mem") = 0, py::arg("kernels") = "", py::arg("cache_policy") = "lfru", py::arg("io_threads") = 2,
             py::arg("moe_lowbit") = false, py::arg("moe_lowbit_threshold") = 0.2f, py::arg("mem_covers_process") = false)
        .def("eval", &py_model_eval, py::arg("tokens"), py::arg("all_logits") = false,
             "Append tokens to the context; returns last-token logits [vocab] or all [n, vocab].")
        .def("eval_sample", &py_model_eval_sample, py::arg("tokens"), py::arg("sampler"), py::arg("history"))
        .def("reset", [](PyModel& pm) { pm.m->reset(); })
        .def("truncate", [](PyModel& pm, int64_t n) { check(pm.m->truncate(n)); })
        .def_property_readonly("n_past", [](const PyModel& pm) { return pm.m->n_past(); })
        .def_property_readonly("ctx", [](const PyModel& pm) { return pm.m->ctx(); })
        .def_property_readonly("threads", [](const PyModel& pm) { return pm.m->threads(); })
        .def_property_readonly("config", &py_model_config)
        .def_property_readonly("memory_plan", &py_model_memory)
        .def_property_readonly("is_moe", [](const PyModel& pm) { return pm.m->is_moe(); })
        .def_property_readonly("moe_stats", &py_model_moe_stats)
        .def("moe_reset_stats", [](PyModel& pm) { pm.m->moe_reset_stats(); })
        .def_property_readonly("layer_stream_stats", [](const PyModel& pm) -> py::object {
            if (!pm.m->layers_streamed()) return py::none();
            LayerStreamStats s = pm.m->layer_stream_stats();
            py::dict d;
            d["hits"] = s.hits; d["misses"] = s.misses; d["reads"] = s.reads; d["bytes_read"] = s.bytes_read;
            d["retries"] = s.retries; d["io_stall_s"] = s.io_stall_s; d["io_busy_s"] = s.io_busy_s;
            return std::move(d);
        }, "Dense layers streamed from disk (the model exceeds --mem): window statistics; None otherwise.")
        .def_property_readonly("kernel_level", [](const PyModel& pm) { return std::string(pm.m->kernels().level); })
        .def_property_readonly("path", [](const PyModel& pm) { return pm.m->file().path(); })
        .def("metadata", [](const PyModel& pm, const std::string& key) -> py::object {
            const MetaValue* v = pm.m->file().get(key);
            return v ? meta_to_py(*v) : py::none();
        }, py::arg("key"))
        .def_property_readonly("has_tokenizer", [](const PyModel& pm) { return pm.m->tokenizer() != nullptr; })
        .def("tokenize", [](const PyModel& pm, const std::string& text, py::object add_bos, bool parse_special) {
            const Tokenizer& t = pm.tok();
            bool bos = add_bos.is_none() ? t.spec().add_bos : add_bos.cast<bool>();
            std::vector<int32_t> ids;
            {
                py::gil_scoped_release release;
                ids = t.encode(text, bos, parse_special);
            }
            return ids;
        }, py::arg("text"), py::arg("add_bos") = py::none(), py::arg("parse_special") = true)
        .def("token_bytes", [](const PyModel& pm, int32_t id, bool special) {
            const Tokenizer& t = pm.tok();
            if (id < 0 || id >= t.n_vocab()) raise_status(status_error(Code::INVALID_ARGUMENT, "token id out of range"));
            return py::bytes(t.token_bytes(id, special));
        }, py::arg("id"), py::arg("special") = false)
        .def("detokenize", [](const PyModel& pm, const std::vector<int32_t>& ids, bool special) {
            const Tokenizer& t = pm.tok();
            for (int32_t id : ids)
                if (id < 0 || id >= t.n_vocab()) raise_status(status_error(Code::INVALID_ARGUMENT, "token id out of range"));
            return py::bytes(t.decode(ids, special));
        }, py::arg("ids"), py::arg("special") = false)
        .def_property_readonly("bos_id", [](const PyModel& pm) { return pm.m->tokenizer() ? pm.m->tokenizer()->spec().bos_id : -1; })
        .def_property_readonly("eos_id", [](const PyModel& pm) { return pm.m->tokenizer() ? pm.m->tokenizer()->spec().eos_id : -1; });

    // === tokenizer bindings (owned by the tokenizer work; keep this block self-contained) ===
    {
        // Tokenizer(model, pre, tokens, scores, types, merges, bos_id=-1, ...): raises EdgeError on a bad
        // spec. Token texts may be str or bytes (UTF-8); so may the text given to encode.
        py::class_<Tokenizer, std::unique_ptr<Tokenizer>> tok(m, "Tokenizer", "Text <-> token ids (see csrc/tokenizer/tokenizer.h).");
        tok.def(py::init([](const std::string& model, const std::string& pre, std::vector<std::string> tokens,
                            std::vector<float> scores, std::vector<int32_t> types, std::vector<std::string> merges,
                            int64_t bos_id, int64_t eos_id, int64_t unk_id, int64_t pad_id, bool add_bos) {
                    TokenizerSpec spec;
                    spec.model = model;
                    spec.pre = pre;
                    spec.tokens = std::move(tokens);
                    spec.scores = std::move(scores);
                    spec.types = std::move(types);
                    spec.merges = std::move(merges);
                    const int64_t ids[4] = {bos_id, eos_id, unk_id, pad_id};
                    for (int64_t id : ids)  // the core checks the range against the vocabulary
                        if (id < INT32_MIN || id > INT32_MAX)
                            raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("tokenizer: special id %lld out of range", (long long)id)));
                    spec.bos_id = (int32_t)bos_id, spec.eos_id = (int32_t)eos_id, spec.unk_id = (int32_t)unk_id, spec.pad_id = (int32_t)pad_id;
                    spec.add_bos = add_bos;
                    std::unique_ptr<Tokenizer> t;
                    Status st;
                    {
                        py::gil_scoped_release release;
                        st = Tokenizer::create(spec, &t);
                    }
                    check(st);
                    return t;
                }),
                py::arg("model"), py::arg("pre"), py::arg("tokens"), py::arg("scores"), py::arg("types"), py::arg("merges"),
                py::arg("bos_id") = -1, py::arg("eos_id") = -1, py::arg("unk_id") = -1, py::arg("pad_id") = -1,
                py::arg("add_bos") = false);
        tok.def("encode", [](const Tokenizer& t, const std::string& text, bool add_bos, bool parse_special) {
                    std::vector<int32_t> ids;
                    {
                        py::gil_scoped_release release;
                        ids = t.encode(text, add_bos, parse_special);
                    }
                    return ids;
                },
                py::arg("text"), py::arg("add_bos") = false, py::arg("parse_special") = true,
                "Token ids of UTF-8 text (str or bytes); add_bos prepends bos_id; parse_special matches control tokens.");
        auto check_id = [](const Tokenizer& t, int64_t id) {
            if (id < 0 || id >= t.n_vocab())
                raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("token id %lld is outside the vocabulary of %d tokens",
                                                                         (long long)id, (int)t.n_vocab())));
        };
        tok.def("decode", [check_id](const Tokenizer& t, const std::vector<int64_t>& ids, bool special) {
                    std::vector<int32_t> v;
                    v.reserve(ids.size());
                    for (int64_t id : ids) {
                        check_id(t, id);
                        v.push_back((int32_t)id);
                    }
                    std::string s = t.decode(v, special);
                    PyObject* o = PyUnicode_DecodeUTF8(s.data(), (Py_ssize_t)s.size(), "replace");
                    if (!o) throw py::error_already_set();
                    return py::reinterpret_steal<py::str>(o);
                },
                py::arg("ids"), py::arg("special") = false, "Text of the ids (invalid UTF-8 replaced by U+FFFD).");
        tok.def("token_bytes", [check_id](const Tokenizer& t, int64_t id, bool special) {
                    check_id(t, id);
                    return py::bytes(t.token_bytes((int32_t)id, special));
                },
                py::arg("id"), py::arg("special") = false, "Raw bytes one token contributes to the text.");
        tok.def_property_readonly("n_vocab", &Tokenizer::n_vocab);
        tok.def_property_readonly("model", [](const Tokenizer& t) { return t.spec().model; });
        tok.def_property_readonly("pre", [](const Tokenizer& t) { return t.spec().pre; });
        tok.def_property_readonly("bos_id", [](const Tokenizer& t) { return t.spec().bos_id; });
        tok.def_property_readonly("eos_id", [](const Tokenizer& t) { return t.spec().eos_id; });
        tok.def_property_readonly("unk_id", [](const Tokenizer& t) { return t.spec().unk_id; });
        tok.def_property_readonly("pad_id", [](const Tokenizer& t) { return t.spec().pad_id; });
        tok.def_property_readonly("add_bos", [](const Tokenizer& t) { return t.spec().add_bos; });
    }
    // === end tokenizer bindings ===
}
