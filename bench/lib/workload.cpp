// Trace generation; see workload.h. Draw order per request: adapter, input length, output
// length, inter-arrival gap, so a trace depends only on the spec and the seed.
#include "workload.h"

#include <cmath>

namespace ls::bench {

std::string adapter_name(int32_t index) {
  return "lora-" + std::to_string(index);
}

int32_t adapter_rank(const WorkloadSpec& spec, int32_t index) {
  return spec.ranks[static_cast<size_t>(index) % spec.ranks.size()];
}

double sample_gamma(Rng& rng, double shape, double scale) {
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a)
    double u = rng.uniform();
    if (u < 1e-300) u = 1e-300;
    return sample_gamma(rng, shape + 1.0, scale) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = rng.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v * scale;
  }
}

std::vector<WorkloadRequest> generate_workload(const WorkloadSpec& spec) {
  Rng rng(spec.seed);
  const auto total = static_cast<int64_t>(std::llround(spec.rate * spec.duration_s));
  const double shape = 1.0 / (spec.cv * spec.cv), scale = spec.cv * spec.cv / spec.rate;
  std::vector<WorkloadRequest> out;
  double t = 0.0;
  for (int64_t i = 0; i < total; ++i) {
    WorkloadRequest r;
    const double x = std::pow(rng.uniform(), 1.0 / spec.alpha);  // power(alpha) on [0, 1)
    r.adapter = std::min(spec.num_adapters - 1, static_cast<int32_t>(spec.num_adapters * x));
    r.input_len =
        spec.input_lo + static_cast<int32_t>(rng.uniform() * (spec.input_hi - spec.input_lo));
    r.output_len =
        spec.output_lo + static_cast<int32_t>(rng.uniform() * (spec.output_hi - spec.output_lo));
    r.arrival_s = t;
    t += sample_gamma(rng, shape, scale);
    out.push_back(r);
  }
  return out;
}

}  // namespace ls::bench
