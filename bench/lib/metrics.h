// Latency and throughput summary of one benchmark run (S-LoRA's and vLLM's figures).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace ls::bench {

struct RequestTiming {
  double arrival_s = 0;
  double first_token_s = -1;  // absolute, from the run's start; -1 when none
  double finish_s = -1;
  int32_t output_tokens = 0;
  std::vector<double> token_times_s;  // absolute time of each token
  bool ok = false;
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};
Percentiles percentiles(std::vector<double> v);

// Throughput, TTFT, TPOT, ITL, end-to-end latency, SLO attainment (TTFT under `slo_s`) and
// goodput (finished requests within the SLO per second).
nlohmann::ordered_json summarize(const std::vector<RequestTiming>& t, double wall_s, double slo_s);

}  // namespace ls::bench
