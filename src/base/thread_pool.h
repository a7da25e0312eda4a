// ThreadPool: a fixed set of workers that block (never spin) between jobs. The CPU backend uses
// it instead of OpenMP, whose idle workers spin and starve the engine's adapter-loader threads
// on small machines (measured: 80% of a 2-core run spent spinning in libgomp).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ls {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // total threads including the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(chunk_begin, chunk_end) over [0, n) split into num_threads() contiguous chunks;
  // the caller runs one chunk and returns when all are done. Runs inline when n < min_per_thread*2.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                    int64_t min_per_thread = 1);

  // The process-wide pool sized to the hardware.
  static ThreadPool& shared();

 private:
  void worker(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::mutex call_mu_;  // one parallel_for at a time
};

}  // namespace ls
