// planner.h — one list of every buffer a model needs, per device: sized first (so the budget is checked
// before anything large is allocated), then allocated from the same list. MemoryPlan is its output;
// nothing else re-derives what was allocated.
//
// Use: add() each buffer (a kind, a device, a byte count and where to bind its pointer), or count()
// memory that is owned elsewhere but must be budgeted (the mapped weights, the process itself); read
// total() / plan() to check the budget and size what is left (expert cache slots, the layer window);
// then allocate() binds every pointer. Buffers live until the planner is destroyed; allocate() may be
// called again after more add()s (e.g. a LoRA adapter loaded later) and allocates only the new ones.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"

namespace edge {

enum class MemKind : int {
    WEIGHTS = 0,   // mapped tensors (a view on the CPU) or their device copies
    KV_CACHE,
    SCRATCH,       // one step's activations, per-thread and MoE buffers
    IO_BUFFERS,    // expert store staging, the layer window
    EXPERT_CACHE,  // expert cache slots
    ACTIVATIONS,   // kept for a backward pass (training)
    ADAPTERS,      // trained adapters applied at inference (adapter.h: merged LoRA A / B, bias deltas)
    PROCESS,       // the process's own resident set + margin (budget_covers_process)
    COUNT
};
const char* mem_kind_name(MemKind k);

struct PlanEntry {
    std::string name;
    MemKind kind = MemKind::SCRATCH;
    Device device = Device::CPU;
    int64_t bytes = 0;
    int64_t align = 64;
    bool zero = false;         // zero-filled when allocated (scratch); the KV cache is left untouched
    bool allocated_here = true;  // false: counted only (owned elsewhere)
    void** bind = nullptr;     // receives the buffer's address
};

// Where the bytes go, per kind; total() is what `--mem` bounds on the host (docs/MOE.md §4). A dense
// model whose weights do not fit streams its layers (layer_stream.h): resident then counts only the
// tensors outside the layers and io_buffers the window.
struct MemoryPlan {
    int64_t resident = 0;      // mapped non-expert tensor bytes (all tensors of a dense model)
    int64_t kv_cache = 0;
    int64_t scratch = 0;       // activations for one prefill step, per-thread and MoE buffers
    int64_t io_buffers = 0;    // the expert store's staging buffers / the layer window
    int64_t expert_cache = 0;  // expert cache slots (n_slots × slot_bytes)
    int64_t activations = 0;   // kept for backward (training); 0 for inference
    int64_t adapters = 0;      // --adapter terms (f32 LoRA A / B and bias deltas); 0 without adapters
    int64_t expert_slots = 0, slot_bytes = 0;  // informative: how expert_cache is divided
    int64_t layer_window = 0;  // dense model over the budget: layer buffers streamed (in io_buffers); 0 = none
    int64_t process = 0;       // ModelOptions::budget_covers_process: the process's own resident set + margin
    int64_t device = 0;        // bytes on an accelerator (not host memory; bounded by --gpu-mem); 0 on the CPU
    std::vector<PlanEntry> entries;  // every buffer, for reports
    int64_t total() const { return resident + kv_cache + scratch + io_buffers + expert_cache + activations + adapters + process; }
};

class Planner {
public:
    Planner() = default;
    ~Planner();
    Planner(const Planner&) = delete;
    Planner& operator=(const Planner&) = delete;

    // Adds a buffer of `count` elements of T on `be`'s device (be = nullptr: host heap memory the host
    // code reads, e.g. routing tables), bound to *bind when allocated.
    template <class T>
    void add(const char* name, MemKind kind, Backend* be, int64_t count, T** bind, bool zero = true, int64_t align = 64) {
        add_bytes(name, kind, be, count * (int64_t)sizeof(T), reinterpret_cast<void**>(bind), zero, align);
    }
    void add_bytes(const std::string& name, MemKind kind, Backend* be, int64_t bytes, void** bind, bool zero, int64_t align);
    // Memory owned elsewhere that the budget covers (mapped weights, the process, a store's own buffers).
    void count(const std::string& name, MemKind kind, Device device, int64_t bytes);
    // Drops every entry of `kind` not yet allocated (a term re-planned, e.g. resident weights when layers stream).
    void forget(MemKind kind);

    int64_t total(MemKind kind) const;
    int64_t host_total() const;    // what --mem bounds
    int64_t device_total() const;  // bytes on accelerators
    MemoryPlan plan() const;       // the per-kind totals and entries (expert_slots etc. set by the caller)

    // Allocates every entry added and not yet allocated; on failure frees nothing already bound
    // (the destructor does) and returns the first error.
    Status allocate();

private:
    struct Slot {
        PlanEntry e;
        Backend* be = nullptr;
        Buffer buf;
    };
    std::vector<Slot> slots_;
};

}  // namespace edge
