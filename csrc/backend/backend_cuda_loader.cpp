// backend_cuda_loader.cpp — see backend_cuda_loader.h.
#include "backend_cuda_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

namespace edge {

std::string cuda_plugin_path(bool* exists) {
    std::string path;
    if (const char* env = std::getenv("EDGE_CUDA_PLUGIN"); env && *env) {
        path = env;
    } else {
        Dl_info info{};
        if (dladdr(reinterpret_cast<void*>(&cuda_plugin_path), &info) && info.dli_fname) {
            std::string self = info.dli_fname;
            const size_t slash = self.rfind('/');
            path = (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) + kCudaPluginName;
        } else {
            path = kCudaPluginName;
        }
    }
    struct stat st {};
    if (exists) *exists = ::stat(path.c_str(), &st) == 0;
    return path;
}

Status backend_open_cuda(const KernelTable* host, int device, std::unique_ptr<Backend>* out) {
    static std::mutex mu;
    static void* handle = nullptr;
    static std::string load_error;
    std::lock_guard<std::mutex> lock(mu);
    if (!handle && load_error.empty()) {
        bool exists = false;
        const std::string path = cuda_plugin_path(&exists);
        handle = dlopen(exists ? path.c_str() : kCudaPluginName, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char* e = dlerror();
            load_error = "the CUDA backend (" + path + ") could not be loaded: " + (e ? e : "unknown error") +
                         "; set EDGE_CUDA_PLUGIN to its path (pip puts it in the edgerun package folder) or build with nvcc "
                         "present (EDGE_CUDA=ON)";
        }
    }
    if (!handle) return status_error(Code::UNSUPPORTED, load_error);
    auto create = reinterpret_cast<cuda_backend_create_fn>(dlsym(handle, "edge_cuda_backend_create"));
    if (!create) return status_error(Code::UNSUPPORTED, "the CUDA backend plugin has no edge_cuda_backend_create");
    char err[512] = {0};
    Backend* be = create(host, device, err, (int)sizeof(err));
    if (!be) return status_error(Code::UNSUPPORTED, std::string("CUDA: ") + err);
    out->reset(be);
    return Status::ok();
}

bool cuda_probe(const KernelTable* host, std::string* device, std::string* error) {
    std::unique_ptr<Backend> be;
    Status st = backend_open_cuda(host, 0, &be);
    if (!st.is_ok()) {
        *error = st.msg;
        return false;
    }
    *device = be->describe();
    return true;
}

}  // namespace edge
