// Summary statistics; percentiles by the nearest-rank method.
#include "metrics.h"

#include <algorithm>
#include <cmath>

namespace ls::bench {

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  auto at = [&](double q) {
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  return p;
}

namespace {
nlohmann::ordered_json to_json(const Percentiles& p) {
  return {{"mean", p.mean}, {"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}};
}
}  // namespace

nlohmann::ordered_json summarize(const std::vector<RequestTiming>& t, double wall_s, double slo_s) {
  std::vector<double> ttft, tpot, itl, e2e;
  int64_t ok = 0, tokens = 0, within_slo = 0;
  for (const auto& r : t) {
    if (!r.ok) continue;
    ++ok;
    tokens += r.output_tokens;
    const double first = r.first_token_s - r.arrival_s;
    ttft.push_back(first);
    e2e.push_back(r.finish_s - r.arrival_s);
    if (first <= slo_s) ++within_slo;
    if (r.output_tokens > 1)
      tpot.push_back((r.finish_s - r.first_token_s) / static_cast<double>(r.output_tokens - 1));
    for (size_t i = 1; i < r.token_times_s.size(); ++i)
      itl.push_back(r.token_times_s[i] - r.token_times_s[i - 1]);
  }
  const double n = static_cast<double>(t.size());
  return {{"requests", t.size()},
          {"completed", ok},
          {"wall_s", wall_s},
          {"request_throughput", static_cast<double>(ok) / wall_s},
          {"output_token_throughput", static_cast<double>(tokens) / wall_s},
          {"ttft_s", to_json(percentiles(ttft))},
          {"tpot_s", to_json(percentiles(tpot))},
          {"itl_s", to_json(percentiles(itl))},
          {"e2e_s", to_json(percentiles(e2e))},
          {"slo_ttft_s", slo_s},
          {"slo_attainment", n > 0 ? static_cast<double>(within_slo) / n : 0.0},
          {"goodput_rps", static_cast<double>(within_slo) / wall_s}};
}

}  // namespace ls::bench
