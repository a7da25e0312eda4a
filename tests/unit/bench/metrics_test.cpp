// Benchmark metrics: percentiles, the summary's definitions (TTFT from sending, TPOT over the
// tokens after the first, SLO strictly under the threshold with failures counted against it),
// and /metrics parsing with the before/after report.
#include <gtest/gtest.h>

#include "metrics.h"
#include "prometheus_text.h"

namespace ls::bench {
namespace {

TEST(Metrics, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  Percentiles p = percentiles(v);
  EXPECT_DOUBLE_EQ(p.mean, 50.5);
  EXPECT_DOUBLE_EQ(p.p50, 50);
  EXPECT_DOUBLE_EQ(p.p90, 90);
  EXPECT_DOUBLE_EQ(p.p99, 99);
  EXPECT_DOUBLE_EQ(percentiles({}).p99, 0);
}

TEST(Metrics, SummaryDefinitions) {
  std::vector<RequestTiming> t(3);
  // Sent 0.5 s late (a concurrency slot), first token 1 s after sending, 4 tokens in 3 s.
  t[0] = {0.0, 0.5, 1.5, 4.5, 10, 4, {1.5, 2.5, 3.5, 4.5}, true, ""};
  // TTFT exactly at the SLO: not attained (S-LoRA: strictly under).
  t[1] = {1.0, 1.0, 3.0, 3.0, 20, 1, {3.0}, true, ""};
  t[2] = {2.0, 2.0, -1, -1, 0, 0, {}, false, "HTTP 500"};
  auto s = summarize(t, 5.0, 2.0);
  EXPECT_EQ(s["requests"], 3);
  EXPECT_EQ(s["completed"], 2);
  EXPECT_EQ(s["failed"], 1);
  EXPECT_DOUBLE_EQ(s["request_throughput"].get<double>(), 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(s["output_token_throughput"].get<double>(), 5.0 / 5.0);
  EXPECT_DOUBLE_EQ(s["input_token_throughput"].get<double>(), 30.0 / 5.0);
  EXPECT_DOUBLE_EQ(s["ttft_s"]["p50"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["ttft_s"]["p99"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(s["tpot_s"]["mean"].get<double>(), 1.0);  // (4.5 - 1.5) / 3
  EXPECT_DOUBLE_EQ(s["itl_s"]["p99"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["e2e_s"]["p99"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(s["slo_attainment"].get<double>(), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s["goodput_rps"].get<double>(), 1.0 / 5.0);
  EXPECT_DOUBLE_EQ(s["max_send_lag_s"].get<double>(), 0.5);
  auto samples = latency_samples(t);
  EXPECT_EQ(samples["ttft_s"].size(), 2u);
  EXPECT_EQ(samples["tpot_s"].size(), 1u);
}

TEST(PrometheusText, SumsLabelSetsAndSkipsOthers) {
  const std::string text =
      "# HELP loraserve:adapter_disk_loads_total Loads.\n"
      "# TYPE loraserve:adapter_disk_loads_total counter\n"
      "loraserve:adapter_disk_loads_total{model_name=\"m\"} 3\n"
      "vllm:request_success_total{finished_reason=\"length\",model_name=\"a b}\"} 2\n"
      "vllm:request_success_total{finished_reason=\"stop\",model_name=\"m\"} 5 1700000000\n"
      "vllm:e2e_request_latency_seconds_bucket{le=\"0.3\",model_name=\"m\"} 1\n"
      "vllm:e2e_request_latency_seconds_sum{model_name=\"m\"} 1.5e0\n"
      "process_cpu_seconds_total 12\n";
  auto m = parse_prometheus_text(text);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_DOUBLE_EQ(m->at("loraserve:adapter_disk_loads_total"), 3);
  EXPECT_DOUBLE_EQ(m->at("vllm:request_success_total"), 7);
  EXPECT_DOUBLE_EQ(m->at("vllm:e2e_request_latency_seconds_sum"), 1.5);
  EXPECT_EQ(m->count("vllm:e2e_request_latency_seconds_bucket"), 0u);
  EXPECT_EQ(m->count("process_cpu_seconds_total"), 0u);
  auto bad = parse_prometheus_text("loraserve:x{a=\"1\"} one\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos);
  EXPECT_FALSE(parse_prometheus_text("loraserve:x{a=\"1\" 2\n").ok());
}

TEST(PrometheusText, ReportIsTheRunsChange) {
  MetricSums before = {{"loraserve:adapter_disk_loads_total", 2},
                       {"loraserve:adapter_load_latency_seconds_sum", 1.0},
                       {"loraserve:adapter_load_latency_seconds_count", 2}};
  MetricSums after = {{"loraserve:adapter_disk_loads_total", 6},
                      {"loraserve:adapter_load_latency_seconds_sum", 3.0},
                      {"loraserve:adapter_load_latency_seconds_count", 6},
                      {"loraserve:adapters_resident", 4}};
  auto r = metrics_report(before, after);
  EXPECT_DOUBLE_EQ(r["adapter_cache"]["disk_loads"].get<double>(), 4);
  EXPECT_DOUBLE_EQ(r["adapter_cache"]["mean_load_latency_s"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(r["adapter_cache"]["adapters_resident"].get<double>(), 4);
  EXPECT_TRUE(r["adapter_cache"]["pages_total"].is_null());
  EXPECT_DOUBLE_EQ(r["delta"]["loraserve:adapters_resident"].get<double>(), 4);
}

}  // namespace
}  // namespace ls::bench
