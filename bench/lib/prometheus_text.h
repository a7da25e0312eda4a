// Reading a server's /metrics (Prometheus text format) for benchmark reports: the loraserve: and
// vllm: series summed over their label sets, and the adapter-cache figures a run changed.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"

namespace ls::bench {

using MetricSums = std::map<std::string, double>;

// Sample name -> sum over its label sets, for names starting with "loraserve:" or "vllm:"
// (histogram buckets left out). Comments and other families are skipped; a malformed sample
// line is an error naming its line number.
Result<MetricSums> parse_prometheus_text(const std::string& text);

// {"before", "after", "delta"} of every scraped sample, plus "adapter_cache": the run's
// adapter-cache figures under the names the in-process report uses (disk_loads, device_hits,
// host_hits, cold_requests, device_evictions, host_evictions, load_failures,
// mean_load_latency_s, preemptions), each the change over the run. Gauges (pages, resident
// adapters) are reported as their value after the run.
nlohmann::ordered_json metrics_report(const MetricSums& before, const MetricSums& after);

}  // namespace ls::bench
