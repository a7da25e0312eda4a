// Latency and throughput summary of one benchmark run (S-LoRA's and vLLM's figures).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ls::bench {

// One request as the client saw it; times in seconds from the run's start.
struct RequestTiming {
  double scheduled_s = 0;     // arrival time in the trace
  double arrival_s = 0;       // when it was sent (later than scheduled when the client lags or
                              // waits for a --max-concurrency slot); latencies count from here
  double first_token_s = -1;  // -1 when none
  double finish_s = -1;
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;
  std::vector<double> token_times_s;  // each token (HTTP: each streamed chunk)
  bool ok = false;
  std::string error;  // why not ok
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};
// Nearest-rank percentiles.
Percentiles percentiles(std::vector<double> v);

// Throughput (requests, input and output tokens per second of wall time), TTFT, TPOT, ITL and
// end-to-end latency, SLO attainment (share of all requests, failed ones included, whose TTFT
// is under `slo_s`, strictly, as S-LoRA's attainment_func) and goodput (those per second).
nlohmann::ordered_json summarize(const std::vector<RequestTiming>& t, double wall_s, double slo_s);

// Per-request TTFT, TPOT and end-to-end latency of the completed requests (for CDF plots).
nlohmann::ordered_json latency_samples(const std::vector<RequestTiming>& t);

}  // namespace ls::bench
