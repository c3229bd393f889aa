// common.h — what every csrc/bindings/*.cpp file shares: the Status -> Python exception helpers and the
// bind_<subject>() entry points that module.cpp calls in order to build edgerun._core.
// Only this folder turns a Status into a Python exception (EdgeError and its subclasses, created in
// module.cpp); long-running calls release the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include "../common.h"

namespace edge {
namespace bindings {

namespace py = pybind11;

// Raises the Python exception for st (st is an error): BAD_FILE -> BadFileError, UNSUPPORTED ->
// UnsupportedError, OUT_OF_MEMORY -> MemoryBudgetError, IO_ERROR -> OSError, anything else -> EdgeError.
[[noreturn]] void raise_status(const Status& st);

// Raises when st is an error; returns otherwise.
inline void check(const Status& st) {
    if (!st.is_ok()) raise_status(st);
}

// The subjects of the module, each in its own file, called by PYBIND11_MODULE in this order.
void bind_kernels(py::module_& m);       // kernels.cpp: kernel levels/table and test entry points
void bind_expert_store(py::module_& m);  // expert_store.cpp: ExpertStore, LayerStream, cache_simulate
void bind_model(py::module_& m);         // model.cpp: file_info/verify, Sampler, Model, Tokenizer
void bind_train(py::module_& m);         // train.cpp: Trainer (on a Model)

}  // namespace bindings
}  // namespace edge
