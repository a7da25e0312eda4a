// The in-process driver: register the adapters cold, replay the requests in real time, record
// per-token times from the engine's events.
#include "bench_in_process.h"

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

namespace ls {

namespace {

nlohmann::ordered_json cache_json(const EngineStats& s) {
  const auto& a = s.adapters;
  return {{"registered", a.registered},
          {"disk_loads", a.disk_loads},
          {"device_hits", a.device_hits},
          {"host_hits", a.host_hits},
          {"cold_requests", a.cold_requests},
          {"device_evictions", a.device_evictions},
          {"host_evictions", a.host_evictions},
          {"load_failures", a.load_failures},
          {"mean_load_latency_s",
           a.disk_loads > 0 ? a.load_latency_sum_s / static_cast<double>(a.disk_loads) : 0.0},
          {"adapter_fragmentation", s.adapter_fragmentation()},
          {"preemptions", s.preemptions_total},
          {"steps", s.steps},
          {"mean_tokens_per_step",
           s.steps > 0 ? static_cast<double>(s.tokens_total) / static_cast<double>(s.steps) : 0.0}};
}

}  // namespace

Result<InProcessRun> run_in_process_bench(const InProcessBenchConfig& cfg, const LlamaModel& model,
                                          const std::vector<bench::TraceRequest>& requests) {
  Engine engine(model, cfg.engine);
  std::set<std::string> given;
  for (const auto& a : cfg.resident) {
    LS_RETURN_IF_ERROR(engine.adapters().register_resident(a));
    given.insert(a->name);
  }
  for (const auto& a : cfg.loaded) {
    LS_RETURN_IF_ERROR(engine.adapters().register_loaded(a));
    given.insert(a->name);
  }
  for (const std::string& name : bench::trace_adapters(requests))
    if (!given.count(name))
      LS_RETURN_IF_ERROR(engine.adapters().register_source(name, cfg.adapter_dir + "/" + name));
  InProcessRun run;
  run.timing.resize(requests.size());
  std::mutex mu;
  const auto start = Clock::now();
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  for (size_t i = 0; i < requests.size(); ++i) {
    const bench::TraceRequest& r = requests[i];
    if (r.prompt_ids.empty())
      return invalid_argument("request " + std::to_string(i) +
                              ": in-process requests need prompt token ids");
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(r.timestamp_s)));
    EngineRequest req;
    req.adapter = r.adapter;
    req.max_tokens = r.output_len;  // EOS ignored, as S-LoRA's workload does
    req.prompt_ids = r.prompt_ids;
    {
      std::lock_guard<std::mutex> lock(mu);
      run.timing[i].scheduled_s = r.timestamp_s;
      run.timing[i].arrival_s = since();
      run.timing[i].prompt_tokens = static_cast<int32_t>(r.prompt_ids.size());
    }
    auto id = engine.submit(std::move(req), [&, i](const TokenEvent& e) {
      const double now = since();
      std::lock_guard<std::mutex> lock(mu);
      auto& t = run.timing[i];
      if (e.token >= 0) {
        if (t.first_token_s < 0) t.first_token_s = now;
        t.token_times_s.push_back(now);
        ++t.output_tokens;
      }
      if (e.finished) {
        t.finish_s = now;
        t.ok = e.error.empty() && (e.finish_reason == "length" || e.finish_reason == "stop");
        if (!t.ok) t.error = e.error.empty() ? "finished: " + e.finish_reason : e.error;
      }
    });
    if (!id.ok()) return id.status().with_context("request " + std::to_string(i));
  }
  engine.wait_idle();
  run.wall_s = since();
  run.engine = cache_json(engine.stats());
  return run;
}

}  // namespace ls
