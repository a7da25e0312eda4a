// S-LoRA's synthetic workload, generated exactly as its trace generator (benchmarks/trace.py,
// generate_requests) does, draw for draw through numpy's legacy RandomState: rate x duration
// requests (truncated); the adapter of each request is floor(N * X) with X from the power
// distribution (density alpha * x^(alpha-1) on [0, 1]); input and output lengths uniform
// integers in [lo, hi); inter-arrival gaps Gamma(shape 1/cv^2, scale cv^2/rate), the first
// request arriving after the first gap. N adapters whose ranks cycle through a list, named as
// S-LoRA's get_adapter_dirs names them: by rank and a count per rank, so runs with different
// rank lists share adapters ("lora-r8-0" is the same adapter in every run that has it).
// Seeded (default 42, as S-LoRA).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ls::bench {

struct WorkloadSpec {
  int32_t num_adapters = 100;
  std::vector<int32_t> ranks = {8};  // adapter i has rank ranks[i % size]
  double alpha = 1.0;                // power-law popularity; 1 = uniform
  double rate = 10.0;                // requests per second
  double cv = 1.0;                   // coefficient of variation of inter-arrivals; 1 = Poisson
  double duration_s = 120.0;
  int32_t input_lo = 8, input_hi = 512;    // [lo, hi)
  int32_t output_lo = 8, output_hi = 512;  // [lo, hi)
  uint32_t seed = 42;
};

struct WorkloadRequest {
  double arrival_s = 0.0;  // from the start of the run
  int32_t adapter = 0;     // index; name adapter_name(spec, index)
  int32_t input_len = 0;
  int32_t output_len = 0;  // max_tokens, with EOS ignored
};

// Adapter `index` has rank ranks[index % R] and is "lora-r<rank>-<index / R>" (R ranks),
// S-LoRA's "<rank dir>-<i>".
int32_t adapter_rank(const WorkloadSpec& spec, int32_t index);
std::string adapter_name(const WorkloadSpec& spec, int32_t index);
// The spec's problems as one message ("" when valid): ranges, positive rates, and so on.
std::string check_workload(const WorkloadSpec& spec);
std::vector<WorkloadRequest> generate_workload(const WorkloadSpec& spec);

}  // namespace ls::bench
