// io_reader.h — aligned reads that bypass the page cache, and the background threads that issue them.
//
// IoFile: one file opened for reading with O_DIRECT. read(offset, len, need, dst) reads the byte range
// [offset, offset + len) into dst; offset, len and dst must be multiples of kIoAlign (4096). The read
// succeeds when at least `need` bytes arrived (need <= len: the last page of a file may be partial, so
// a range aligned out to 4096 may end past EOF). Short reads, EINTR and partial transfers are looped;
// fewer than `need` bytes (a file truncated under us) is a BAD_FILE Status, an OS error an IO_ERROR
// Status. Where the filesystem refuses O_DIRECT (open or the first read fails with EINVAL, e.g. tmpfs),
// the file is read with plain pread followed by posix_fadvise(DONTNEED) on the range (and
// FADV_RANDOM on the descriptor, so read-ahead brings in nothing beyond it), so the page cache still
// does not keep the bytes; this is logged once per process on stderr.
// Thread-safe: any number of threads may call read() at once.
//
// IoReader: n threads that pop job ids from two FIFO queues (urgent first) and hand each to
// IoSink::io_run(thread, job, urgent) on the popping thread. The sink does the reading and owns every
// buffer; the reader owns nothing but the queues, so one design serves the expert cache and the layer
// window. Queues are fixed rings of `queue_capacity` entries each (no allocation after construction);
// the sink must never have more than that many entries outstanding per queue (it tracks which jobs it
// queued). Threads sleep on a condition variable when both queues are empty. The destructor stops the
// threads after the job each is running; queued jobs are dropped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

namespace edge {

constexpr uint64_t kIoAlign = 4096;

inline uint64_t io_align_up(uint64_t x) { return (x + kIoAlign - 1) & ~(kIoAlign - 1); }
inline uint64_t io_align_down(uint64_t x) { return x & ~(kIoAlign - 1); }

// A kIoAlign-aligned heap buffer (posix_memalign); pages are touched only when written. Or a view of
// memory someone else allocated (the model's planner), kIoAlign-aligned, which it does not free.
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    ~AlignedBuffer();
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    AlignedBuffer(AlignedBuffer&& o) noexcept : p_(o.p_), n_(o.n_), owned_(o.owned_) { o.p_ = nullptr; o.n_ = 0; }

    // Returns OUT_OF_MEMORY naming `what` when the allocation fails.
    Status alloc(size_t bytes, const char* what);
    // Uses `bytes` at p (kIoAlign-aligned, or INVALID_ARGUMENT naming `what`) without owning them.
    Status view(uint8_t* p, size_t bytes, const char* what);
    // view(p + offset, bytes) when p is set, else alloc(bytes): memory planned by a caller, or our own.
    Status take(uint8_t* p, size_t offset, size_t bytes, const char* what) { return p ? view(p + offset, bytes, what) : alloc(bytes, what); }
    uint8_t* data() const { return p_; }
    size_t size() const { return n_; }

private:
    void drop();
    uint8_t* p_ = nullptr;
    size_t n_ = 0;
    bool owned_ = true;
};

class IoFile {
public:
    ~IoFile();
    IoFile(const IoFile&) = delete;
    IoFile& operator=(const IoFile&) = delete;

    // direct = false opens buffered (with the DONTNEED advice after each read).
    static Status open(const std::string& path, bool direct, std::unique_ptr<IoFile>* out);

    Status read(uint64_t offset, uint64_t len, uint64_t need, uint8_t* dst) const;
    bool direct() const { return direct_; }
    const std::string& path() const { return path_; }

private:
    IoFile() = default;
    Status fall_back_to_buffered() const;

    std::string path_;
    mutable std::mutex mu_;        // guards the switch to buffered mode
    mutable int fd_ = -1;          // the descriptor reads use (O_DIRECT unless fallen back)
    mutable int fd_direct_ = -1;   // kept open until destruction if we fell back mid-run
    mutable bool direct_ = false;
};

class IoSink {
public:
    virtual ~IoSink() = default;
    virtual void io_run(int thread, int64_t job, bool urgent) = 0;
};

class IoReader {
public:
    IoReader(IoSink* sink, int n_threads, int64_t queue_capacity);
    ~IoReader();
    IoReader(const IoReader&) = delete;
    IoReader& operator=(const IoReader&) = delete;

    int n_threads() const { return (int)threads_.size(); }
    // Queues `job`; the caller guarantees room (EDGE_ASSERTed).
    void submit(int64_t job, bool urgent);

private:
    struct Ring {
        std::vector<int64_t> v;
        int64_t head = 0, count = 0;
        void push(int64_t x);
        int64_t pop();
    };
    void worker(int id);

    IoSink* sink_;
    std::mutex mu_;
    std::condition_variable cv_;
    Ring urgent_, normal_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace edge
