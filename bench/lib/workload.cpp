// Trace generation; see workload.h. The order of draws is S-LoRA's: all adapter draws, then
// all input lengths, all output lengths, and last all inter-arrival gaps.
#include "workload.h"

#include <algorithm>
#include <cmath>

#include "numpy_random.h"

namespace ls::bench {

int32_t adapter_rank(const WorkloadSpec& spec, int32_t index) {
  return spec.ranks[static_cast<size_t>(index) % spec.ranks.size()];
}

std::string adapter_name(const WorkloadSpec& spec, int32_t index) {
  const auto per_rank = static_cast<size_t>(index) / spec.ranks.size();
  return "lora-r" + std::to_string(adapter_rank(spec, index)) + "-" + std::to_string(per_rank);
}

std::string check_workload(const WorkloadSpec& s) {
  if (s.num_adapters < 1) return "the number of adapters must be >= 1";
  if (s.ranks.empty()) return "the rank list is empty";
  for (int32_t r : s.ranks)
    if (r < 1) return "ranks must be >= 1";
  if (!(s.alpha > 0) || !std::isfinite(s.alpha)) return "alpha must be > 0";
  if (!(s.rate > 0) || !std::isfinite(s.rate)) return "the rate must be > 0";
  if (!(s.cv > 0) || !std::isfinite(s.cv)) return "cv must be > 0";
  if (!(s.duration_s > 0) || !std::isfinite(s.duration_s)) return "the duration must be > 0";
  if (s.rate * s.duration_s > 1e8) return "rate x duration exceeds 10^8 requests";
  if (s.input_lo < 1 || s.input_hi <= s.input_lo) return "the input range needs 1 <= lo < hi";
  if (s.output_lo < 1 || s.output_hi <= s.output_lo) return "the output range needs 1 <= lo < hi";
  return "";
}

std::vector<WorkloadRequest> generate_workload(const WorkloadSpec& spec) {
  NumpyLegacyRandom rng(spec.seed);
  const auto total = static_cast<size_t>(spec.rate * spec.duration_s);  // Python int(): truncation
  std::vector<WorkloadRequest> out(total);
  for (auto& r : out) {
    // (probs * num_adapters).astype(int); X may round to 1.0, which S-LoRA would index past
    // its adapter list: the last adapter here.
    const double x = rng.power(spec.alpha);
    r.adapter = std::min(spec.num_adapters - 1, static_cast<int32_t>(x * spec.num_adapters));
  }
  for (auto& r : out) r.input_len = static_cast<int32_t>(rng.randint(spec.input_lo, spec.input_hi));
  for (auto& r : out)
    r.output_len = static_cast<int32_t>(rng.randint(spec.output_lo, spec.output_hi));
  const double shape = 1 / (spec.cv * spec.cv), scale = spec.cv * spec.cv / spec.rate;
  double tic = 0;
  for (auto& r : out) {
    tic += rng.gamma(shape, scale);
    r.arrival_s = tic;
  }
  return out;
}

}  // namespace ls::bench
