// threadpool.h — a fixed pool of worker threads for data-parallel loops over index ranges.
//
// run(n, fn) splits [0, n) into size() contiguous chunks (rounded to `grain`), runs
// fn(begin, end, thread_id) on every non-empty chunk — chunk 0 on the calling thread — and returns
// when all are done. Workers spin briefly between jobs (decode issues ~150 jobs per token, so
// waking sleeping threads each time would cost more than the work) and then sleep on a condvar.
// Not reentrant: call run() from one thread at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace edge {

class ThreadPool {
public:
    using Fn = std::function<void(int64_t begin, int64_t end, int thread_id)>;

    explicit ThreadPool(int n_threads);  // n_threads >= 1 (including the caller)
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    void run(int64_t n, const Fn& fn, int64_t grain = 1);

private:
    void worker(int id);
    void chunk(int id, int64_t* b, int64_t* e) const;

    int n_threads_;
    std::vector<std::thread> threads_;
    const Fn* fn_ = nullptr;
    int64_t n_ = 0, grain_ = 1;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<int> sleepers_{0};
};

}  // namespace edge
