// expert_cache_policy.h — the directory of expert cache slots (which unit each holds, its state, pins)
// and the eviction policy. Pure bookkeeping: no threads, no I/O; ExpertStore calls it under its mutex
// and cache_simulate() replays routing traces through the very same code (bench/bench_cache_policy.py).
//
// A unit is one (layer, expert, variant): unit = (layer·E + expert)·V + variant. Time is counted in
// layer steps (one begin_layer() each) and tokens (begin_layer(first MoE layer) starts one).
//
// "lfru" (default) — LRFU-style decayed frequency plus a learned recency lift, made layer-aware. Each
// (layer, expert) keeps
//   crf = Σ over past uses 2^(−(now − t_use)/H)       (H = decay_tokens; recency-weighted frequency)
//   p   = (crf + α·k/E) / (n_eff + α)                  long-run per-token use probability, n_eff =
//                                                       Σ 2^(−age/H) over past tokens, α = 2 (prior k/E)
// Routing has temporal locality to a degree that differs per model, so it is measured, not assumed: for
// ages a = 1..G tokens since a unit's last use, lift(a) = (reuses at age a − Σ p of the units at risk at
// age a) / (units at risk + 1), decayed like crf — the reuse probability beyond what frequency explains
// (≈ 0 for i.i.d. routing, large when consecutive tokens share experts). Then for a cached unit
//   d   = layer steps to its next opportunity: (layer − executing layer) mod L, or L when already used
//         in this visit
//   p1  = p + lift(age at that opportunity)          probability of use there
//   density = (p1 + (1 − p1)·p) / (d + 1 + (1 − p1)·L)
// the expected hits per layer step of cache held, over its next two opportunities (LHD-style hit
// density), and the unit with the lowest density is evicted (ties: larger d, then least recently used).
// In the cyclic layer order of decode this keeps hot and recently reused experts and, among equals,
// drops the ones just used (their layer runs again furthest in the future) — where LRU drops exactly
// the ones needed next. (Ranking by expected time to next use instead was 3–10 points worse on traces
// with temporal locality: it over-penalises rarely used experts that were just used; bench/.)
// "lru" — the least recently acquired (or prefetch-promoted) unit goes (PowerInfer's policy; benches).
//
// Slots that are pinned (acquired, not released), queued or being read are never evicted.
// Prefetch (claim(..., prefetch=true)) is stricter, so a large predicted set cannot thrash the cache:
//   - it never evicts a unit named by a prefetch whose layer has not finished its next visit yet;
//   - lfru: it evicts the policy's victim only when the candidate is likelier to be used at its next
//     opportunity than the victim at its own: max(p1_candidate, precision) > p1_victim, where precision =
//     (used + 1)/(issued + 2) over recent prefetches (decayed like crf). (A demand miss would evict the
//     same victim, so a likely prediction only moves the read earlier; an unlikely one must not displace
//     a likely unit.) A free slot is always taken.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace edge {

enum class CachePolicy : uint8_t { LFRU = 0, LRU = 1 };
Status cache_policy_parse(const std::string& name, CachePolicy* out);  // "lfru" | "lru"

enum SlotState : uint8_t { SLOT_FREE = 0, SLOT_QUEUED, SLOT_READING, SLOT_READY, SLOT_FAILED };

struct CacheSlot {
    int32_t unit = -1;
    SlotState state = SLOT_FREE;
    int32_t pins = 0;
    bool pf_pending = false;  // its read was started by prefetch and it was not acquired yet
    int64_t pf_step = -1;     // step of the latest prefetch naming it (-1: none)
    int64_t last_use = -1;    // LRU order: tick of the latest acquisition or prefetch promotion
    int64_t use_step = -1;    // step of the latest acquisition
};

class ExpertCache {
public:
    struct Config {
        int n_layers = 0;        // L: the cycle (every layer index, dense ones included)
        int n_experts = 0;       // E
        int n_variants = 1;      // V
        int n_used = 1;          // k
        int first_layer = 0;     // begin_layer(first_layer) starts a token
        int64_t n_slots = 0;
        CachePolicy policy = CachePolicy::LFRU;
        int64_t decay_tokens = 64;
        int lift_ages = 8;       // G: ages (in tokens) with a learned recency lift; 0 = frequency only
    };

    void init(const Config& c);

    int32_t unit(int layer, int expert, int variant) const { return (layer * E_ + expert) * V_ + variant; }
    int layer_of(int32_t u) const { return u / V_ / E_; }
    int expert_of(int32_t u) const { return (u / V_) % E_; }
    int variant_of(int32_t u) const { return u % V_; }

    int32_t slot_of(int32_t u) const { return slot_of_[(size_t)u]; }  // -1: not cached
    CacheSlot& slot(int32_t s) { return slots_[(size_t)s]; }
    const CacheSlot& slot(int32_t s) const { return slots_[(size_t)s]; }
    int64_t n_slots() const { return (int64_t)slots_.size(); }
    int64_t step() const { return step_; }

    void begin_layer(int layer);
    // Binds a slot to `u` (state QUEUED, no pins): a free slot, else the policy's victim. Returns -1 when
    // nothing may be evicted (or, for a prefetch, nothing is worth less than `u`). *evicted is the unit
    // that was dropped from a READY slot, else -1.
    int32_t claim(int32_t u, bool prefetch, int32_t* evicted);
    void unbind(int32_t s);                   // back to FREE (a failed read, dropped)
    void note_use(int32_t s);                 // an acquisition
    void note_prefetch(int32_t s, bool issued);  // prefetch named it; issued: its read starts now

private:
    struct Outlook {
        int64_t d;      // layer steps to the unit's next opportunity
        double p;       // long-run per-token use probability (decayed frequency)
        double p1;      // probability of use at that next opportunity (p + the recency lift of its age)
    };
    double p_of(int32_t lu) const;  // p of (layer, expert) index lu
    double lift(int64_t age) const;
    int64_t distance(const CacheSlot& s) const;
    Outlook outlook(int32_t u, int64_t d) const;
    double density(const Outlook& o) const {  // expected hits per layer step held, over two opportunities
        return (o.p1 + (1.0 - o.p1) * o.p) / ((double)o.d + 1.0 + (1.0 - o.p1) * (double)cfg_.n_layers);
    }
    bool prefetch_protected(const CacheSlot& s) const;

    Config cfg_;
    int E_ = 1, V_ = 1;
    std::vector<CacheSlot> slots_;
    std::vector<int32_t> slot_of_;   // per unit
    std::vector<int32_t> free_;      // stack of FREE slots
    std::vector<double> crf_;        // per (layer, expert): Σ 2^((t_use − epoch)/H)
    std::vector<int64_t> last_tok_;  // per (layer, expert): token of its latest use (-1: never)
    std::vector<std::vector<int32_t>> recent_;  // ring of G+1 tokens: (layer, expert)s first used then
    std::vector<double> reuse_, expo_, fsum_;   // per age 1..G (decayed): reuses, units at risk, Σ p at risk
    std::vector<int64_t> visit_step_;  // per layer: step of its latest begin_layer (-1: never)
    int64_t step_ = 0, tick_ = 0, token_ = 0, epoch_ = 0;
    int cur_layer_ = 0;
    double decay_ = 1, scale_ = 1;   // 2^(−1/H) per token; 2^(−(token − epoch)/H)
    double n_eff_ = 0, pf_issued_ = 0, pf_used_ = 0;
};

// Replays a routing trace through ExpertCache with instantaneous reads (no I/O) — the policy bench.
// trace: [n_tokens, n_layers, k] expert ids (every layer MoE, visited 0..L−1 per token, variant 0);
// pred: nullptr or [n_tokens, n_layers, n_pred] experts prefetched at each layer before its acquires.
// Per layer the k true experts are acquired (pinned until the layer ends), so n_slots >= k.
struct CacheSimResult {
    int64_t hits = 0, misses = 0, evictions = 0, prefetch_issued = 0, prefetch_used = 0;
    int64_t reads() const { return misses + prefetch_issued; }
};
Status cache_simulate(const ExpertCache::Config& cfg, int64_t n_tokens, const int32_t* trace, const int32_t* pred,
                      int n_pred, CacheSimResult* out);

}  // namespace edge
