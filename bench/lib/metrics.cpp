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

double tpot(const RequestTiming& r) {
  return (r.finish_s - r.first_token_s) / static_cast<double>(r.output_tokens - 1);
}

}  // namespace

nlohmann::ordered_json summarize(const std::vector<RequestTiming>& t, double wall_s, double slo_s) {
  std::vector<double> ttft, tpots, itl, e2e;
  int64_t ok = 0, in_tokens = 0, out_tokens = 0, within_slo = 0;
  double max_lag = 0;
  for (const auto& r : t) {
    max_lag = std::max(max_lag, r.arrival_s - r.scheduled_s);
    if (!r.ok) continue;
    ++ok;
    in_tokens += r.prompt_tokens;
    out_tokens += r.output_tokens;
    const double first = r.first_token_s - r.arrival_s;
    ttft.push_back(first);
    e2e.push_back(r.finish_s - r.arrival_s);
    if (first < slo_s) ++within_slo;
    if (r.output_tokens > 1) tpots.push_back(tpot(r));
    for (size_t i = 1; i < r.token_times_s.size(); ++i)
      itl.push_back(r.token_times_s[i] - r.token_times_s[i - 1]);
  }
  const double n = static_cast<double>(t.size());
  const double wall = wall_s > 0 ? wall_s : 1e-9;
  return {{"requests", t.size()},
          {"completed", ok},
          {"failed", static_cast<int64_t>(t.size()) - ok},
          {"wall_s", wall_s},
          {"request_throughput", static_cast<double>(ok) / wall},
          {"input_token_throughput", static_cast<double>(in_tokens) / wall},
          {"output_token_throughput", static_cast<double>(out_tokens) / wall},
          {"total_output_tokens", out_tokens},
          {"ttft_s", to_json(percentiles(ttft))},
          {"tpot_s", to_json(percentiles(tpots))},
          {"itl_s", to_json(percentiles(itl))},
          {"e2e_s", to_json(percentiles(e2e))},
          {"slo_ttft_s", slo_s},
          {"slo_attainment", n > 0 ? static_cast<double>(within_slo) / n : 0.0},
          {"goodput_rps", static_cast<double>(within_slo) / wall},
          {"max_send_lag_s", max_lag}};
}

nlohmann::ordered_json latency_samples(const std::vector<RequestTiming>& t) {
  // Rounded to microseconds: enough for a CDF, a third of the JSON.
  auto us = [](double s) { return std::round(s * 1e6) / 1e6; };
  nlohmann::ordered_json ttft = nlohmann::ordered_json::array(), tp = ttft, e2e = ttft;
  for (const auto& r : t) {
    if (!r.ok) continue;
    ttft.push_back(us(r.first_token_s - r.arrival_s));
    e2e.push_back(us(r.finish_s - r.arrival_s));
    if (r.output_tokens > 1) tp.push_back(us(tpot(r)));
  }
  return {{"ttft_s", ttft}, {"tpot_s", tp}, {"e2e_s", e2e}};
}

}  // namespace ls::bench
