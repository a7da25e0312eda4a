// ServerMetrics: the families, their buckets (vLLM's for the latency histograms) and the
// refresh from EngineStats at each scrape.
#include "server/server_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <algorithm>
#include <sstream>

namespace ls::server {

namespace p = prometheus;

namespace {
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                         0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kLatencyBuckets = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                             5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                             60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}  // namespace

ServerMetrics::ServerMetrics(const std::string& model_name, int32_t max_loras)
    : model_name_(model_name), registry_(std::make_shared<p::Registry>()), max_loras_(max_loras) {
  const p::Labels model{{"model_name", model_name}};
  auto gauge = [&](const std::string& name, const std::string& help) -> p::Gauge& {
    return p::BuildGauge().Name(name).Help(help).Register(*registry_).Add(model);
  };
  auto counter = [&](const std::string& name, const std::string& help) -> p::Counter& {
    return p::BuildCounter().Name(name).Help(help).Register(*registry_).Add(model);
  };
  auto histogram = [&](const std::string& name, const std::string& help,
                       const std::vector<double>& buckets) -> p::Histogram& {
    return p::BuildHistogram().Name(name).Help(help).Register(*registry_).Add(model, buckets);
  };
  running_ = &gauge("vllm:num_requests_running", "Number of requests in model execution batches.");
  waiting_ = &gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.");
  kv_usage_ = &gauge("vllm:kv_cache_usage_perc",
                     "KV-cache usage. 1 means 100 percent usage (KV pages of the unified pool).");
  preemptions_ = &counter("vllm:num_preemptions_total", "Cumulative number of preemptions.");
  prompt_tokens_ = &counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.");
  generation_tokens_ =
      &counter("vllm:generation_tokens_total", "Number of generation tokens processed.");
  success_family_ = &p::BuildCounter()
                         .Name("vllm:request_success_total")
                         .Help("Count of successfully processed requests.")
                         .Register(*registry_);
  ttft_ = &histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token.",
                     kTtftBuckets);
  itl_ = &histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency.",
                    kItlBuckets);
  e2e_ = &histogram("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency.",
                    kLatencyBuckets);
  queue_ = &histogram("vllm:request_queue_time_seconds",
                      "Histogram of time spent waiting before the first step.", kLatencyBuckets);
  lora_info_family_ = &p::BuildGauge()
                           .Name("vllm:lora_requests_info")
                           .Help("Running stats on LoRA requests.")
                           .Register(*registry_);
  pages_kv_ = &gauge("loraserve:pages_kv", "Pages of the unified pool holding KV.");
  pages_adapter_ = &gauge("loraserve:pages_adapter", "Pages of the unified pool holding adapters.");
  pages_free_ = &gauge("loraserve:pages_free", "Free pages of the unified pool.");
  pages_total_ = &gauge("loraserve:pages_total", "Pages of the unified pool.");
  adapters_registered_ = &gauge("loraserve:adapters_registered", "Adapters registered.");
  adapters_resident_ = &gauge("loraserve:adapters_resident", "Adapters in device pages.");
  adapters_in_host_ = &gauge("loraserve:adapters_in_host", "Adapters in the host-memory tier.");
  adapter_host_bytes_ =
      &gauge("loraserve:adapter_host_bytes", "Bytes of adapters in the host-memory tier.");
  hits_device_ = &counter("loraserve:adapter_device_hits_total",
                          "Requests whose adapter was already in device pages.");
  hits_host_ = &counter("loraserve:adapter_host_hits_total",
                        "Requests whose adapter was in host memory only.");
  cold_ = &counter("loraserve:adapter_misses_total",
                   "Requests whose adapter was on disk only (missed both tiers).");
  disk_loads_ = &counter("loraserve:adapter_disk_loads_total", "Adapter reads from disk.");
  load_failures_ = &counter("loraserve:adapter_load_failures_total", "Adapter loads that failed.");
  evict_device_ =
      &counter("loraserve:adapter_device_evictions_total", "Adapters evicted from device pages.");
  evict_host_ =
      &counter("loraserve:adapter_host_evictions_total", "Adapters evicted from host memory.");
  load_latency_ = &histogram(
      "loraserve:adapter_load_latency_seconds", "Time from an adapter's request to its pages.",
      std::vector<double>(kLoadLatencyBuckets.begin(), kLoadLatencyBuckets.end()));
  http_family_ = &p::BuildCounter()
                      .Name("loraserve:http_responses_total")
                      .Help("HTTP responses by status code.")
                      .Register(*registry_);
  last_.load_buckets.assign(kLoadLatencyBuckets.size() + 1, 0);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::observe_ttft(double s) {
  ttft_->Observe(s);
}
void ServerMetrics::observe_inter_token(double s) {
  itl_->Observe(s);
}
void ServerMetrics::observe_queue_time(double s) {
  queue_->Observe(s);
}

void ServerMetrics::observe_finished(const std::string& reason, double e2e_seconds,
                                     int64_t prompt_tokens, int64_t generation_tokens) {
  e2e_->Observe(e2e_seconds);
  std::lock_guard<std::mutex> lock(mu_);
  success_family_->Add({{"model_name", model_name_}, {"finished_reason", reason}}).Increment();
  (void)prompt_tokens;  // the token totals come from the engine's counters at each scrape
  (void)generation_tokens;
}

void ServerMetrics::count_http(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  http_family_->Add({{"status", std::to_string(status)}}).Increment();
}

void ServerMetrics::add_delta(p::Counter& c, int64_t now, int64_t* last) {
  if (now > *last) c.Increment(static_cast<double>(now - *last));
  *last = std::max(*last, now);
}

std::string ServerMetrics::render(const EngineStats& s,
                                  const std::vector<std::string>& running_adapters,
                                  const std::vector<std::string>& waiting_adapters) {
  std::lock_guard<std::mutex> lock(mu_);
  running_->Set(static_cast<double>(s.running));
  waiting_->Set(static_cast<double>(s.waiting));
  kv_usage_->Set(s.pages_total > 0 ? static_cast<double>(s.pages_kv) / s.pages_total : 0.0);
  add_delta(*preemptions_, s.preemptions_total, &last_.preemptions);
  // Token totals mirror the engine's own counters (set as deltas so they stay counters).
  const double prompt_now = static_cast<double>(s.prompt_tokens_total);
  if (prompt_now > prompt_tokens_->Value())
    prompt_tokens_->Increment(prompt_now - prompt_tokens_->Value());
  const double gen_now = static_cast<double>(s.generation_tokens_total);
  if (gen_now > generation_tokens_->Value())
    generation_tokens_->Increment(gen_now - generation_tokens_->Value());
  pages_kv_->Set(static_cast<double>(s.pages_kv));
  pages_adapter_->Set(static_cast<double>(s.pages_adapter));
  pages_free_->Set(static_cast<double>(s.pages_free));
  pages_total_->Set(static_cast<double>(s.pages_total));
  const AdapterCacheStats& a = s.adapters;
  adapters_registered_->Set(static_cast<double>(a.registered));
  adapters_resident_->Set(static_cast<double>(a.resident));
  adapters_in_host_->Set(static_cast<double>(a.in_host));
  adapter_host_bytes_->Set(static_cast<double>(a.host_bytes));
  add_delta(*hits_device_, a.device_hits, &last_.hits_device);
  add_delta(*hits_host_, a.host_hits, &last_.hits_host);
  add_delta(*cold_, a.cold_requests, &last_.cold);
  add_delta(*disk_loads_, a.disk_loads, &last_.disk_loads);
  add_delta(*load_failures_, a.load_failures, &last_.load_failures);
  add_delta(*evict_device_, a.device_evictions, &last_.evict_device);
  add_delta(*evict_host_, a.host_evictions, &last_.evict_host);
  std::vector<double> inc(a.load_latency_counts.size(), 0.0);
  bool any = false;
  for (size_t i = 0; i < inc.size(); ++i) {
    const int64_t d = a.load_latency_counts[i] - last_.load_buckets[i];
    if (d > 0) inc[i] = static_cast<double>(d), any = true;
    last_.load_buckets[i] = a.load_latency_counts[i];
  }
  if (any) load_latency_->ObserveMultiple(inc, a.load_latency_sum_s - last_.load_sum);
  last_.load_sum = a.load_latency_sum_s;
  // vLLM's LoRA info series: one series whose labels list the adapters in use now.
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
    return out;
  };
  if (lora_info_) lora_info_family_->Remove(lora_info_);
  lora_info_ = &lora_info_family_->Add({{"max_lora", std::to_string(max_loras_)},
                                        {"running_lora_adapters", join(running_adapters)},
                                        {"waiting_lora_adapters", join(waiting_adapters)}});
  lora_info_->Set(static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()));
  std::ostringstream out;
  p::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace ls::server
