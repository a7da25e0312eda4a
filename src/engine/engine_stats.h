// Counters the engine exposes for metrics (/metrics, benchmarks): plain values, copied out.
#pragma once

#include <array>
#include <cstdint>

namespace ls {

// Load latency buckets (seconds, upper bounds) shared by the cache and its exposition.
inline constexpr std::array<double, 10> kLoadLatencyBuckets = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                               0.1,   0.25,  0.5,  1.0,   5.0};

struct AdapterCacheStats {
  int64_t registered = 0;
  int64_t resident = 0;  // on the device
  int64_t in_host = 0;   // in the host tier
  int64_t host_bytes = 0;
  int64_t device_hits = 0;    // requests whose adapter was on the device
  int64_t host_hits = 0;      // requests whose adapter was in host memory only
  int64_t cold_requests = 0;  // requests whose adapter was on disk only (misses of both tiers)
  int64_t disk_loads = 0;     // reads of source directories
  int64_t load_failures = 0;
  int64_t device_evictions = 0;
  int64_t host_evictions = 0;
  int64_t used_elems = 0;       // LoRA weights in pages
  int64_t allocated_elems = 0;  // capacity of the adapters' pages
  std::array<int64_t, kLoadLatencyBuckets.size() + 1> load_latency_counts{};  // last = +Inf
  double load_latency_sum_s = 0.0;
  // Host-to-device copies of adapters into their pages (the last stage of a load, after any
  // disk read and the wait for pages): how many, and the seconds they took in all.
  int64_t copies = 0;
  double copy_seconds_sum = 0.0;
};

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t preemptions_total = 0;
  int64_t pages_total = 0;
  int64_t pages_kv = 0;
  int64_t pages_adapter = 0;
  int64_t pages_free = 0;
  int64_t steps = 0;
  int64_t tokens_total = 0;  // tokens fed to the model
  int64_t last_step_tokens = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generation_tokens_total = 0;
  int64_t requests_finished = 0;
  int64_t requests_failed = 0;
  AdapterCacheStats adapters;
  // Waste inside adapter pages: 1 - used / allocated (0 when no adapter is resident).
  double adapter_fragmentation() const {
    return adapters.allocated_elems == 0 ? 0.0
                                         : 1.0 - static_cast<double>(adapters.used_elems) /
                                                     static_cast<double>(adapters.allocated_elems);
  }
};

}  // namespace ls
