// backend_cuda_loader.h — the CUDA backend is a plugin: libedge_cuda_backend.so, loaded with dlopen the
// first time a model asks for device "cuda". The core, _core and edgert never link the CUDA runtime, so
// they load and run on machines without a GPU or driver; a missing plugin, driver or device is a Status.
//
// Where the plugin is looked for: $EDGE_CUDA_PLUGIN (a path) if set, else next to the shared object or
// executable that contains this code (dladdr), else the loader's search path.
// The plugin exports (C linkage):
//   edge::Backend* edge_cuda_backend_create(const edge::KernelTable* host, int device, char* err, int err_len);
// returning nullptr with a message in err when no usable device is there; `host` is the host kernel
// table (the plugin dequantizes embedding rows with it). The Backend is deleted by the caller.
#pragma once

#include <memory>
#include <string>

#include "../kernels/kernels.h"
#include "backend.h"

namespace edge {

constexpr const char* kCudaPluginName = "libedge_cuda_backend.so";
typedef Backend* (*cuda_backend_create_fn)(const KernelTable* host, int device, char* err, int err_len);

// Opens the CUDA backend on `device` (an index, 0 = first GPU). UNSUPPORTED when the plugin or a
// usable GPU/driver is missing (the message says which and what to do).
Status backend_open_cuda(const KernelTable* host, int device, std::unique_ptr<Backend>* out);

// For `edgerun info`: whether the CUDA backend opens on device 0, and the device's description or why not.
bool cuda_probe(const KernelTable* host, std::string* device, std::string* error);

// Where the plugin would be loaded from (for `edgerun info`), and whether it is there.
std::string cuda_plugin_path(bool* exists);

}  // namespace edge
