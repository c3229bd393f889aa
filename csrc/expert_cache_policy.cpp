// expert_cache_policy.cpp — slot directory, lfru / lru eviction and the trace simulator (expert_cache_policy.h).
#include "expert_cache_policy.h"

#include <cmath>

namespace edge {

namespace {
constexpr double kPriorWeight = 2.0;   // α: pseudo-tokens of the uniform prior k/E
constexpr double kRenormAt = 512.0;    // rebase crf when its scale exponent (token − epoch)/H passes this
}  // namespace

Status cache_policy_parse(const std::string& name, CachePolicy* out) {
    if (name == "lfru") *out = CachePolicy::LFRU;
    else if (name == "lru") *out = CachePolicy::LRU;
    else return status_error(Code::INVALID_ARGUMENT, "unknown expert cache policy '" + name + "' (use lfru or lru)");
    return Status::ok();
}

void ExpertCache::init(const Config& c) {
    cfg_ = c;
    E_ = c.n_experts;
    V_ = c.n_variants;
    slots_.assign((size_t)c.n_slots, CacheSlot{});
    slot_of_.assign((size_t)c.n_layers * (size_t)E_ * (size_t)V_, -1);
    free_.clear();
    for (int64_t s = c.n_slots - 1; s >= 0; --s) free_.push_back((int32_t)s);
    crf_.assign((size_t)c.n_layers * (size_t)E_, 0.0);
    last_tok_.assign((size_t)c.n_layers * (size_t)E_, -1);
    const int G = c.lift_ages > 0 ? c.lift_ages : 0;
    recent_.assign((size_t)G + 1, std::vector<int32_t>());
    for (auto& r : recent_) r.reserve((size_t)c.n_layers * (size_t)c.n_used * 2);
    reuse_.assign((size_t)G + 1, 0.0);
    expo_.assign((size_t)G + 1, 0.0);
    fsum_.assign((size_t)G + 1, 0.0);
    visit_step_.assign((size_t)c.n_layers, -1);
    step_ = tick_ = token_ = epoch_ = 0;
    cur_layer_ = c.first_layer;
    decay_ = std::exp2(-1.0 / (double)(c.decay_tokens > 0 ? c.decay_tokens : 1));
    scale_ = 1;
    n_eff_ = pf_issued_ = pf_used_ = 0;
}

void ExpertCache::begin_layer(int layer) {
    ++step_;
    cur_layer_ = layer;
    visit_step_[(size_t)layer] = step_;
    if (layer != cfg_.first_layer) return;
    ++token_;
    n_eff_ = n_eff_ * decay_ + 1;
    pf_issued_ *= decay_;
    pf_used_ *= decay_;
    scale_ *= decay_;
    if ((double)(token_ - epoch_) / (double)cfg_.decay_tokens > kRenormAt) {  // keep crf finite
        for (double& c : crf_) c *= scale_;
        scale_ = 1;
        epoch_ = token_;
    }
    // Recency lift: every unit last used a tokens ago is now at risk of a reuse at age a.
    const int64_t G = (int64_t)reuse_.size() - 1, R = G + 1;
    for (int64_t a = 1; a <= G; ++a) {
        reuse_[(size_t)a] *= decay_;
        expo_[(size_t)a] *= decay_;
        fsum_[(size_t)a] *= decay_;
        const int64_t tok = token_ - a;
        if (tok < 0) continue;
        for (int32_t lu : recent_[(size_t)(tok % R)]) {
            if (last_tok_[(size_t)lu] != tok) continue;  // used again since
            expo_[(size_t)a] += 1;
            fsum_[(size_t)a] += p_of(lu);
        }
    }
    if (G > 0) recent_[(size_t)(token_ % R)].clear();
}

double ExpertCache::p_of(int32_t lu) const {
    const double p0 = (double)cfg_.n_used / (double)E_;
    double p = (crf_[(size_t)lu] * scale_ + kPriorWeight * p0) / (n_eff_ + kPriorWeight);
    return p < 1e-6 ? 1e-6 : p > 1 ? 1 : p;
}

double ExpertCache::lift(int64_t age) const {
    if (age < 1) age = 1;
    if (age >= (int64_t)reuse_.size()) return 0;
    return (reuse_[(size_t)age] - fsum_[(size_t)age]) / (expo_[(size_t)age] + 1);
}

ExpertCache::Outlook ExpertCache::outlook(int32_t u, int64_t d) const {
    const int32_t lu = u / V_;
    const int l = layer_of(u);
    Outlook o{d, p_of(lu), 0};
    o.p1 = o.p;
    const int64_t last = last_tok_[(size_t)lu];
    if (last >= 0 && reuse_.size() > 1) {
        // Tokens run first_layer … L−1: the next opportunity is in this token iff the layer is still ahead.
        const bool this_token = l > cur_layer_ || (l == cur_layer_ && d == 0);
        const double p1 = o.p + lift(token_ + (this_token ? 0 : 1) - last);
        o.p1 = p1 < 1e-6 ? 1e-6 : p1 > 1 ? 1 : p1;
    }
    return o;
}

int64_t ExpertCache::distance(const CacheSlot& s) const {
    const int64_t L = cfg_.n_layers;
    int64_t d = ((int64_t)layer_of(s.unit) - cur_layer_ + L) % L;
    if (d == 0 && s.use_step == step_) d = L;  // already used in this visit: next needed a full cycle away
    return d;
}

bool ExpertCache::prefetch_protected(const CacheSlot& s) const {
    if (s.pf_step < 0) return false;
    const int64_t v = visit_step_[(size_t)layer_of(s.unit)];
    const bool visit_over = v >= s.pf_step && step_ > v;  // its layer ran after the prefetch and is done
    return !visit_over;
}

int32_t ExpertCache::claim(int32_t u, bool prefetch, int32_t* evicted) {
    *evicted = -1;
    int32_t best = -1;
    if (!free_.empty()) {
        best = free_.back();
        free_.pop_back();
    } else {
        double best_v = 0, best_p1 = 0;
        bool best_failed = false;
        for (int32_t i = 0; i < (int32_t)slots_.size(); ++i) {
            const CacheSlot& s = slots_[(size_t)i];
            if (s.pins || (s.state != SLOT_READY && s.state != SLOT_FAILED)) continue;
            if (s.state == SLOT_FAILED) {  // a failed read nobody waits on: always the first to go
                if (!best_failed) best = i, best_failed = true;
                continue;
            }
            if (best_failed || (prefetch && prefetch_protected(s))) continue;
            double v, p1 = 0;
            if (cfg_.policy == CachePolicy::LRU) {
                v = -(double)s.last_use;
            } else {
                const Outlook o = outlook(s.unit, distance(s));
                v = -density(o);
                p1 = o.p1;
            }
            // Ties (rare for lfru): the larger distance, then the least recently used.
            if (best < 0 || v > best_v ||
                (v == best_v && (distance(s) > distance(slots_[(size_t)best]) ||
                                 (distance(s) == distance(slots_[(size_t)best]) && s.last_use < slots_[(size_t)best].last_use)))) {
                best = i;
                best_v = v;
                best_p1 = p1;
            }
        }
        if (best < 0) return -1;
        CacheSlot& victim = slots_[(size_t)best];
        if (prefetch && !best_failed && cfg_.policy == CachePolicy::LFRU) {
            const int64_t L = cfg_.n_layers;
            const double prec = (pf_used_ + 1) / (pf_issued_ + 2);
            double q = outlook(u, ((int64_t)layer_of(u) - cur_layer_ + L) % L).p1;
            if (prec > q) q = prec;
            if (!(q > best_p1)) return -1;
        }
        if (victim.state == SLOT_READY) *evicted = victim.unit;
        slot_of_[(size_t)victim.unit] = -1;
    }
    CacheSlot& s = slots_[(size_t)best];
    s = CacheSlot{};
    s.unit = u;
    s.state = SLOT_QUEUED;
    s.last_use = ++tick_;
    slot_of_[(size_t)u] = best;
    return best;
}

void ExpertCache::unbind(int32_t s) {
    CacheSlot& c = slots_[(size_t)s];
    EDGE_ASSERT(c.pins == 0 && c.unit >= 0);
    slot_of_[(size_t)c.unit] = -1;
    c = CacheSlot{};
    free_.push_back(s);
}

void ExpertCache::note_use(int32_t s) {
    CacheSlot& c = slots_[(size_t)s];
    const int32_t lu = c.unit / V_;
    crf_[(size_t)lu] += 1.0 / scale_;
    const int64_t last = last_tok_[(size_t)lu];
    if (last != token_) {  // first use in this token
        const int64_t G = (int64_t)reuse_.size() - 1;
        if (last >= 0 && token_ - last <= G) reuse_[(size_t)(token_ - last)] += 1;
        last_tok_[(size_t)lu] = token_;
        if (G > 0) recent_[(size_t)(token_ % (G + 1))].push_back(lu);
    }
    c.last_use = ++tick_;
    c.use_step = step_;
    if (c.pf_pending) {
        c.pf_pending = false;
        pf_used_ += 1;
    }
}

void ExpertCache::note_prefetch(int32_t s, bool issued) {
    CacheSlot& c = slots_[(size_t)s];
    c.pf_step = step_;
    c.last_use = ++tick_;  // LRU promotion (lfru uses last_use only to break ties)
    if (issued) {
        c.pf_pending = true;
        pf_issued_ += 1;
    }
}

Status cache_simulate(const ExpertCache::Config& cfg_in, int64_t n_tokens, const int32_t* trace, const int32_t* pred,
                      int n_pred, CacheSimResult* out) {
    ExpertCache::Config cfg = cfg_in;
    cfg.n_variants = 1;
    cfg.first_layer = 0;
    const int L = cfg.n_layers, E = cfg.n_experts, k = cfg.n_used;
    if (L < 1 || E < 1 || k < 1 || k > E || n_tokens < 0 || cfg.decay_tokens < 1)
        return status_error(Code::INVALID_ARGUMENT, "cache_simulate: need n_layers, n_experts >= 1, 1 <= k <= n_experts");
    if (cfg.n_slots < k)
        return status_error(Code::INVALID_ARGUMENT, strfmt("cache_simulate: %lld slots cannot hold the %d experts of one layer",
                                                           (long long)cfg.n_slots, k));
    if (pred && n_pred < 1) return status_error(Code::INVALID_ARGUMENT, "cache_simulate: n_pred must be >= 1");
    const int64_t n_ids = n_tokens * L * k;
    for (int64_t i = 0; i < n_ids; ++i)
        if (trace[i] < 0 || trace[i] >= E) return status_error(Code::INVALID_ARGUMENT, "cache_simulate: expert id out of range in trace");
    if (pred)
        for (int64_t i = 0; i < n_tokens * L * n_pred; ++i)
            if (pred[i] < -1 || pred[i] >= E) return status_error(Code::INVALID_ARGUMENT, "cache_simulate: expert id out of range in pred");

    ExpertCache c;
    c.init(cfg);
    CacheSimResult r;
    std::vector<int32_t> pinned((size_t)k);
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int l = 0; l < L; ++l) {
            c.begin_layer(l);
            if (pred) {
                const int32_t* p = pred + (t * L + l) * n_pred;
                for (int j = 0; j < n_pred; ++j) {
                    if (p[j] < 0) continue;  // -1: no prediction in this position
                    const int32_t u = c.unit(l, p[j], 0);
                    int32_t s = c.slot_of(u), ev;
                    if (s >= 0) {
                        c.note_prefetch(s, false);
                        continue;
                    }
                    s = c.claim(u, true, &ev);
                    if (s < 0) continue;
                    r.evictions += ev >= 0;
                    c.slot(s).state = SLOT_READY;
                    c.note_prefetch(s, true);
                    ++r.prefetch_issued;
                }
            }
            const int32_t* e = trace + (t * L + l) * k;
            int n_pinned = 0;
            for (int j = 0; j < k; ++j) {
                const int32_t u = c.unit(l, e[j], 0);
                int32_t s = c.slot_of(u), ev;
                if (s >= 0) {
                    ++r.hits;
                    r.prefetch_used += c.slot(s).pf_pending;
                } else {
                    ++r.misses;
                    s = c.claim(u, false, &ev);
                    EDGE_ASSERT(s >= 0);  // n_slots >= k and at most k-1 pinned
                    r.evictions += ev >= 0;
                    c.slot(s).state = SLOT_READY;
                }
                c.note_use(s);
                if (c.slot(s).pins++ == 0) pinned[(size_t)n_pinned++] = s;
            }
            for (int j = 0; j < n_pinned; ++j) c.slot(pinned[(size_t)j]).pins = 0;
        }
    }
    *out = r;
    return Status::ok();
}

}  // namespace edge
