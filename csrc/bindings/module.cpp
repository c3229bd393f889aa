// module.cpp — PYBIND11_MODULE of edgerun._core: the exception types, the Status -> exception helper
// (bindings/common.h), DTYPES, and the subjects bound by the other files of this folder
// (kernels.cpp, expert_store.cpp, model.cpp, train.cpp), in that order.
#include <pybind11/pybind11.h>

#include "common.h"
#include "quant.h"

namespace edge {
namespace bindings {

namespace {

PyObject* g_error = nullptr;        // edgerun._core.EdgeError (a ValueError)
PyObject* g_file_error = nullptr;   // BadFileError(EdgeError): truncated/corrupt file
PyObject* g_unsupported = nullptr;  // UnsupportedError(EdgeError)
PyObject* g_mem_error = nullptr;    // MemoryBudgetError(EdgeError)

}  // namespace

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

}  // namespace bindings
}  // namespace edge

PYBIND11_MODULE(_core, m) {
    namespace py = pybind11;
    using namespace edge;
    using namespace edge::bindings;
    m.doc() = "edgerun C++ core";
    m.attr("__version__") = EDGE_VERSION;  // pyproject.toml's version, passed in by CMakeLists.txt

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

    // A signature names a bound class as edgerun._core.X only if X is bound before it (Sampler before Model).
    bind_kernels(m);
    bind_expert_store(m);
    bind_model(m);
    bind_train(m);
}
