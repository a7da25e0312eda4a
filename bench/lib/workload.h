// S-LoRA's synthetic workload, generated exactly as its trace generator does: N adapters whose
// ranks cycle through a list; the adapter of each request is floor(N * X) with X drawn from
// the power distribution (density alpha * x^(alpha-1) on [0, 1]); inter-arrival times
// Gamma(shape 1/cv^2, scale cv^2/rate); input and output lengths uniform in [lo, hi);
// rate x duration requests. Seeded (default 42) and identical on every platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/rng.h"

namespace ls::bench {

struct WorkloadSpec {
  int32_t num_adapters = 100;
  std::vector<int32_t> ranks = {8};
  double alpha = 1.0;  // power-law popularity; 1 = uniform
  double rate = 10.0;  // requests per second
  double cv = 1.0;     // coefficient of variation of inter-arrivals; 1 = Poisson
  double duration_s = 120.0;
  int32_t input_lo = 8, input_hi = 512;    // [lo, hi)
  int32_t output_lo = 8, output_hi = 512;  // [lo, hi)
  uint64_t seed = 42;
};

struct WorkloadRequest {
  double arrival_s = 0.0;
  int32_t adapter = 0;  // index; name adapter_name(index)
  int32_t input_len = 0;
  int32_t output_len = 0;  // max_tokens, with EOS ignored
};

std::string adapter_name(int32_t index);
int32_t adapter_rank(const WorkloadSpec& spec, int32_t index);
std::vector<WorkloadRequest> generate_workload(const WorkloadSpec& spec);

// Gamma(shape, scale) by Marsaglia and Tsang (shape < 1 boosted), on our portable Rng.
double sample_gamma(Rng& rng, double shape, double scale);

}  // namespace ls::bench
