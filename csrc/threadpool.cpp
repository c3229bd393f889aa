// threadpool.cpp — spin-then-sleep worker pool (see threadpool.h).
#include "threadpool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EDGE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define EDGE_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define EDGE_CPU_RELAX() ((void)0)
#endif

namespace edge {

namespace {
constexpr int kSpinIters = 1 << 16;  // ~ tens of microseconds before a worker sleeps
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back(&ThreadPool::worker, this, i);
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void ThreadPool::chunk(int id, int64_t* b, int64_t* e) const {
    int64_t units = (n_ + grain_ - 1) / grain_;
    int64_t per = units / n_threads_, extra = units % n_threads_;
    int64_t ub = id * per + (id < extra ? id : extra);
    int64_t ue = ub + per + (id < extra ? 1 : 0);
    *b = ub * grain_ < n_ ? ub * grain_ : n_;
    *e = ue * grain_ < n_ ? ue * grain_ : n_;
}

void ThreadPool::run(int64_t n, const Fn& fn, int64_t grain) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n <= grain) {
        fn(0, n, 0);
        return;
    }
    fn_ = &fn;
    n_ = n;
    grain_ = grain < 1 ? 1 : grain;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        // The lock orders the publication against a worker that is about to sleep.
        std::lock_guard<std::mutex> lk(mu_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    int64_t b, e;
    chunk(0, &b, &e);
    if (b < e) fn(b, e, 0);
    while (pending_.load(std::memory_order_acquire) > 0) EDGE_CPU_RELAX();
    fn_ = nullptr;
}

void ThreadPool::worker(int id) {
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = generation_.load(std::memory_order_acquire)) == seen) {
            if (++spins < kSpinIters) {
                EDGE_CPU_RELAX();
                continue;
            }
            std::unique_lock<std::mutex> lk(mu_);
            sleepers_.fetch_add(1);
            cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            sleepers_.fetch_sub(1);
            spins = 0;
        }
        seen = g;
        if (stop_.load()) return;
        int64_t b, e;
        chunk(id, &b, &e);
        if (b < e) (*fn_)(b, e, id);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace edge
