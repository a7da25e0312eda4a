// `loraserve bench --url URL` and `--launch`: one run's requests through the OpenAI client,
// with the server's /metrics scraped before and after; --launch starts `loraserve serve` on
// the model and the adapter directory for the run and stops it after.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "bench_options.h"
#include "metrics.h"

namespace ls {

struct HttpRun {
  std::vector<bench::RequestTiming> timing;
  double wall_s = 0.0;
  nlohmann::ordered_json server;  // metrics_report(), or null when /metrics is not there
  std::string url;
};

Result<HttpRun> run_http_bench(const BenchOptions& options, const std::string& model_dir,
                               const std::string& adapter_dir,
                               const std::vector<bench::TraceRequest>& requests);

}  // namespace ls
