// threadpool.h — a fixed pool of worker threads for data-parallel loops over index ranges.
//
// run(n, fn, grain) splits [0, n) into chunks (multiples of `grain`, about 4 per thread) that the
// caller and the workers claim dynamically, calls fn(begin, end, thread_id) for each, and returns
// when all are done. The caller works too, so a worker that the OS has descheduled (an
// oversubscribed machine) delays nothing beyond the chunk it already holds. Workers spin briefly
// between jobs (decode issues ~150 jobs per token, and waking sleeping threads every time would cost
// more than the work), then sleep on a condvar. Not reentrant: call run() from one thread at a time.
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
    // Claims and runs chunks of job `job` until none is left.
    void work_on(uint32_t job, int thread_id);

    int n_threads_;
    std::vector<std::thread> threads_;
    // Job parameters in a ring indexed by job id, written by run() before the id is published in work_.
    // A worker reads the slot of the id it saw in work_, so a worker delayed past the end of a job
    // can never pair that job's id with the next job's parameters (chunk count, fn): the slot it reads
    // is rewritten only kJobSlots jobs later, long after every claim on its id has failed.
    // (Before the ring, one set of fields was overwritten by the next job while a late worker read it:
    // a mismatched chunk count let a stale claim succeed and run a finished job's fn. ThreadSanitizer.)
    struct Job {
        std::atomic<const Fn*> fn{nullptr};
        std::atomic<int64_t> n{0}, chunk{1};
        std::atomic<uint32_t> n_chunks{0};
    };
    static constexpr uint32_t kJobSlots = 4;
    Job jobs_[kJobSlots];
    // High 32 bits: job id; low 32 bits: next unclaimed chunk. A claim is a CAS that also checks
    // the job id, so a late worker can never run a chunk of a job it did not read.
    std::atomic<uint64_t> work_{0};
    std::atomic<uint32_t> done_{0};   // chunks finished in the current job
    std::atomic<uint32_t> job_{0};    // id of the latest published job
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<int> sleepers_{0};
};

}  // namespace edge
