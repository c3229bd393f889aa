// io_reader.cpp — O_DIRECT pread with a buffered+DONTNEED fallback, and the reader threads (io_reader.h).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // O_DIRECT
#endif
#include "io_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace edge {

namespace {

std::atomic<bool> g_logged_fallback{false};

void log_fallback_once(const std::string& path, const char* why) {
    if (!g_logged_fallback.exchange(true))
        std::fprintf(stderr, "edgerun: %s: O_DIRECT refused (%s); reading with pread + posix_fadvise(DONTNEED) instead\n",
                     path.c_str(), why);
}

}  // namespace

// ---- AlignedBuffer ----

AlignedBuffer::~AlignedBuffer() { drop(); }

void AlignedBuffer::drop() {
    if (owned_) std::free(p_);
    p_ = nullptr;
    n_ = 0;
    owned_ = true;
}

Status AlignedBuffer::view(uint8_t* p, size_t bytes, const char* what) {
    drop();
    if ((uintptr_t)p % kIoAlign)
        return status_error(Code::INVALID_ARGUMENT, strfmt("%s: memory at %p is not %lld-byte aligned", what, (void*)p, (long long)kIoAlign));
    p_ = p;
    n_ = bytes;
    owned_ = false;
    return Status::ok();
}

Status AlignedBuffer::alloc(size_t bytes, const char* what) {
    drop();
    if (bytes == 0) return Status::ok();
    void* p = nullptr;
    if (posix_memalign(&p, kIoAlign, (size_t)io_align_up(bytes)) != 0 || !p)
        return status_error(Code::OUT_OF_MEMORY, strfmt("cannot allocate %zu bytes for %s", bytes, what));
    p_ = static_cast<uint8_t*>(p);
    n_ = bytes;
    return Status::ok();
}

// ---- IoFile ----

IoFile::~IoFile() {
    if (fd_ >= 0) ::close(fd_);
    if (fd_direct_ >= 0 && fd_direct_ != fd_) ::close(fd_direct_);
}

Status IoFile::open(const std::string& path, bool direct, std::unique_ptr<IoFile>* out) {
    std::unique_ptr<IoFile> f(new IoFile());
    f->path_ = path;
    if (direct) {
        f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
        if (f->fd_ >= 0) {
            f->direct_ = true;
            // Probe: some filesystems accept the flag at open and refuse the read.
            AlignedBuffer probe;
            EDGE_TRY(probe.alloc(kIoAlign, "the O_DIRECT probe"));
            ssize_t r;
            do { r = ::pread(f->fd_, probe.data(), kIoAlign, 0); } while (r < 0 && errno == EINTR);
            if (r < 0 && errno == EINVAL) EDGE_TRY(f->fall_back_to_buffered());
        } else if (errno != EINVAL) {
            return status_error(Code::IO_ERROR, path + ": cannot open for reading: " + std::strerror(errno));
        } else {
            log_fallback_once(path, "open: EINVAL");
        }
    }
    if (f->fd_ < 0) {
        f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (f->fd_ < 0) return status_error(Code::IO_ERROR, path + ": cannot open for reading: " + std::strerror(errno));
        f->direct_ = false;
        posix_fadvise(f->fd_, 0, 0, POSIX_FADV_RANDOM);  // no read-ahead past the ranges we drop
    }
    *out = std::move(f);
    return Status::ok();
}

Status IoFile::fall_back_to_buffered() const {
    std::lock_guard<std::mutex> lk(mu_);
    if (!direct_) return Status::ok();  // another thread already did
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return status_error(Code::IO_ERROR, path_ + ": cannot reopen without O_DIRECT: " + std::strerror(errno));
    log_fallback_once(path_, "read: EINVAL");
    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);  // no read-ahead past the ranges we drop
    fd_direct_ = fd_;  // a concurrent reader may still use it: close at destruction
    fd_ = fd;
    direct_ = false;
    return Status::ok();
}

Status IoFile::read(uint64_t offset, uint64_t len, uint64_t need, uint8_t* dst) const {
    EDGE_ASSERT(offset % kIoAlign == 0 && len % kIoAlign == 0 && ((uintptr_t)dst % kIoAlign) == 0 && need <= len);
    int fd;
    bool direct;
    {
        std::lock_guard<std::mutex> lk(mu_);
        fd = fd_;
        direct = direct_;
    }
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = ::pread(fd, dst + done, (size_t)(len - done), (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EINVAL && direct) {
                EDGE_TRY(fall_back_to_buffered());
                std::lock_guard<std::mutex> lk(mu_);
                fd = fd_;
                direct = direct_;
                continue;
            }
            return status_error(Code::IO_ERROR, strfmt("read of %llu bytes at offset %llu failed: %s", (unsigned long long)len,
                                                       (unsigned long long)offset, std::strerror(errno)));
        }
        if (r == 0) break;  // end of file
        done += (uint64_t)r;
        if (direct && done % kIoAlign) break;  // a partial page: the end of the file
    }
    if (!direct) posix_fadvise(fd, (off_t)offset, (off_t)len, POSIX_FADV_DONTNEED);
    if (done < need)
        return status_error(Code::BAD_FILE, strfmt("short read: %llu of %llu bytes at offset %llu (the file was truncated?)",
                                                   (unsigned long long)done, (unsigned long long)need, (unsigned long long)offset));
    return Status::ok();
}

// ---- IoReader ----

void IoReader::Ring::push(int64_t x) {
    EDGE_ASSERT(count < (int64_t)v.size());
    v[(size_t)((head + count) % (int64_t)v.size())] = x;
    ++count;
}

int64_t IoReader::Ring::pop() {
    int64_t x = v[(size_t)head];
    head = (head + 1) % (int64_t)v.size();
    --count;
    return x;
}

IoReader::IoReader(IoSink* sink, int n_threads, int64_t queue_capacity) : sink_(sink) {
    if (n_threads < 1) n_threads = 1;
    if (queue_capacity < 1) queue_capacity = 1;
    urgent_.v.resize((size_t)queue_capacity);
    normal_.v.resize((size_t)queue_capacity);
    for (int i = 0; i < n_threads; ++i) threads_.emplace_back(&IoReader::worker, this, i);
}

IoReader::~IoReader() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void IoReader::submit(int64_t job, bool urgent) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        (urgent ? urgent_ : normal_).push(job);
    }
    cv_.notify_one();
}

void IoReader::worker(int id) {
    for (;;) {
        int64_t job;
        bool urgent;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || urgent_.count || normal_.count; });
            if (stop_) return;
            urgent = urgent_.count > 0;
            job = urgent ? urgent_.pop() : normal_.pop();
        }
        sink_->io_run(id, job, urgent);
    }
}

}  // namespace edge
