// model.cpp — edgerun._core's files and models: file_info / verify (the C++ reader of .edge files),
// Sampler, Model (load, eval, sampling, tokenizer access, stats, memory plan) and Tokenizer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "py_model.h"
#include "backend/backend_cuda_loader.h"
#include "format.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer/tokenizer.h"

namespace edge {
namespace bindings {

namespace {

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


std::unique_ptr<PyModel> py_model_new(const std::string& path, int threads, int64_t ctx, int64_t batch, int64_t mem,
                                      const std::string& kernels, const std::string& cache_policy, int io_threads,
                                      bool moe_lowbit, float moe_lowbit_threshold, bool mem_covers_process,
                                      const std::string& device, int64_t gpu_mem,
                                      const std::vector<std::pair<std::string, float>>& adapters, int64_t n_seq,
                                      const std::string& kv, bool swa_ring) {
    ModelOptions opt;
    opt.n_seq = n_seq;
    for (const auto& a : adapters) opt.adapters.push_back(AdapterSpec{a.first, a.second});
    opt.swa_ring = swa_ring;
    opt.kv_explicit = kv != "auto";
    if (opt.kv_explicit && !kv_type_parse(kv, &opt.kv))
        check(status_error(Code::INVALID_ARGUMENT, "kv must be one of auto, f32, f16, q8, kivi4, kivi2, not '" + kv + "'"));
    opt.device = device;
    opt.gpu_mem = gpu_mem;
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

// calib_begin / calib_end: act_stats.h collected over the evals in between.
void py_model_calib_begin(PyModel& pm, bool hessian, int64_t layer_begin, int64_t layer_end, bool head_hessian,
                          bool expert_hessian) {
    ActStatsOptions o;
    o.hessian = hessian;
    o.layer_begin = layer_begin;
    o.layer_end = layer_end < 0 ? INT64_MAX : layer_end;
    o.head_hessian = head_hessian;
    o.expert_hessian = expert_hessian;
    auto s = std::make_unique<ActivationStats>(o);
    check(pm.m->set_activation_stats(s.get()));
    pm.stats = std::move(s);
}

py::list py_model_calib_end(PyModel& pm) {
    if (!pm.stats) raise_status(status_error(Code::INVALID_ARGUMENT, "calib_end: no calib_begin before it"));
    check(pm.m->set_activation_stats(nullptr));
    std::unique_ptr<ActivationStats> s = std::move(pm.stats);
    py::list out;
    for (const auto& kv : s->entries()) {
        const ActStatsEntry& e = kv.second;
        py::dict d;
        d["layer"] = e.layer;
        d["site"] = std::string(act_site_name(e.site));
        d["expert"] = e.expert;
        d["cols"] = e.cols;
        d["count"] = e.count;
        py::array_t<double> sq(e.cols);
        std::memcpy(sq.mutable_data(), e.sumsq.data(), (size_t)e.cols * sizeof(double));
        d["sumsq"] = sq;
        if (!e.xtx.empty()) {
            py::array_t<float> h({e.cols, e.cols});
            ActivationStats::xtx_symmetric(e, h.mutable_data());
            d["xtx"] = h;
        } else {
            d["xtx"] = py::none();
        }
        out.append(std::move(d));
    }
    return out;
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
        pm.logits_on_device = false;
        std::memcpy(pm.logits.data(), dst + (n - 1) * V, (size_t)V * sizeof(float));
        return out;
    }
    Status st;
    {
        py::gil_scoped_release release;
        st = pm.m->eval(t.data(), n, false, pm.logits.data());
    }
    check(st);
    pm.logits_on_device = false;
    py::array_t<float> out(V);
    std::memcpy(out.mutable_data(), pm.logits.data(), (size_t)V * sizeof(float));
    return out;
}

// Model::eval_batch: seq_ids[i] is token i's sequence; returns the logits [n_runs, vocab], one row per
// run of consecutive equal sequence ids (its last token), in order.
py::array_t<float> py_model_eval_batch(PyModel& pm, py::array_t<int32_t, py::array::c_style | py::array::forcecast> seqs,
                                       py::array_t<int32_t, py::array::c_style | py::array::forcecast> toks) {
    const int64_t n = (int64_t)toks.size(), V = pm.m->config().vocab;
    if ((int64_t)seqs.size() != n)
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("eval_batch: %lld sequence ids for %lld tokens", (long long)seqs.size(), (long long)n)));
    std::vector<int32_t> s(seqs.data(), seqs.data() + n), t(toks.data(), toks.data() + n);
    int64_t runs = 1;
    for (int64_t i = 1; i < n; ++i) runs += s[(size_t)i] != s[(size_t)i - 1];
    py::array_t<float> out({n > 0 ? runs : (int64_t)0, V});
    float* dst = out.mutable_data();
    Status st;
    {
        py::gil_scoped_release release;
        st = pm.m->eval_batch(s.data(), t.data(), n, dst, &runs);
    }
    check(st);
    return out;
}

// Evaluates `toks` (may be empty to re-sample the last logits) and samples the next token.
// Evaluates `toks` (may be empty to re-sample the last logits) and samples the next token: on the GPU
// for a one-token decode step where the model can (Model::eval_sample_device; the logits stay there), else
// on the host from the logits.
int32_t py_model_eval_sample(PyModel& pm, py::array_t<int32_t, py::array::c_style | py::array::forcecast> toks,
                             Sampler& sampler, const std::vector<int32_t>& history) {
    std::vector<int32_t> t = pm.ids(toks);
    int32_t next = -1;
    Status st;
    {
        py::gil_scoped_release release;
        bool done = false;
        if (t.size() == 1) st = pm.m->eval_sample_device(t[0], sampler, history, &next, &done);
        if (st.is_ok() && !done) {
            if (t.empty() && pm.logits_on_device)
                st = status_error(Code::INVALID_ARGUMENT, "eval_sample: the last logits were sampled on the GPU and are not kept; "
                                                          "pass the next tokens");
            if (st.is_ok() && !t.empty()) st = pm.m->eval(t.data(), (int64_t)t.size(), false, pm.logits.data());
            if (st.is_ok()) {
                std::vector<float> work = pm.logits;
                next = sampler.sample(work.data(), (int64_t)work.size(), history);
            }
        }
        if (st.is_ok()) pm.logits_on_device = done;
    }
    check(st);
    return next;
}

// Pipelined decoding (Model::eval_sample_device_launch / _wait): launch the step of `token` (-1: the pending
// pick's token), or wait for the oldest launched step's token.
bool py_model_eval_sample_launch(PyModel& pm, int32_t token, Sampler& sampler) {
    bool launched = false;
    Status st;
    {
        py::gil_scoped_release release;
        st = pm.m->eval_sample_device_launch(token, sampler, &launched);
    }
    check(st);
    if (launched) pm.logits_on_device = true;
    return launched;
}

int32_t py_model_eval_sample_wait(PyModel& pm) {
    int32_t next = -1;
    Status st;
    {
        py::gil_scoped_release release;
        st = pm.m->eval_sample_device_wait(&next);
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
        d["moe_layers"] = mc.n_moe_layers();
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

py::dict py_model_memory(const PyModel& pm) { return plan_dict(pm.m->memory_plan()); }

// Every buffer of the plan: name, kind, device, bytes (backend/planner.h).
py::list py_model_buffers(const PyModel& pm) { return plan_buffers_list(pm.m->memory_plan()); }

}  // namespace

py::dict plan_dict(const MemoryPlan& p) {
    py::dict d;
    d["resident"] = p.resident; d["kv_cache"] = p.kv_cache; d["scratch"] = p.scratch; d["io_buffers"] = p.io_buffers;
    d["expert_cache"] = p.expert_cache; d["expert_slots"] = p.expert_slots; d["slot_bytes"] = p.slot_bytes;
    d["layer_window"] = p.layer_window;
    d["process"] = p.process;
    d["activations"] = p.activations;
    d["adapters"] = p.adapters;
    d["device"] = p.device;
    d["total"] = p.total();
    return d;
}

py::list plan_buffers_list(const MemoryPlan& p) {
    py::list out;
    for (const PlanEntry& e : p.entries) {
        py::dict d;
        d["name"] = e.name; d["kind"] = mem_kind_name(e.kind); d["device"] = device_name(e.device); d["bytes"] = e.bytes;
        d["allocated"] = e.allocated_here;
        out.append(d);
    }
    return out;
}

void bind_model(py::module_& m) {
    m.def("cuda_info", []() {
        std::string device, error;
        bool exists = false;
        const std::string plugin = cuda_plugin_path(&exists);
        bool ok;
        {
            py::gil_scoped_release release;
            ok = cuda_probe(kernels_default(), &device, &error);
        }
        py::dict d;
        d["available"] = ok; d["plugin"] = plugin; d["plugin_present"] = exists;
        d["device"] = ok ? py::object(py::str(device)) : py::none();
        d["error"] = ok ? py::none() : py::object(py::str(error));
        return d;
    }, "Whether the CUDA backend opens here: the GPU it found, or why not.");
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
             py::arg("moe_lowbit") = false, py::arg("moe_lowbit_threshold") = 0.2f, py::arg("mem_covers_process") = false,
             py::arg("device") = "cpu", py::arg("gpu_mem") = 0,
             py::arg("adapters") = std::vector<std::pair<std::string, float>>{}, py::arg("n_seq") = 1,
             py::arg("kv") = "auto", py::arg("swa_ring") = true)
        .def("eval", &py_model_eval, py::arg("tokens"), py::arg("all_logits") = false,
             "Append tokens to the context; returns last-token logits [vocab] or all [n, vocab].")
        .def("calib_begin", &py_model_calib_begin, py::arg("hessian") = false, py::arg("layer_begin") = 0,
             py::arg("layer_end") = -1, py::arg("head_hessian") = true, py::arg("expert_hessian") = false,
             "Start collecting calibration statistics of every matmul input over the following evals (CPU only; "
             "hessian: also XᵀX for layers [layer_begin, layer_end) (-1: all), the head, and with expert_hessian the experts).")
        .def("calib_end", &py_model_calib_end,
             "Stop collecting; one dict per (layer, site, expert): layer (-1: head), site (attn_in attn_out ffn_in ffn_mid "
             "expert_in expert_mid head_in), expert (-1: none), cols, count (tokens), sumsq float64 [cols] (Σ x²), "
             "xtx float32 [cols, cols] (Σ xᵀx, symmetric) or None.")
        .def("eval_sample", &py_model_eval_sample, py::arg("tokens"), py::arg("sampler"), py::arg("history"))
        .def("eval_sample_launch", &py_model_eval_sample_launch, py::arg("token"), py::arg("sampler"))
        .def("eval_sample_wait", &py_model_eval_sample_wait)
        .def("pipelined", [](const PyModel& pm, const Sampler& s) { return pm.m->pipelined_sampling(s); }, py::arg("sampler"))
        .def("eval_batch", &py_model_eval_batch, py::arg("seq_ids"), py::arg("tokens"),
             "One step over several sequences (each token appended to its sequence; a sequence's tokens consecutive); "
             "returns the logits [runs, vocab] after the last token of each run of equal sequence ids.")
        .def("seq_truncate", [](PyModel& pm, int64_t s, int64_t n) { check(pm.m->seq_truncate(s, n)); }, py::arg("seq"), py::arg("n"))
        .def("seq_n_past", [](const PyModel& pm, int64_t s) {
            if (s < 0 || s >= pm.m->n_seq()) raise_status(status_error(Code::INVALID_ARGUMENT, "sequence out of range"));
            return pm.m->seq_past(s);
        }, py::arg("seq"))
        .def_property_readonly("n_seq", [](const PyModel& pm) { return pm.m->n_seq(); })
        .def_property_readonly("batch", [](const PyModel& pm) { return pm.m->batch(); })
        .def("reset", [](PyModel& pm) { pm.m->reset(); })
        .def("truncate", [](PyModel& pm, int64_t n) { check(pm.m->truncate(n)); })
        .def_property_readonly("n_past", [](const PyModel& pm) { return pm.m->n_past(); })
        .def_property_readonly("ctx", [](const PyModel& pm) { return pm.m->ctx(); })
        .def_property_readonly("ctx_from_budget", [](const PyModel& pm) { return pm.m->ctx_from_budget(); })
        .def_property_readonly("swa_ring", [](const PyModel& pm) { return pm.m->swa_ring(); })
        .def("keepable", [](const PyModel& pm, int64_t n) { return pm.m->keepable(n); })
        .def("seq_keepable", [](const PyModel& pm, int64_t s, int64_t n) { return pm.m->seq_keepable(s, n); }, py::arg("seq"), py::arg("n"))
        .def_property_readonly("kv", [](const PyModel& pm) { return std::string(kv_type_name(pm.m->kv_type())); })
        .def_property_readonly("threads", [](const PyModel& pm) { return pm.m->threads(); })
        .def_property_readonly("config", &py_model_config)
        .def_property_readonly("memory_plan", &py_model_memory)
        .def_property_readonly("memory_buffers", &py_model_buffers, "Every planned buffer: name, kind, device, bytes, allocated.")
        .def_property_readonly("device", [](const PyModel& pm) { return std::string(pm.m->backend().name()); })
        .def_property_readonly("is_moe", [](const PyModel& pm) { return pm.m->is_moe(); })
        .def_property_readonly("device_steps", [](const PyModel& pm) { return pm.m->device_steps(); },
                               "One-token steps are recorded and replayed on the device (a GPU; MoE: every expert resident there).")
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
        .def_property_readonly("base_checksum", [](const PyModel& pm) { return base_checksum(pm.m->file()); },
                               "The file's identity that adapters record (adapter.h base_checksum).")
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

}  // namespace bindings
}  // namespace edge
