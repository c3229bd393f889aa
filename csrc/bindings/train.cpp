// train.cpp — edgerun._core.Trainer (csrc/train/trainer.h; the API of docs/TRAINING.md): a trainer over a
// loaded _core.Model (or an edgerun.Model, through its _m), kept alive as long as the trainer.
// tokens / mask: int32 / uint8 arrays [B, S] (a 1-D array is one sequence). Parameters, gradients and
// optimizer moments cross as dicts of float32 arrays by name (copies): lora_a [r, in], lora_b [out, r],
// bias [out]. Long calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "py_model.h"
#include "train/trainer.h"

namespace edge {
namespace bindings {

namespace {

using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using U8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

struct Batch {
    I32 tokens;
    U8 mask;
    int64_t B = 0, S = 0;
};

Batch batch_of(const I32& tokens, const U8& mask) {
    Batch b{tokens, mask};
    if (tokens.ndim() == 1) {
        b.B = 1, b.S = tokens.shape(0);
    } else if (tokens.ndim() == 2) {
        b.B = tokens.shape(0), b.S = tokens.shape(1);
    } else {
        raise_status(status_error(Code::INVALID_ARGUMENT, "tokens must be [batch, seq] (or one sequence [seq])"));
    }
    if (mask.size() != tokens.size() || mask.ndim() != tokens.ndim())
        raise_status(status_error(Code::INVALID_ARGUMENT, "mask must have the shape of tokens"));
    return b;
}

PyModel& model_of(py::object obj) {
    if (!py::isinstance<PyModel>(obj) && py::hasattr(obj, "_m")) obj = obj.attr("_m");  // edgerun.Model
    return obj.cast<PyModel&>();
}

py::array_t<float> tensor_array(const TrainParam& p, const float* base) {
    std::vector<py::ssize_t> shape = p.part == 2 ? std::vector<py::ssize_t>{(py::ssize_t)p.rows}
                                                 : std::vector<py::ssize_t>{(py::ssize_t)p.rows, (py::ssize_t)p.cols};
    py::array_t<float> a(shape);
    std::memcpy(a.mutable_data(), base + p.offset, (size_t)p.count() * sizeof(float));
    return a;
}

py::dict named(const Trainer& t, const float* base) {
    py::dict d;
    for (const TrainParam& p : t.params()) d[py::str(p.name)] = tensor_array(p, base);
    return d;
}

// Copies dict[name] into base for every parameter; the names and shapes must be exactly the trainer's.
void load_named(const Trainer& t, const py::dict& d, float* base, const char* what) {
    if ((size_t)py::len(d) != t.params().size()) {
        std::string extra;
        for (auto kv : d) {
            const std::string n = py::str(kv.first);
            bool found = false;
            for (const TrainParam& p : t.params()) found |= p.name == n;
            if (!found) extra += (extra.empty() ? "" : ", ") + n;
        }
        raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("%s: %zu tensors given, the trainer has %zu%s%s", what,
                                                                 (size_t)py::len(d), t.params().size(),
                                                                 extra.empty() ? "" : "; unknown: ", extra.c_str())));
    }
    for (const TrainParam& p : t.params()) {
        if (!d.contains(p.name)) raise_status(status_error(Code::INVALID_ARGUMENT, std::string(what) + ": missing '" + p.name + "'"));
        F32 a = d[py::str(p.name)].cast<F32>();
        const bool ok = p.part == 2 ? (a.ndim() == 1 && a.shape(0) == p.rows)
                                    : (a.ndim() == 2 && a.shape(0) == p.rows && a.shape(1) == p.cols);
        if (!ok)
            raise_status(status_error(Code::INVALID_ARGUMENT, strfmt("%s: '%s' must be %s", what, p.name.c_str(),
                                                                     p.part == 2 ? strfmt("[%lld]", (long long)p.rows).c_str()
                                                                                 : strfmt("[%lld, %lld]", (long long)p.rows, (long long)p.cols).c_str())));
    }
    for (const TrainParam& p : t.params()) {
        F32 a = d[py::str(p.name)].cast<F32>();
        std::memcpy(base + p.offset, a.data(), (size_t)p.count() * sizeof(float));
    }
}

std::unique_ptr<Trainer> trainer_new(py::object model, const std::string& method, int64_t rank, float alpha,
                                     const std::vector<std::string>& targets, uint64_t seed, const std::string& optimizer,
                                     float lr, std::pair<float, float> betas, float eps, float weight_decay, int64_t batch,
                                     int64_t seq, int64_t mem_budget, float mezo_eps, py::object params, int threads,
                                     int64_t vocab_chunk, float momentum, const std::string& dtype) {
    PyModel& pm = model_of(model);
    TrainOptions o;
    o.method = method, o.rank = rank, o.alpha = alpha, o.targets = targets, o.seed = seed, o.optimizer = optimizer;
    o.lr = lr, o.beta1 = betas.first, o.beta2 = betas.second, o.eps = eps, o.weight_decay = weight_decay;
    o.batch = batch, o.seq = seq, o.mem_budget = mem_budget, o.mezo_eps = mezo_eps, o.threads = threads;
    o.vocab_chunk = vocab_chunk, o.momentum = momentum, o.dtype = dtype;
    if (!params.is_none()) {
        o.has_params = true;
        o.params = params.cast<std::vector<std::string>>();
    }
    std::unique_ptr<Trainer> t;
    Status st;
    {
        py::gil_scoped_release release;
        st = Trainer::create(pm.m.get(), o, &t);
    }
    check(st);
    return t;
}

py::tuple run_batch(Trainer& t, const I32& tokens, const U8& mask, bool grads) {
    Batch b = batch_of(tokens, mask);
    double loss = 0;
    int64_t n = 0;
    Status st;
    {
        py::gil_scoped_release release;
        st = grads ? t.forward_backward(b.tokens.data(), b.mask.data(), b.B, b.S, &loss, &n)
                   : t.eval_loss(b.tokens.data(), b.mask.data(), b.B, b.S, &loss, &n);
    }
    check(st);
    return py::make_tuple(loss, n);
}

}  // namespace

void bind_train(py::module_& m) {
    py::class_<Trainer>(m, "Trainer", "Training of LoRA / bias parameters on a frozen model (docs/TRAINING.md).")
        .def(py::init(&trainer_new), py::arg("model"), py::arg("method") = "lora", py::arg("rank") = 8,
             py::arg("alpha") = 16.0f, py::arg("targets") = std::vector<std::string>{"q", "v"}, py::arg("seed") = 0,
             py::arg("optimizer") = "adamw", py::arg("lr") = 1e-4f, py::arg("betas") = std::make_pair(0.9f, 0.999f),
             py::arg("eps") = 1e-8f, py::arg("weight_decay") = 0.0f, py::arg("batch") = 4, py::arg("seq") = 256,
             py::arg("mem_budget") = 0, py::arg("mezo_eps") = 1e-3f, py::arg("params") = py::none(), py::arg("threads") = 0,
             py::arg("vocab_chunk") = 1024, py::arg("momentum") = 0.0f, py::arg("dtype") = "f32",
             py::keep_alive<1, 2>())
        .def("forward_backward", [](Trainer& t, const I32& tokens, const U8& mask) { return run_batch(t, tokens, mask, true); },
             py::arg("tokens"), py::arg("mask"), "Adds d loss_sum / dθ to the gradients; returns (loss_sum, n_scored).")
        .def("eval_loss", [](Trainer& t, const I32& tokens, const U8& mask) { return run_batch(t, tokens, mask, false); },
             py::arg("tokens"), py::arg("mask"), "(loss_sum, n_scored) without gradients.")
        .def("optimizer_step", [](Trainer& t, py::object lr) {
            const float v = lr.is_none() ? 0.f : lr.cast<float>();
            Status st;
            {
                py::gil_scoped_release release;
                st = t.optimizer_step(v);
            }
            check(st);
        }, py::arg("lr") = py::none(), "One update with the accumulated gradients / scored positions; zeroes them.")
        .def("mezo_step", [](Trainer& t, const I32& tokens, const U8& mask, float lr, uint64_t step_seed) {
            Batch b = batch_of(tokens, mask);
            double loss = 0;
            Status st;
            {
                py::gil_scoped_release release;
                st = t.mezo_step(b.tokens.data(), b.mask.data(), b.B, b.S, lr, step_seed, &loss);
            }
            check(st);
            return loss;
        }, py::arg("tokens"), py::arg("mask"), py::arg("lr"), py::arg("step_seed"))
        .def("mezo_noise", [](const Trainer& t, uint64_t step_seed) {
            std::vector<float> z((size_t)t.n_elements());
            t.mezo_noise(step_seed, z.data());
            return named(t, z.data());
        }, py::arg("step_seed"), "The z of mezo_step(step_seed) by parameter name.")
        .def("parameters", [](const Trainer& t) { return named(t, const_cast<Trainer&>(t).master_data()); })
        .def("gradients", [](const Trainer& t) {
            if (!t.grad_data()) raise_status(status_error(Code::INVALID_ARGUMENT, "method mezo has no gradients"));
            return named(t, t.grad_data());
        })
        .def("load_parameters", [](Trainer& t, const py::dict& d) {
            load_named(t, d, t.master_data(), "load_parameters");
            t.params_changed();
        },
             py::arg("params"))
        .def("zero_grad", &Trainer::zero_grad)
        .def("optimizer_state", [](Trainer& t) {
            py::dict d;
            d["step"] = t.step();
            if (t.adam_m()) {
                d["m"] = named(t, t.adam_m());
                d["v"] = named(t, t.adam_v());
            }
            if (t.sgd_momentum()) d["momentum"] = named(t, t.sgd_momentum());
            return d;
        })
        .def("load_optimizer_state", [](Trainer& t, const py::dict& d) {
            if (t.adam_m()) {
                load_named(t, d["m"].cast<py::dict>(), t.adam_m(), "load_optimizer_state m");
                load_named(t, d["v"].cast<py::dict>(), t.adam_v(), "load_optimizer_state v");
            }
            if (t.sgd_momentum())
                load_named(t, d["momentum"].cast<py::dict>(), t.sgd_momentum(), "load_optimizer_state momentum");
            t.set_step(d["step"].cast<int64_t>());
        }, py::arg("state"))
        .def("measure_contributions", [](Trainer& t, const I32& tokens, const U8& mask) {
            Batch b = batch_of(tokens, mask);
            std::vector<double> c;
            Status st;
            {
                py::gil_scoped_release release;
                st = t.measure_contributions(b.tokens.data(), b.mask.data(), b.B, b.S, &c);
            }
            check(st);
            py::dict d;
            for (size_t i = 0; i < c.size(); ++i) d[py::str(t.params()[i].name)] = c[i];
            return d;
        }, py::arg("tokens"), py::arg("mask"), "‖d loss_sum / dθ‖² per parameter on this batch (a sparse plan's measure).")
        .def_property_readonly("memory_plan", [](const Trainer& t) { return plan_dict(t.memory_plan()); })
        .def_property_readonly("memory_buffers", [](const Trainer& t) { return plan_buffers_list(t.memory_plan()); })
        .def_property_readonly("step", &Trainer::step)
        .def_property_readonly("pending_scored", &Trainer::pending_scored)
        .def_property_readonly("method", [](const Trainer& t) { return t.options().method; })
        .def_property_readonly("n_elements", &Trainer::n_elements);
}

}  // namespace bindings
}  // namespace edge
