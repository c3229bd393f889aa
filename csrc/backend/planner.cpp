// planner.cpp — see planner.h.
#include "planner.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace edge {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

const char* kv_type_name(KvType t) {
    switch (t) {
    case KvType::F16: return "f16";
    case KvType::Q8: return "q8";
    case KvType::KIVI4: return "kivi4";
    case KvType::KIVI2: return "kivi2";
    default: return "f32";
    }
}

bool kv_type_parse(const std::string& s, KvType* out) {
    for (KvType t : {KvType::F32, KvType::F16, KvType::Q8, KvType::KIVI4, KvType::KIVI2})
        if (s == kv_type_name(t)) {
            *out = t;
            return true;
        }
    return false;
}

int64_t kv_type_bytes(KvType t) { return t == KvType::F32 ? 4 : t == KvType::Q8 ? 1 : 2; }

const char* mem_kind_name(MemKind k) {
    static const char* const kNames[] = {"weights", "kv_cache", "scratch", "io_buffers", "expert_cache", "activations", "adapters", "process"};
    static_assert(sizeof(kNames) / sizeof(kNames[0]) == (size_t)MemKind::COUNT, "one name per MemKind");
    return (int)k >= 0 && k < MemKind::COUNT ? kNames[(int)k] : "?";
}

namespace {

// Host heap memory for entries without a backend (be = nullptr).
Status host_alloc(int64_t bytes, int64_t align, bool zero, const std::string& what, Buffer* out) {
    void* p = nullptr;
    if (posix_memalign(&p, (size_t)std::max<int64_t>(align, (int64_t)sizeof(void*)), (size_t)bytes) != 0 || !p)
        return status_error(Code::OUT_OF_MEMORY, strfmt("cannot allocate %lld bytes for %s", (long long)bytes, what.c_str()));
    if (zero) std::memset(p, 0, (size_t)bytes);
    *out = Buffer{p, bytes, Device::CPU, true};
    return Status::ok();
}

}  // namespace

Planner::~Planner() {
    for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
        if (!it->buf.owned) continue;
        if (it->be)
            it->be->release(&it->buf);
        else
            std::free(it->buf.data);
    }
}

void Planner::add_bytes(const std::string& name, MemKind kind, Backend* be, int64_t bytes, void** bind, bool zero, int64_t align) {
    Slot s;
    s.e.name = name;
    s.e.kind = kind;
    s.e.device = be ? be->device() : Device::CPU;
    s.e.bytes = bytes;
    s.e.align = align;
    s.e.zero = zero;
    s.e.bind = bind;
    s.be = be;
    slots_.push_back(std::move(s));
}

void Planner::count(const std::string& name, MemKind kind, Device device, int64_t bytes) {
    Slot s;
    s.e.name = name;
    s.e.kind = kind;
    s.e.device = device;
    s.e.bytes = bytes;
    s.e.allocated_here = false;
    slots_.push_back(std::move(s));
}

void Planner::forget(MemKind kind) {
    slots_.erase(std::remove_if(slots_.begin(), slots_.end(),
                                [&](const Slot& s) { return s.e.kind == kind && !s.buf.data; }),
                 slots_.end());
}

int64_t Planner::total(MemKind kind) const {
    int64_t n = 0;
    for (const Slot& s : slots_)
        if (s.e.kind == kind && s.e.device == Device::CPU) n += s.e.bytes;
    return n;
}

int64_t Planner::host_total() const {
    int64_t n = 0;
    for (const Slot& s : slots_)
        if (s.e.device == Device::CPU) n += s.e.bytes;
    return n;
}

int64_t Planner::device_total() const {
    int64_t n = 0;
    for (const Slot& s : slots_)
        if (s.e.device != Device::CPU) n += s.e.bytes;
    return n;
}

MemoryPlan Planner::plan() const {
    MemoryPlan p;
    int64_t* by_kind[] = {&p.resident, &p.kv_cache, &p.scratch, &p.io_buffers, &p.expert_cache, &p.activations, &p.adapters, &p.process};
    static_assert(sizeof(by_kind) / sizeof(by_kind[0]) == (size_t)MemKind::COUNT, "one term per MemKind");
    for (const Slot& s : slots_) {
        if (s.e.device == Device::CPU)
            *by_kind[(int)s.e.kind] += s.e.bytes;
        else
            p.device += s.e.bytes;
        p.entries.push_back(s.e);
    }
    return p;
}

Status Planner::allocate() {
    for (Slot& s : slots_) {
        if (!s.e.allocated_here || s.buf.data || s.e.bytes == 0) continue;
        if (s.be)
            EDGE_TRY(s.be->alloc(s.e.bytes, s.e.align, s.e.zero, s.e.name.c_str(), &s.buf));
        else
            EDGE_TRY(host_alloc(s.e.bytes, s.e.align, s.e.zero, s.e.name, &s.buf));
        if (s.e.bind) *s.e.bind = s.buf.data;
    }
    return Status::ok();
}

}  // namespace edge
