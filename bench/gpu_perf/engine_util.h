// Helpers of the engine sections of gpu_perf_bench: an Engine sized as the server sizes it
// (page pool from --gpu-memory-utilization), a thread-safe log of every token's arrival time
// per request (the engine's callback runs on its thread), waits with deadlines, and PEFT
// adapter directories written to disk in parallel.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "gpu_perf/perf_common.h"

namespace ls::perf {

class EventLog {
 public:
  // The callback for request `key` (any int the caller picks).
  TokenCallback callback(int key);
  int64_t tokens(int key) const;
  bool finished(int key) const;
  std::string error(int key) const;
  std::vector<int64_t> times(int key) const;  // now_ns() of each token
  int64_t first_ns(int key) const;            // -1 before the first token
  int64_t finish_ns(int key) const;           // -1 before the end

 private:
  struct Req {
    std::vector<int64_t> t;
    bool finished = false;
    int64_t finish = -1;
    std::string error;
  };
  mutable std::mutex mu_;
  std::map<int, Req> reqs_;
};

// An Engine over rig.model with `max_num_seqs`, the pool kv_pool_bytes() gives (as `loraserve
// serve` sizes it), the host tier budget and loader threads of the flags.
std::unique_ptr<Engine> make_engine(const Ctx& ctx, Rig& rig, int max_num_seqs,
                                    int64_t* pool_bytes);

// Polls `done` every 0.5 ms; false when `timeout_s` passed first.
bool wait_until(const std::function<bool()>& done, double timeout_s);

// `count` PEFT adapter directories (adapter_config.json + bf16 adapter_model.safetensors,
// rank `rank` on q,k,v,o) under `base`, written by parallel threads; returns their paths.
std::vector<std::string> write_adapter_dirs(const ModelConfig& c, const std::string& base,
                                            int count, int rank, uint64_t seed);

// Flushes every file of `dir` and asks the kernel to drop it from the page cache
// (posix_fadvise DONTNEED, no root needed), so the next read comes from the disk; false when
// some file could not be evicted.
bool evict_from_page_cache(const std::string& dir);

// `len` random token ids in [3, vocab).
std::vector<int32_t> random_prompt(const ModelConfig& c, int len, uint64_t seed);

}  // namespace ls::perf
