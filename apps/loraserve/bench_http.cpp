// The HTTP modes of `loraserve bench`; see bench_http.h.
#include "bench_http.h"

#include <memory>

#include "bench_launch.h"
#include "openai_client.h"
#include "prometheus_text.h"

namespace ls {

namespace {

using Json = nlohmann::ordered_json;
constexpr const char* kLaunchedBaseName = "bench-base";

// loraserve serve's flags for the benchmark's engine settings.
std::vector<std::string> serve_args(const BenchOptions& o, const std::string& model_dir,
                                    const std::string& adapter_dir) {
  std::vector<std::string> a = {"--model",
                                model_dir,
                                "--host",
                                "127.0.0.1",
                                "--port",
                                "0",
                                "--served-model-name",
                                kLaunchedBaseName,
                                "--max-num-seqs",
                                std::to_string(o.max_num_seqs),
                                "--max-tokens-per-step",
                                std::to_string(o.max_tokens_per_step),
                                "--pool-bytes",
                                std::to_string(o.pool_bytes),
                                "--host-adapter-cache-bytes",
                                std::to_string(o.host_bytes),
                                "--shutdown-timeout",
                                "10"};
  if (!o.no_lora) a.insert(a.end(), {"--lora-root", adapter_dir});
  if (!o.api_key.empty()) a.insert(a.end(), {"--api-key", o.api_key});
  if (!o.device.empty()) a.insert(a.end(), {"--device", o.device});
  if (o.gpu_memory_given)
    a.insert(a.end(), {"--gpu-memory-utilization", std::to_string(o.gpu_memory_utilization)});
  if (o.policy.max_active_adapters > 0)
    a.insert(a.end(), {"--max-active-adapters", std::to_string(o.policy.max_active_adapters),
                       "--adapter-cycle-ms", std::to_string(o.policy.adapter_cycle_ms)});
  if (o.policy.vtc) a.push_back("--vtc");
  if (o.ttft_slo_ms > 0) a.insert(a.end(), {"--ttft-slo-ms", std::to_string(o.ttft_slo_ms)});
  a.insert(a.end(), o.serve_args.begin(), o.serve_args.end());
  return a;
}

// /metrics as sums, or nothing when the server has none (not an error: peers may lack it).
std::optional<bench::MetricSums> scrape(const bench::BaseUrl& url, std::string* note) {
  auto r = bench::http_request(url, "GET", "/metrics", "", "", 30.0);
  if (!r.ok()) {
    *note = r.status().message();
    return std::nullopt;
  }
  if (r->status != 200) {
    *note = "GET /metrics: HTTP " + std::to_string(r->status);
    return std::nullopt;
  }
  auto sums = bench::parse_prometheus_text(r->body);
  if (!sums.ok()) {
    *note = sums.status().message();
    return std::nullopt;
  }
  return sums.value();
}

// The id of the base model at `url`: the first model /v1/models lists.
Result<std::string> base_model_id(const bench::BaseUrl& url, const std::string& api_key) {
  LS_ASSIGN_OR_RETURN(auto r, bench::http_request(url, "GET", "/v1/models", "", api_key, 30.0));
  const std::string where = "GET " + url.str() + "/v1/models";
  if (r.status != 200)
    return failed_precondition(where + ": HTTP " + std::to_string(r.status) + " " +
                               r.body.substr(0, 200) +
                               " (give the base model's id: --served-model)");
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].contains("id") || !j["data"][0]["id"].is_string())
    return failed_precondition(where +
                               ": no model list (give the base model's id: --served-model)");
  return j["data"][0]["id"].get<std::string>();
}

}  // namespace

Result<HttpRun> run_http_bench(const BenchOptions& o, const std::string& model_dir,
                               const std::string& adapter_dir,
                               const std::vector<bench::TraceRequest>& requests) {
  std::unique_ptr<LaunchedServer> server;
  bench::ClientOptions co;
  co.api_key = o.api_key;
  co.max_concurrency = o.max_concurrency;
  co.timeout_s = o.request_timeout_s;
  if (o.mode == BenchMode::kLaunch) {
    LS_ASSIGN_OR_RETURN(
        server, LaunchedServer::start(serve_args(o, model_dir, adapter_dir), o.launch_timeout_s));
    co.url.host = "127.0.0.1";
    co.url.port = std::to_string(server->port());
    co.base_model = kLaunchedBaseName;
  } else {
    LS_ASSIGN_OR_RETURN(co.url, bench::parse_base_url(o.url));
    co.base_model = o.served_model;
    bool base_used = false;
    for (const auto& r : requests) base_used = base_used || r.adapter.empty();
    if (co.base_model.empty() && base_used) {
      LS_ASSIGN_OR_RETURN(co.base_model, base_model_id(co.url, o.api_key));
    }
  }
  std::string note;
  auto before = scrape(co.url, &note);
  bench::ClientRun client = bench::run_openai_client(co, requests);
  auto after = before ? scrape(co.url, &note) : std::nullopt;
  HttpRun out;
  out.url = co.url.str();
  out.timing = std::move(client.timing);
  out.wall_s = client.wall_s;
  if (before && after)
    out.server = bench::metrics_report(*before, *after);
  else
    out.server = {{"unavailable", note}};
  if (server) {
    Status st = server->stop(30.0);
    if (!st.ok()) return st;
  }
  return out;
}

}  // namespace ls
