// threadpool.cpp — dynamic-chunk, spin-then-sleep worker pool (see threadpool.h).
#include "threadpool.h"

#include <sched.h>

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
constexpr int kSpinIters = 1 << 14;   // pause-spins before yielding the CPU
constexpr int kYieldIters = 1 << 10;  // sched_yield()s before sleeping on the condvar
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back(&ThreadPool::worker, this, i);
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true);
        job_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void ThreadPool::work_on(uint32_t job, int thread_id) {
    uint64_t w = work_.load(std::memory_order_acquire);
    if ((uint32_t)(w >> 32) != job) return;
    const Job& jb = jobs_[job % kJobSlots];  // published before w (release/acquire on work_)
    const Fn& fn = *jb.fn.load(std::memory_order_relaxed);
    const int64_t n = jb.n.load(std::memory_order_relaxed), chunk = jb.chunk.load(std::memory_order_relaxed);
    const uint32_t n_chunks = jb.n_chunks.load(std::memory_order_relaxed);
    for (;;) {
        if ((uint32_t)(w >> 32) != job || (uint32_t)w >= n_chunks) return;
        if (!work_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel)) continue;
        int64_t b = (int64_t)(uint32_t)w * chunk;
        int64_t e = b + chunk < n ? b + chunk : n;
        fn(b, e, thread_id);
        done_.fetch_add(1, std::memory_order_acq_rel);
        w = work_.load(std::memory_order_acquire);
    }
}

void ThreadPool::run(int64_t n, const Fn& fn, int64_t grain) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t units = (n + grain - 1) / grain;
    if (n_threads_ == 1 || units == 1) {
        fn(0, n, 0);
        return;
    }
    int64_t target = (int64_t)n_threads_ * 4;
    int64_t per = (units + target - 1) / target;  // units per chunk
    const int64_t chunk = per * grain;
    const uint32_t n_chunks = (uint32_t)((n + chunk - 1) / chunk);
    uint32_t job = job_.load(std::memory_order_relaxed) + 1;
    Job& jb = jobs_[job % kJobSlots];
    jb.fn.store(&fn, std::memory_order_relaxed);
    jb.n.store(n, std::memory_order_relaxed);
    jb.chunk.store(chunk, std::memory_order_relaxed);
    jb.n_chunks.store(n_chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    work_.store((uint64_t)job << 32, std::memory_order_release);
    {
        // The lock orders the publication against a worker that is about to sleep.
        std::lock_guard<std::mutex> lk(mu_);
        job_.store(job, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    work_on(job, 0);
    for (int spins = 0; done_.load(std::memory_order_acquire) < n_chunks;) {
        if (++spins < kSpinIters) EDGE_CPU_RELAX();
        else sched_yield();  // a worker holding a chunk may be descheduled: let it run
    }
}

void ThreadPool::worker(int id) {
    uint32_t seen = 0;
    for (;;) {
        uint32_t j;
        int spins = 0;
        while ((j = job_.load(std::memory_order_acquire)) == seen) {
            ++spins;
            if (spins < kSpinIters) {
                EDGE_CPU_RELAX();
            } else if (spins < kSpinIters + kYieldIters) {
                sched_yield();
            } else {
                std::unique_lock<std::mutex> lk(mu_);
                sleepers_.fetch_add(1);
                cv_.wait(lk, [&] { return job_.load(std::memory_order_acquire) != seen; });
                sleepers_.fetch_sub(1);
                spins = 0;
            }
        }
        seen = j;
        if (stop_.load()) return;
        work_on(j, id);
    }
}

}  // namespace edge
