// expert_store.cpp — MoE experts streamed from disk into a fixed set of cache slots (expert_store.h).
//
// Pieces: blob_decode (layouts, validation, planes4 repack), expert_cache_policy (slot directory and
// eviction), io_reader (O_DIRECT reads, reader threads). This file wires them: metadata validation at
// open, the forward-thread calls (all under one mutex, never held during I/O) and the I/O threads'
// read → validate → decode → publish step.
#include "expert_store.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>

#include "blob_decode.h"
#include "expert_cache_policy.h"
#include "io_reader.h"
#include "quant.h"

namespace edge {

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Status bad_meta(const std::string& path, const std::string& msg) {
    return status_error(Code::BAD_FILE, path + ": " + msg + " (docs/MOE.md; re-export the model with edgeconv)");
}

const MetaValue* typed(const EdgeFile& f, const std::string& key, MetaType type) {
    const MetaValue* v = f.get(key);
    return v && v->type == type ? v : nullptr;
}

std::string blob_name(int layer, int expert, const std::string& blob) {
    return strfmt("blk.%d.exp.%d.", layer, expert) + blob;
}

}  // namespace

struct ExpertStore::Impl final : IoSink {
    // Model shape (read-only after open).
    std::string path;
    int L = 0, E = 0, k = 0, V = 0, first_moe = -1;
    int64_t F = 0, D = 0;
    std::vector<uint8_t> is_moe;
    std::vector<std::string> vname, vblob;
    std::vector<BlobLayout> layout;   // per variant
    std::vector<int32_t> plan;        // [L·E]
    std::vector<uint64_t> blob_off;   // per unit
    Options opt;

    // Memory.
    int64_t slot_bytes = 0, n_slots = 0;
    uint64_t staging_bytes = 0;
    AlignedBuffer arena;
    std::vector<AlignedBuffer> staging;  // one per I/O thread (planes layouts only)

    // I/O.
    std::unique_ptr<IoFile> file;
    std::unique_ptr<IoReader> reader;

    // Shared state, under mu.
    mutable std::mutex mu;
    std::condition_variable cv;    // an I/O thread published a slot
    ExpertCache cache;
    std::vector<uint8_t> in_urgent, in_normal;  // per slot: has an entry in that reader queue
    std::vector<uint8_t> demanded;              // per slot: an acquire found it not ready (a miss)
    std::vector<Status> error;                  // per slot: why its read failed
    ExpertStats st;

    ~Impl() override { reader.reset(); }  // join the threads before the buffers go

    // Slot and staging sizes from the parsed layout: a slot holds the largest decoded variant (concat
    // variants are read straight into the slot); planes variants are read into staging buffers first.
    void size_buffers() {
        uint64_t sb = 0;
        for (const BlobLayout& l : layout) {
            sb = std::max<uint64_t>(sb, l.decoded_bytes);
            if (l.kind == BLOB_CONCAT) sb = std::max<uint64_t>(sb, l.read_bytes);
            else staging_bytes = std::max<uint64_t>(staging_bytes, l.read_bytes);
        }
        slot_bytes = (int64_t)io_align_up(sb);
    }
    int64_t n_units() const {
        int64_t n_moe = 0;
        for (uint8_t x : is_moe) n_moe += x;
        return n_moe * E * V;
    }

    uint8_t* slot_ptr(int32_t s) const { return arena.data() + (size_t)s * (size_t)slot_bytes; }
    int32_t unit(int l, int e, int v) const { return (l * E + e) * V + v; }  // = ExpertCache::unit
    int plan_of(int layer, int expert) const { return plan[(size_t)layer * (size_t)E + (size_t)expert]; }
    // Options::lowbit applies to experts[i] of planned variant v: on, its weight known and below the threshold,
    // and a lower variant exists.
    bool lowbit_ok(const float* weights, int i, int v) const {
        return opt.lowbit && weights && weights[i] < opt.lowbit_threshold && v + 1 < V;
    }

    void submit(int32_t s, bool urgent) {  // under mu
        std::vector<uint8_t>& q = urgent ? in_urgent : in_normal;
        if (q[(size_t)s]) return;
        q[(size_t)s] = 1;
        reader->submit(s, urgent);
    }

    void fill(int32_t s, int variant, ExpertMatrices* out) const {
        const BlobLayout& l = layout[(size_t)variant];
        const uint8_t* base = slot_ptr(s);
        out->gate = Matrix{base + l.gate_off, l.dtype, F, D, l.ffn_row_bytes};
        out->up = Matrix{base + l.up_off, l.dtype, F, D, l.ffn_row_bytes};
        out->down = Matrix{base + l.down_off, l.dtype, D, F, l.down_row_bytes};
        out->variant = variant;
    }

    void io_run(int thread, int64_t job, bool urgent) override;
    Status parse(const EdgeFile& f);
};

// ---- I/O threads ----

void ExpertStore::Impl::io_run(int thread, int64_t job, bool urgent) {
    const int32_t s = (int32_t)job;
    int32_t u;
    {
        std::lock_guard<std::mutex> lk(mu);
        (urgent ? in_urgent : in_normal)[(size_t)s] = 0;
        CacheSlot& c = cache.slot(s);
        if (c.state != SLOT_QUEUED) return;  // a stale entry: the other queue's entry already ran
        c.state = SLOT_READING;
        u = c.unit;
    }
    // The slot is ours until we publish: nothing evicts a READING slot.
    const int variant = cache.variant_of(u);
    const BlobLayout& l = layout[(size_t)variant];
    const uint64_t off = blob_off[(size_t)u];
    uint8_t* dst = slot_ptr(s);
    uint8_t* src = l.kind == BLOB_CONCAT ? dst : staging[(size_t)thread].data();
    Status r;
    int attempts = 0;
    double busy = 0;
    for (; attempts < 2;) {
        ++attempts;
        double t0 = now_s();
        r = file->read(off, l.read_bytes, l.read_bytes, src);
        busy += now_s() - t0;
        if (r.is_ok()) r = blob_decode(l, src, dst);
        if (r.is_ok()) break;
    }
    {
        std::lock_guard<std::mutex> lk(mu);
        st.reads += attempts;
        st.bytes_read += (int64_t)l.read_bytes * attempts;
        st.retries += attempts - 1;
        st.io_busy_s += busy;
        CacheSlot& c = cache.slot(s);
        if (r.is_ok()) {
            c.state = SLOT_READY;
        } else {
            const int layer = cache.layer_of(u), expert = cache.expert_of(u);
            c.state = SLOT_FAILED;
            error[(size_t)s] = status_error(
                r.code, strfmt("%s: expert blob '%s' (layer %d, expert %d, variant %s) at file offset %llu (%llu bytes): %s; "
                               "failed again when retried. The file is corrupt or changed on disk: re-export it with edgeconv "
                               "or check the storage device",
                               path.c_str(), blob_name(layer, expert, vblob[(size_t)variant]).c_str(), layer, expert,
                               vname[(size_t)variant].c_str(), (unsigned long long)off, (unsigned long long)l.read_bytes,
                               r.msg.c_str()));
        }
    }
    cv.notify_all();
}

// ---- open ----

Status ExpertStore::Impl::parse(const EdgeFile& f) {
    path = f.path();
    int64_t n_layers, n_exp, n_used, d_exp, d_model;
    EDGE_TRY(f.get_i64("llm.n_layers", &n_layers));
    EDGE_TRY(f.get_i64("llm.d_model", &d_model));
    EDGE_TRY(f.get_i64("moe.n_experts", &n_exp));
    EDGE_TRY(f.get_i64("moe.n_experts_used", &n_used));
    EDGE_TRY(f.get_i64("moe.d_expert", &d_exp));
    if (n_layers < 1 || n_layers > 100000) return bad_meta(path, strfmt("llm.n_layers = %lld is out of range", (long long)n_layers));
    if (n_exp < 1 || n_exp > 65536) return bad_meta(path, strfmt("moe.n_experts = %lld is out of range", (long long)n_exp));
    if (n_used < 1 || n_used > n_exp)
        return bad_meta(path, strfmt("moe.n_experts_used = %lld must be in 1..moe.n_experts (%lld)", (long long)n_used, (long long)n_exp));
    if (d_exp < 1 || d_exp > (1 << 20) || d_model < 1 || d_model > (1 << 20))
        return bad_meta(path, strfmt("moe.d_expert = %lld / llm.d_model = %lld out of range", (long long)d_exp, (long long)d_model));
    L = (int)n_layers, E = (int)n_exp, k = (int)n_used, F = d_exp, D = d_model;

    const MetaValue* layers = typed(f, "moe.layers", META_ARR_I64);
    if (!layers) return bad_meta(path, "missing or mistyped 'moe.layers' (ARR_I64)");
    if ((int64_t)layers->ai.size() != L)
        return bad_meta(path, strfmt("moe.layers has %zu entries, llm.n_layers is %d", layers->ai.size(), L));
    is_moe.assign((size_t)L, 0);
    for (int i = 0; i < L; ++i) {
        int64_t x = layers->ai[(size_t)i];
        if (x != 0 && x != 1) return bad_meta(path, strfmt("moe.layers[%d] = %lld (must be 0 or 1)", i, (long long)x));
        is_moe[(size_t)i] = (uint8_t)x;
        if (x && first_moe < 0) first_moe = i;
    }
    if (first_moe < 0) return bad_meta(path, "moe.layers marks no layer as MoE");

    const MetaValue* vn = typed(f, "moe.variants", META_ARR_STR);
    const MetaValue* vb = typed(f, "moe.variant_blob", META_ARR_STR);
    const MetaValue* vl = typed(f, "moe.variant_layout", META_ARR_STR);
    if (!vn || !vb || !vl) return bad_meta(path, "missing or mistyped moe.variants / moe.variant_blob / moe.variant_layout (ARR_STR)");
    if (vn->as.empty() || vn->as.size() != vb->as.size() || vn->as.size() != vl->as.size())
        return bad_meta(path, strfmt("moe.variants (%zu), moe.variant_blob (%zu) and moe.variant_layout (%zu) must be non-empty and of one length",
                                     vn->as.size(), vb->as.size(), vl->as.size()));
    if (vn->as.size() > 16) return bad_meta(path, strfmt("%zu expert variants (at most 16)", vn->as.size()));
    V = (int)vn->as.size();
    vname = vn->as;
    vblob = vb->as;
    layout.resize((size_t)V);
    for (int v = 0; v < V; ++v) {
        Status s = blob_layout_parse(vl->as[(size_t)v], F, D, &layout[(size_t)v]);
        if (!s.is_ok()) return status_error(s.code, path + strfmt(": moe.variant_layout[%d]: ", v) + s.msg);
        for (int w = 0; w < v; ++w)
            if (vblob[(size_t)w] == vblob[(size_t)v] && layout[(size_t)w].blob_bytes != layout[(size_t)v].blob_bytes)
                return bad_meta(path, strfmt("variants %d and %d read blob '%s' with layouts of different sizes (%s, %s)", w, v,
                                             vblob[(size_t)v].c_str(), vl->as[(size_t)w].c_str(), vl->as[(size_t)v].c_str()));
    }

    plan.assign((size_t)L * (size_t)E, 0);
    if (const MetaValue* p = f.get("moe.plan")) {
        if (p->type != META_ARR_I64 || (int64_t)p->ai.size() != (int64_t)L * E)
            return bad_meta(path, strfmt("moe.plan must be ARR_I64 of n_layers x n_experts = %lld entries", (long long)L * E));
        for (size_t i = 0; i < p->ai.size(); ++i) {
            if (p->ai[i] < 0 || p->ai[i] >= V)
                return bad_meta(path, strfmt("moe.plan[%zu] = %lld is not a variant index (0..%d)", i, (long long)p->ai[i], V - 1));
            plan[i] = (int32_t)p->ai[i];
        }
    }

    blob_off.assign((size_t)L * (size_t)E * (size_t)V, 0);
    for (int l = 0; l < L; ++l) {
        if (!is_moe[(size_t)l]) continue;
        for (int e = 0; e < E; ++e) {
            for (int v = 0; v < V; ++v) {
                const std::string name = blob_name(l, e, vblob[(size_t)v]);
                const TensorInfo* t = f.find(name);
                const BlobLayout& lay = layout[(size_t)v];
                if (!t) return bad_meta(path, "missing expert blob '" + name + "'");
                if (t->dtype != EDGE_DTYPE_BLOB) return bad_meta(path, "expert blob '" + name + "' is not of dtype blob");
                if (t->nbytes != lay.blob_bytes)
                    return bad_meta(path, strfmt("expert blob '%s' has %llu bytes; layout %s with d_expert %lld, d_model %lld needs %llu",
                                                 name.c_str(), (unsigned long long)t->nbytes, vl->as[(size_t)v].c_str(), (long long)F,
                                                 (long long)D, (unsigned long long)lay.blob_bytes));
                if (t->offset % kIoAlign) return bad_meta(path, strfmt("expert blob '%s' is not 4096-byte aligned", name.c_str()));
                if (t->offset > f.size() || t->nbytes > f.size() - t->offset)
                    return bad_meta(path, strfmt("expert blob '%s' lies past the end of the file", name.c_str()));
                blob_off[(size_t)unit(l, e, v)] = t->offset;
            }
        }
    }
    return Status::ok();
}

Status ExpertStore::open(const EdgeFile& f, const Options& opt, std::unique_ptr<ExpertStore>* out) {
    std::unique_ptr<ExpertStore> store(new ExpertStore());
    store->impl_.reset(new Impl());
    Impl& m = *store->impl_;
    m.opt = opt;
    CachePolicy policy;
    EDGE_TRY(cache_policy_parse(opt.policy, &policy));
    if (opt.io_threads < 1 || opt.io_threads > 64)
        return status_error(Code::INVALID_ARGUMENT, strfmt("expert store: io_threads = %d (use 1..64)", opt.io_threads));
    if (!std::isfinite(opt.lowbit_threshold))
        return status_error(Code::INVALID_ARGUMENT, "expert store: lowbit_threshold must be finite");
    if (opt.decay_tokens < 1) return status_error(Code::INVALID_ARGUMENT, "expert store: decay_tokens must be >= 1");
    if (opt.cache_bytes < 0) return status_error(Code::INVALID_ARGUMENT, "expert store: cache_bytes must be >= 0");

    EDGE_TRY(m.parse(f));
    m.size_buffers();

    ExpertCache::Config cc;
    m.n_slots = std::min<int64_t>(opt.cache_bytes / m.slot_bytes, m.n_units());
    if (m.n_slots < m.k) {
        const double mib = 1.0 / (1 << 20);
        return status_error(Code::OUT_OF_MEMORY,
                            strfmt("%s: the expert cache of %.1f MiB holds %lld slots of %.2f MiB, but one layer uses %d experts "
                                   "(moe.n_experts_used) and needs %d slots = %.1f MiB: give the cache %.1f MiB more (raise --mem)",
                                   m.path.c_str(), (double)opt.cache_bytes * mib, (long long)(opt.cache_bytes / m.slot_bytes),
                                   (double)m.slot_bytes * mib, m.k, m.k, (double)(m.k * m.slot_bytes) * mib,
                                   (double)(m.k * m.slot_bytes - opt.cache_bytes) * mib));
    }
    EDGE_TRY(m.arena.take(opt.slots, 0, (size_t)(m.n_slots * m.slot_bytes), "the expert cache"));
    m.staging.resize((size_t)opt.io_threads);
    for (size_t i = 0; i < m.staging.size(); ++i)
        EDGE_TRY(m.staging[i].take(opt.staging, i * m.staging_bytes, (size_t)m.staging_bytes, "the expert I/O staging buffers"));

    cc.n_layers = m.L;
    cc.n_experts = m.E;
    cc.n_variants = m.V;
    cc.n_used = m.k;
    cc.first_layer = m.first_moe;
    cc.n_slots = m.n_slots;
    cc.policy = policy;
    cc.decay_tokens = opt.decay_tokens;
    m.cache.init(cc);
    m.in_urgent.assign((size_t)m.n_slots, 0);
    m.in_normal.assign((size_t)m.n_slots, 0);
    m.demanded.assign((size_t)m.n_slots, 0);
    m.error.assign((size_t)m.n_slots, Status::ok());

    EDGE_TRY(IoFile::open(m.path, opt.direct_io, &m.file));
    m.reader.reset(new IoReader(&m, opt.io_threads, m.n_slots));
    *out = std::move(store);
    return Status::ok();
}

ExpertStore::~ExpertStore() = default;

Status ExpertStore::measure(const EdgeFile& f, const Options& opt, Sizes* out) {
    Impl m;
    EDGE_TRY(m.parse(f));
    m.size_buffers();
    out->slot_bytes = m.slot_bytes;
    out->io_buffer_bytes = (int64_t)m.staging_bytes * opt.io_threads;
    out->n_units = m.n_units();
    out->n_variants = m.V;
    return Status::ok();
}

int64_t ExpertStore::slots_bytes(const Sizes& s, int64_t cache_bytes) {
    return s.slot_bytes > 0 ? std::min<int64_t>(cache_bytes / s.slot_bytes, s.n_units) * s.slot_bytes : 0;
}

int64_t ExpertStore::slot_bytes() const { return impl_->slot_bytes; }
int64_t ExpertStore::n_slots() const { return impl_->n_slots; }
int64_t ExpertStore::io_buffer_bytes() const { return (int64_t)impl_->staging_bytes * impl_->opt.io_threads; }
int ExpertStore::n_variants() const { return impl_->V; }
bool ExpertStore::direct_io() const { return impl_->file->direct(); }

int ExpertStore::default_variant(int layer, int expert) const {
    const Impl& m = *impl_;
    if (layer < 0 || layer >= m.L || expert < 0 || expert >= m.E) return 0;
    return m.plan_of(layer, expert);
}

// ---- forward-thread calls ----

void ExpertStore::begin_layer(int layer) {
    Impl& m = *impl_;
    if (layer < 0 || layer >= m.L) return;
    std::lock_guard<std::mutex> lk(m.mu);
    m.cache.begin_layer(layer);
}

void ExpertStore::prefetch(int layer, const int32_t* experts, int n) { prefetch(layer, experts, nullptr, n); }

void ExpertStore::prefetch(int layer, const int32_t* experts, const float* weights, int n) {
    Impl& m = *impl_;
    if (layer < 0 || layer >= m.L || !m.is_moe[(size_t)layer] || !experts) return;
    std::lock_guard<std::mutex> lk(m.mu);
    for (int i = 0; i < n; ++i) {
        const int e = experts[i];
        if (e < 0 || e >= m.E) continue;
        const int v = m.plan_of(layer, e);
        int32_t u = m.cache.unit(layer, e, v);
        int32_t s = m.cache.slot_of(u), evicted;
        if (s < 0 && m.lowbit_ok(weights, i, v)) {  // not cached in its planned variant and light: the lower one
            u = m.cache.unit(layer, e, v + 1);
            s = m.cache.slot_of(u);
        }
        if (s >= 0) {
            m.cache.note_prefetch(s, false);
            continue;
        }
        s = m.cache.claim(u, true, &evicted);
        if (s < 0) continue;  // nothing worth evicting for it
        m.st.evictions += evicted >= 0;
        m.cache.note_prefetch(s, true);
        ++m.st.prefetch_issued;
        m.submit(s, false);
    }
}

Status ExpertStore::acquire_any(int layer, const int32_t* experts, const float* weights, int n, int* which,
                                ExpertMatrices* out) {
    Impl& m = *impl_;
    if (layer < 0 || layer >= m.L || !m.is_moe[(size_t)layer])
        return status_error(Code::INVALID_ARGUMENT, strfmt("acquire: layer %d is not an MoE layer", layer));
    if (n < 1 || !experts || !which || !out) return status_error(Code::INVALID_ARGUMENT, "acquire: no experts given");
    for (int i = 0; i < n; ++i)
        if (experts[i] < 0 || experts[i] >= m.E)
            return status_error(Code::INVALID_ARGUMENT, strfmt("acquire: expert %d out of range (0..%d)", experts[i], m.E - 1));
    auto lowbit_ok = [&](int i, int v) { return m.lowbit_ok(weights, i, v); };

    std::unique_lock<std::mutex> lk(m.mu);
    double stalled = 0;
    for (;;) {
        // 1. Serve the first requested unit that is ready (the planned variant; a cold low-weight expert
        //    may be served from the next lower variant when that one is ready).
        for (int i = 0; i < n; ++i) {
            const int v = m.plan_of(layer, experts[i]);
            int served = v;
            int32_t s = m.cache.slot_of(m.cache.unit(layer, experts[i], v));
            if ((s < 0 || m.cache.slot(s).state != SLOT_READY) && lowbit_ok(i, v)) {
                served = v + 1;
                s = m.cache.slot_of(m.cache.unit(layer, experts[i], served));
            }
            if (s < 0 || m.cache.slot(s).state != SLOT_READY) continue;
            CacheSlot& c = m.cache.slot(s);
            if (m.demanded[(size_t)s]) ++m.st.misses;
            else ++m.st.hits;
            m.demanded[(size_t)s] = 0;
            m.st.prefetch_used += c.pf_pending;
            m.st.lowbit_serves += served != v;
            m.st.io_stall_s += stalled;
            m.cache.note_use(s);
            ++c.pins;
            m.fill(s, served, out);
            *which = i;
            return Status::ok();
        }
        // 2. A requested unit whose read failed twice: report it and free the slot (a later request
        //    reads it afresh).
        for (int i = 0; i < n; ++i) {
            const int v = m.plan_of(layer, experts[i]);
            for (int w = v; w <= v + 1 && w < m.V; ++w) {
                if (w > v && !lowbit_ok(i, v)) break;
                int32_t s = m.cache.slot_of(m.cache.unit(layer, experts[i], w));
                if (s < 0 || m.cache.slot(s).state != SLOT_FAILED) continue;
                Status err = m.error[(size_t)s];
                m.error[(size_t)s] = Status::ok();
                m.demanded[(size_t)s] = 0;
                m.cache.unbind(s);
                m.st.io_stall_s += stalled;
                return err;
            }
        }
        // 3. Start (urgent) reads for the absent ones; bump queued prefetches to the urgent queue.
        bool waiting_on_ours = false;
        for (int i = 0; i < n; ++i) {
            const int v = m.plan_of(layer, experts[i]);
            int32_t u = m.cache.unit(layer, experts[i], v);
            int32_t s = m.cache.slot_of(u);
            if (s < 0 && lowbit_ok(i, v)) {  // cold and light: the shorter read of the lower variant
                u = m.cache.unit(layer, experts[i], v + 1);
                s = m.cache.slot_of(u);
            }
            if (s < 0) {
                int32_t evicted;
                s = m.cache.claim(u, false, &evicted);
                if (s < 0) continue;  // every slot pinned or in flight: wait for a read to finish
                m.st.evictions += evicted >= 0;
            }
            if (m.cache.slot(s).state == SLOT_QUEUED) m.submit(s, true);
            m.demanded[(size_t)s] = 1;
            waiting_on_ours = true;
        }
        if (!waiting_on_ours) {
            bool in_flight = false;
            for (int64_t s = 0; s < m.n_slots && !in_flight; ++s) {
                SlotState x = m.cache.slot((int32_t)s).state;
                in_flight = x == SLOT_QUEUED || x == SLOT_READING;
            }
            if (!in_flight) {
                m.st.io_stall_s += stalled;
                return status_error(Code::OUT_OF_MEMORY,
                                    strfmt("expert cache: all %lld slots are pinned; release experts before acquiring more "
                                           "(at most %lld may be held at once)", (long long)m.n_slots, (long long)m.n_slots));
            }
        }
        const double t0 = now_s();
        m.cv.wait(lk);
        stalled += now_s() - t0;
    }
}

void ExpertStore::release(int layer, int expert) {
    Impl& m = *impl_;
    if (layer < 0 || layer >= m.L || expert < 0 || expert >= m.E) return;
    std::lock_guard<std::mutex> lk(m.mu);
    for (int v = 0; v < m.V; ++v) {
        int32_t s = m.cache.slot_of(m.cache.unit(layer, expert, v));
        if (s >= 0 && m.cache.slot(s).pins > 0) {
            --m.cache.slot(s).pins;
            return;
        }
    }
}

void ExpertStore::note_prediction(int64_t true_total, int64_t predicted_true) {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->st.true_total += true_total;
    impl_->st.predicted_true += predicted_true;
}

void ExpertStore::note_hits(int64_t n) {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->st.hits += n;
}

ExpertStats ExpertStore::stats() const {
    std::lock_guard<std::mutex> lk(impl_->mu);
    return impl_->st;
}

void ExpertStore::reset_stats() {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->st = ExpertStats{};
}

}  // namespace edge
