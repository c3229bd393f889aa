// layer_stream.cpp — a window of layer buffers filled ahead by reader threads (layer_stream.h).
#include "layer_stream.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "io_reader.h"
#include "quant.h"

namespace edge {

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

enum BufState : uint8_t { BUF_FREE = 0, BUF_QUEUED, BUF_READING, BUF_READY, BUF_FAILED };

struct Buf {
    int layer = -1;
    BufState state = BUF_FREE;
    int pins = 0;
    bool in_urgent = false, in_normal = false;
    bool demanded = false;  // an acquire found it not ready
    Status error;
};

// "blk.<n>.<rest>" → n, else -1.
int layer_of_name(const std::string& name) {
    if (name.compare(0, 4, "blk.") != 0) return -1;
    const char* p = name.c_str() + 4;
    char* end = nullptr;
    long v = std::strtol(p, &end, 10);
    if (end == p || *end != '.' || v < 0 || v > 1000000) return -1;
    return (int)v;
}

}  // namespace

struct LayerStream::Impl final : IoSink {
    std::string path;
    int L = 0, W = 0;
    std::vector<uint64_t> begin, end, need;  // per layer: aligned range and the bytes that must arrive
    int64_t buf_bytes = 0;
    AlignedBuffer arena;
    std::unique_ptr<IoFile> file;
    std::unique_ptr<IoReader> reader;

    mutable std::mutex mu;
    std::condition_variable cv;
    std::vector<Buf> bufs;
    std::vector<int> buf_of;  // per layer, -1: not in a buffer
    int cur = 0;              // the layer most recently acquired
    int win = 0;              // the window: layers win … win+W−1 keep their buffers (win = cur, or cur+1
                              // once cur is released)
    LayerStreamStats st;

    ~Impl() override { reader.reset(); }

    uint8_t* buf_ptr(int b) const { return arena.data() + (size_t)b * (size_t)buf_bytes; }
    int dist(int layer) const { return (layer - win + L) % L; }  // cyclic distance ahead of the window start

    void submit(int b, bool urgent) {
        Buf& x = bufs[(size_t)b];
        bool& flag = urgent ? x.in_urgent : x.in_normal;
        if (flag) return;
        flag = true;
        reader->submit(b, urgent);
    }

    // A buffer for `layer`: free, failed, else the ready unpinned one whose layer is furthest ahead and
    // outside the window. -1 if none.
    int claim(int layer) {
        int best = -1, best_d = -1;
        for (int b = 0; b < W; ++b) {
            const Buf& x = bufs[(size_t)b];
            if (x.pins) continue;
            int d;
            if (x.state == BUF_FREE || x.state == BUF_FAILED) d = L + 1;
            else if (x.state == BUF_READY && dist(x.layer) >= W) d = dist(x.layer);
            else continue;
            if (d > best_d) best = b, best_d = d;
        }
        if (best < 0) return -1;
        Buf& x = bufs[(size_t)best];
        if (x.layer >= 0) buf_of[(size_t)x.layer] = -1;
        x.layer = layer;
        x.state = BUF_QUEUED;
        x.demanded = false;
        x.error = Status::ok();
        buf_of[(size_t)layer] = best;
        return best;
    }

    // Queues reads of the window's layers after `from` (the window start, or its successor).
    void read_ahead(int from) {
        for (int j = from; j < W; ++j) {
            const int layer = (win + j) % L;
            if (buf_of[(size_t)layer] >= 0) continue;
            const int b = claim(layer);
            if (b < 0) return;
            submit(b, false);
        }
    }

    void io_run(int thread, int64_t job, bool urgent) override {
        const int b = (int)job;
        int layer;
        {
            std::lock_guard<std::mutex> lk(mu);
            Buf& x = bufs[(size_t)b];
            (urgent ? x.in_urgent : x.in_normal) = false;
            if (x.state != BUF_QUEUED) return;
            x.state = BUF_READING;
            layer = x.layer;
        }
        const uint64_t off = begin[(size_t)layer], len = end[(size_t)layer] - off;
        Status r;
        int attempts = 0;
        double busy = 0;
        while (attempts < 2) {
            ++attempts;
            double t0 = now_s();
            r = file->read(off, len, need[(size_t)layer], buf_ptr(b));
            busy += now_s() - t0;
            if (r.is_ok()) break;
        }
        {
            std::lock_guard<std::mutex> lk(mu);
            st.reads += attempts;
            st.bytes_read += (int64_t)len * attempts;
            st.retries += attempts - 1;
            st.io_busy_s += busy;
            Buf& x = bufs[(size_t)b];
            if (r.is_ok()) {
                x.state = BUF_READY;
            } else {
                x.state = BUF_FAILED;
                x.error = status_error(r.code, strfmt("%s: layer %d (file bytes %llu..%llu): %s; failed again when retried. "
                                                      "The file is corrupt or changed on disk: re-export it or check the storage device",
                                                      path.c_str(), layer, (unsigned long long)off,
                                                      (unsigned long long)(off + need[(size_t)layer]), r.msg.c_str()));
            }
        }
        cv.notify_all();
    }
};

namespace {

// Every layer's aligned byte range [begin, end) and the bytes it needs read (need), from the tensor table.
struct LayerRanges {
    std::vector<uint64_t> begin, end, need;
    int64_t buf_bytes = 0;  // the largest range
};

Status layer_ranges(const EdgeFile& f, LayerRanges* out) {
    int64_t n_layers;
    EDGE_TRY(f.get_i64("llm.n_layers", &n_layers));
    if (n_layers < 1 || n_layers > 100000)
        return status_error(Code::BAD_FILE, f.path() + strfmt(": llm.n_layers = %lld is out of range", (long long)n_layers));
    const int L = (int)n_layers;
    std::vector<uint64_t> lo((size_t)L, UINT64_MAX), hi((size_t)L, 0);
    for (const TensorInfo& t : f.tensors()) {
        const int layer = layer_of_name(t.name);
        if (layer < 0 || t.dtype == EDGE_DTYPE_BLOB) continue;
        if (layer >= L)
            return status_error(Code::BAD_FILE, f.path() + ": tensor '" + t.name + strfmt("' names layer %d of %d", layer, L));
        lo[(size_t)layer] = std::min(lo[(size_t)layer], t.offset);
        hi[(size_t)layer] = std::max(hi[(size_t)layer], t.offset + t.nbytes);
    }
    LayerRanges& r = *out;
    r.begin.resize((size_t)L);
    r.end.resize((size_t)L);
    r.need.resize((size_t)L);
    for (int i = 0; i < L; ++i) {
        if (lo[(size_t)i] == UINT64_MAX)
            return status_error(Code::BAD_FILE, f.path() + strfmt(": layer %d has no tensors (blk.%d.*)", i, i));
        r.begin[(size_t)i] = io_align_down(lo[(size_t)i]);
        r.end[(size_t)i] = io_align_up(hi[(size_t)i]);
        r.need[(size_t)i] = hi[(size_t)i] - r.begin[(size_t)i];  // the aligned tail past the last tensor may be EOF
        r.buf_bytes = std::max<int64_t>(r.buf_bytes, (int64_t)(r.end[(size_t)i] - r.begin[(size_t)i]));
    }
    return Status::ok();
}

}  // namespace

Status LayerStream::measure(const EdgeFile& f, int64_t* buffer_bytes) {
    LayerRanges r;
    EDGE_TRY(layer_ranges(f, &r));
    *buffer_bytes = r.buf_bytes;
    return Status::ok();
}

Status LayerStream::open(const EdgeFile& f, const Options& opt, std::unique_ptr<LayerStream>* out) {
    if (opt.window < 1 || opt.window > 1024) return status_error(Code::INVALID_ARGUMENT, strfmt("layer stream: window = %d (use 1..1024)", opt.window));
    if (opt.io_threads < 1 || opt.io_threads > 64)
        return status_error(Code::INVALID_ARGUMENT, strfmt("layer stream: io_threads = %d (use 1..64)", opt.io_threads));
    LayerRanges r;
    EDGE_TRY(layer_ranges(f, &r));
    std::unique_ptr<LayerStream> ls(new LayerStream());
    ls->impl_.reset(new Impl());
    Impl& m = *ls->impl_;
    m.path = f.path();
    m.L = (int)r.begin.size();
    m.W = opt.window;
    m.begin = std::move(r.begin);
    m.end = std::move(r.end);
    m.need = std::move(r.need);
    m.buf_bytes = r.buf_bytes;
    EDGE_TRY(m.arena.take(opt.buffers, 0, (size_t)(m.buf_bytes * m.W), "the layer window buffers"));
    m.bufs.resize((size_t)m.W);
    m.buf_of.assign((size_t)m.L, -1);
    EDGE_TRY(IoFile::open(m.path, opt.direct_io, &m.file));
    m.reader.reset(new IoReader(&m, opt.io_threads, m.W));
    *out = std::move(ls);
    return Status::ok();
}

LayerStream::~LayerStream() = default;

int LayerStream::n_layers() const { return impl_->L; }
uint64_t LayerStream::range_begin(int layer) const { return layer >= 0 && layer < impl_->L ? impl_->begin[(size_t)layer] : 0; }
uint64_t LayerStream::range_end(int layer) const { return layer >= 0 && layer < impl_->L ? impl_->end[(size_t)layer] : 0; }
int64_t LayerStream::buffer_bytes() const { return impl_->buf_bytes; }
int64_t LayerStream::total_bytes() const { return impl_->buf_bytes * impl_->W; }
bool LayerStream::direct_io() const { return impl_->file->direct(); }

Status LayerStream::acquire_layer(int i, const uint8_t** base) {
    Impl& m = *impl_;
    if (i < 0 || i >= m.L || !base) return status_error(Code::INVALID_ARGUMENT, strfmt("acquire_layer: layer %d out of range", i));
    std::unique_lock<std::mutex> lk(m.mu);
    m.cur = m.win = i;
    double stalled = 0;
    for (;;) {
        int b = m.buf_of[(size_t)i];
        if (b >= 0 && m.bufs[(size_t)b].state == BUF_READY) {
            Buf& x = m.bufs[(size_t)b];
            if (x.demanded) ++m.st.misses;
            else ++m.st.hits;
            x.demanded = false;
            ++x.pins;
            m.st.io_stall_s += stalled;
            m.read_ahead(1);
            *base = m.buf_ptr(b);
            return Status::ok();
        }
        if (b >= 0 && m.bufs[(size_t)b].state == BUF_FAILED) {
            Buf& x = m.bufs[(size_t)b];
            Status err = x.error;
            x = Buf{};
            m.buf_of[(size_t)i] = -1;
            m.st.io_stall_s += stalled;
            return err;
        }
        if (b < 0) b = m.claim(i);
        if (b >= 0) {
            if (m.bufs[(size_t)b].state == BUF_QUEUED) m.submit(b, true);
            m.bufs[(size_t)b].demanded = true;
        } else {
            bool in_flight = false;
            for (const Buf& x : m.bufs) in_flight |= x.state == BUF_QUEUED || x.state == BUF_READING;
            if (!in_flight) {
                m.st.io_stall_s += stalled;
                return status_error(Code::INVALID_ARGUMENT, strfmt("acquire_layer(%d): all %d layer buffers are pinned; release a layer first", i, m.W));
            }
        }
        m.read_ahead(1);
        const double t0 = now_s();
        m.cv.wait(lk);
        stalled += now_s() - t0;
    }
}

void LayerStream::release_layer(int i) {
    Impl& m = *impl_;
    if (i < 0 || i >= m.L) return;
    std::lock_guard<std::mutex> lk(m.mu);
    int b = m.buf_of[(size_t)i];
    if (b < 0 || m.bufs[(size_t)b].pins == 0) return;
    if (--m.bufs[(size_t)b].pins == 0 && i == m.cur && m.win == i) {
        m.win = (i + 1) % m.L;  // done with it: the window moves on and its buffer may take layer i+W
        m.read_ahead(0);
    }
}

LayerStreamStats LayerStream::stats() const {
    std::lock_guard<std::mutex> lk(impl_->mu);
    return impl_->st;
}

void LayerStream::reset_stats() {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->st = LayerStreamStats{};
}

}  // namespace edge
