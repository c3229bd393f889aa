// expert_store.h — MoE experts streamed from disk into a fixed cache of slots (docs/MOE.md §4).
//
// Unit: one (layer, expert, variant). Its bytes are the blob tensor `blk.L.exp.E.<blob>` (or, for the
// planes4_msb view, a 4096-aligned prefix of it), read by background I/O threads with pread on an
// O_DIRECT descriptor into 4096-aligned staging buffers, validated (finite scales), and decoded into a
// cache slot: `concat:<dtype>` is copied as is; `planes4` / `planes4_msb` are repacked into int4_32
// rows. A slot then holds three matrices (gate [F, D], up [F, D], down [D, F]) the kernels use in place.
//
// Threading: prefetch/acquire/release/begin_layer are called by the one thread that runs the forward
// pass; the I/O threads are internal. A slot is never evicted while pinned (acquired, not released)
// or while its read is in flight.
//
// Eviction ("lfru", the default; full definition in expert_cache_policy.h): among unpinned ready slots,
// evict the unit with the lowest hit density = expected uses per layer step it would occupy the slot,
// from d, the cyclic layer distance to its next opportunity (L if already used in this visit), p, its
// decayed use frequency (halved every `decay_tokens` tokens) and a recency lift learned online (how much
// likelier experts used 1..8 tokens ago are to be used again); ties by larger distance, then least
// recently used. "lru" is plain least-recently-used (for comparison benches). Prefetch never evicts
// pinned or in-flight slots nor units named by a pending prefetch, and (lfru) only evicts a unit less
// likely to be used than the one it brings.
//
// Misses: acquire_any serves ready units first; absent ones are read with priority over prefetches;
// a unit whose read is in flight is waited for, never read twice. The forward thread sleeps on a
// condition variable while it waits (io_stall_s); no lock is held during I/O.
//
// Low-bit serving (Options::lowbit, default off): when on, a requested unit that is not ready and whose
// routing weight is below lowbit_threshold is served from variant default+1 (for planes4 → planes4_msb
// a shorter read); one already ready in that lower variant is served at once. prefetch() given the true
// routing weights (a predictor that is the router itself) applies the same rule: an expert not cached in
// its planned variant with weight < lowbit_threshold is read in variant default+1, and the acquire that
// follows with the same weight finds it ready (a hit and a low-bit serve). An expert cached in its planned
// variant is never downgraded. With lowbit off every expert is served in its moe.plan variant, bit for
// bit the bytes a fully resident run uses.
//
// Faults: a short read, an I/O error or invalid bytes (a non-finite scale) is retried once by the I/O
// thread; if it fails again the acquire naming that unit returns the error (BAD_FILE / IO_ERROR, with the
// tensor name, layer, expert, variant and file offset) and the slot is freed. Other units are unaffected.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "format.h"
#include "matrix.h"

namespace edge {

struct ExpertMatrices {
    Matrix gate, up, down;
    int variant = 0;  // the variant actually served (may be lower than asked; see Options::lowbit)
};

struct ExpertStats {
    int64_t hits = 0;             // acquire found the unit ready (incl. prefetched)
    int64_t misses = 0;           // acquire had to start or wait for a read
    int64_t prefetch_issued = 0;  // reads started by prefetch()
    int64_t prefetch_used = 0;    // prefetched units later acquired before eviction
    int64_t evictions = 0;
    int64_t reads = 0, bytes_read = 0;
    int64_t lowbit_serves = 0;    // acquisitions served from a lower variant (misses, or reads prefetched low)
    int64_t retries = 0;          // reads retried after a short read / I/O error / bad bytes
    double io_stall_s = 0;        // time the forward thread waited in acquire()
    double io_busy_s = 0;         // summed time the I/O threads spent in pread
    // Predictor quality, fed by the model through note_prediction(): recall = predicted_true / true_total.
    int64_t true_total = 0, predicted_true = 0;
};

class ExpertStore {
public:
    struct Options {
        int64_t cache_bytes = 0;         // bytes for slots (whole slots; at least n_experts_used slots)
        int io_threads = 2;
        bool direct_io = true;           // O_DIRECT; falls back to fadvise(DONTNEED) if refused
        std::string policy = "lfru";     // "lfru" | "lru"
        bool lowbit = false;             // serve a cold miss with weight < lowbit_threshold from variant+1
        float lowbit_threshold = 0.2f;
        int64_t decay_tokens = 64;
        // Memory planned by the caller (the model's Planner), kIoAlign-aligned: `slots` for the cache
        // (cache_bytes rounded down to whole slots, at most every unit) and `staging` for io_threads ×
        // Sizes::io_buffer_bytes / io_threads. nullptr: the store allocates its own.
        uint8_t* slots = nullptr;
        uint8_t* staging = nullptr;
    };

    // Reads moe.* metadata and the blob tensor table of `f` (validated: every blob present, sizes exact
    // for its layout, inside the file). `path` is reopened for the I/O descriptor.
    static Status open(const EdgeFile& f, const Options& opt, std::unique_ptr<ExpertStore>* out);

    // What open() would allocate, without allocating or starting anything (same validation): the slot
    // size, the I/O staging buffers for opt.io_threads, and the number of (layer, expert, variant) units.
    struct Sizes {
        int64_t slot_bytes = 0, io_buffer_bytes = 0, n_units = 0;
        int n_variants = 0;
    };
    static Status measure(const EdgeFile& f, const Options& opt, Sizes* out);
    // The bytes of the slots open() keeps for opt.cache_bytes (whole slots, at most every unit).
    static int64_t slots_bytes(const Sizes& s, int64_t cache_bytes);
    ~ExpertStore();

    int64_t slot_bytes() const;   // bytes of one slot (largest decoded variant)
    int64_t n_slots() const;
    int64_t io_buffer_bytes() const;  // staging buffers owned by the I/O threads
    int n_variants() const;
    bool direct_io() const;           // reads bypass the page cache with O_DIRECT (false: fadvise fallback)
    int default_variant(int layer, int expert) const;  // moe.plan

    // Tells the policy which layer executes now and that a new token began when layer == first MoE layer.
    void begin_layer(int layer);
    // Non-blocking hint: queue reads for these units if absent (best effort: skipped when no slot may be
    // evicted for them, see above). Promotes present ones. Invalid ids are ignored. weights[i] (nullptr:
    // unknown, the 3-argument form) is the true routing weight of experts[i] — pass it only when it is
    // final (the predictor is the router), never a prediction: with Options::lowbit it picks the variant
    // read, as acquire_any would.
    void prefetch(int layer, const int32_t* experts, int n);
    void prefetch(int layer, const int32_t* experts, const float* weights, int n);
    // Blocks until one of experts[0..n) of `layer` is ready, pins it and returns it (ready ones first, in
    // the order given). weights[i] (may be nullptr) is the routing weight, used by the low-bit policy.
    // On an I/O or validation failure (after one retry) returns an error naming layer, expert, offset.
    Status acquire_any(int layer, const int32_t* experts, const float* weights, int n, int* which,
                       ExpertMatrices* out);
    void release(int layer, int expert);  // unpins one acquisition; a unit not pinned is ignored

    void note_prediction(int64_t true_total, int64_t predicted_true);
    // n uses served without acquire_any, from units the caller keeps resident (device MoE steps: Model)
    void note_hits(int64_t n);
    ExpertStats stats() const;
    void reset_stats();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    ExpertStore() = default;
};

}  // namespace edge
