// ServerMetrics: /metrics in Prometheus text format through prometheus-cpp, with vLLM's metric
// names (so existing dashboards and routers work) plus loraserve: series for the page pool and
// the adapter tiers. No per-adapter labels: there may be thousands of adapters.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine_stats.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace ls::server {

class ServerMetrics {
 public:
  ServerMetrics(const std::string& model_name, int32_t max_loras);
  ~ServerMetrics();

  // Per request (any thread).
  void observe_ttft(double seconds);
  void observe_inter_token(double seconds);
  void observe_queue_time(double seconds);
  void observe_finished(const std::string& reason, double e2e_seconds, int64_t prompt_tokens,
                        int64_t generation_tokens);
  void count_http(int status);

  // The exposition: refreshes the gauges and counters from `stats` first.
  std::string render(const EngineStats& stats, const std::vector<std::string>& running_adapters,
                     const std::vector<std::string>& waiting_adapters);

 private:
  void add_delta(prometheus::Counter& c, int64_t now, int64_t* last);

  std::mutex mu_;
  std::string model_name_;
  std::shared_ptr<prometheus::Registry> registry_;
  int32_t max_loras_;
  // vLLM
  prometheus::Gauge *running_, *waiting_, *kv_usage_;
  prometheus::Counter *preemptions_, *prompt_tokens_, *generation_tokens_;
  prometheus::Family<prometheus::Counter>* success_family_;
  prometheus::Histogram *ttft_, *itl_, *e2e_, *queue_;
  prometheus::Family<prometheus::Gauge>* lora_info_family_;
  prometheus::Gauge* lora_info_ = nullptr;
  // loraserve
  prometheus::Gauge *pages_kv_, *pages_adapter_, *pages_free_, *pages_total_;
  prometheus::Gauge *adapters_registered_, *adapters_resident_, *adapters_in_host_,
      *adapter_host_bytes_;
  prometheus::Counter *hits_device_, *hits_host_, *cold_, *disk_loads_, *load_failures_,
      *evict_device_, *evict_host_;
  prometheus::Histogram* load_latency_;
  prometheus::Family<prometheus::Counter>* http_family_;
  struct Last {
    int64_t preemptions = 0, hits_device = 0, hits_host = 0, cold = 0, disk_loads = 0,
            load_failures = 0, evict_device = 0, evict_host = 0;
    std::vector<int64_t> load_buckets;
    double load_sum = 0.0;
  } last_;
};

}  // namespace ls::server
