// The in-process driver: write adapters, register them cold, replay the trace in real time,
// record per-token times from the engine's events, summarise.
#include "bench_in_process.h"

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "base/file_util.h"
#include "metrics.h"
#include "model/demo_model.h"

namespace ls {

namespace {

Status ensure_adapters(const InProcessBenchConfig& cfg, const ModelConfig& mc) {
  for (int32_t i = 0; i < cfg.workload.num_adapters; ++i) {
    const std::string dir = cfg.adapter_dir + "/" + bench::adapter_name(i);
    if (file_exists(dir + "/adapter_model.safetensors")) continue;
    RandomAdapterSpec spec;
    spec.name = bench::adapter_name(i);
    spec.r = bench::adapter_rank(cfg.workload, i);
    spec.alpha = 2.0 * spec.r;
    spec.targets = cfg.targets;
    spec.dtype = DType::kF16;
    LS_RETURN_IF_ERROR(write_random_adapter(dir, mc, spec, 7919 * static_cast<uint64_t>(i) + 1));
  }
  return ok_status();
}

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

Result<nlohmann::ordered_json> run_in_process_bench(const InProcessBenchConfig& cfg,
                                                    const LlamaModel& model) {
  const ModelConfig& mc = model.config();
  const auto& w = cfg.workload;
  if (w.input_hi + w.output_hi > mc.max_position_embeddings)
    return invalid_argument("input and output ranges exceed the model's context length " +
                            std::to_string(mc.max_position_embeddings));
  LS_RETURN_IF_ERROR(ensure_adapters(cfg, mc));
  Engine engine(model, cfg.engine);
  for (int32_t i = 0; i < w.num_adapters; ++i)
    LS_RETURN_IF_ERROR(engine.adapters().register_source(
        bench::adapter_name(i), cfg.adapter_dir + "/" + bench::adapter_name(i)));
  const auto trace = bench::generate_workload(w);
  std::vector<bench::RequestTiming> timing(trace.size());
  std::mutex mu;
  Rng prompt_rng(w.seed + 1);
  const auto start = Clock::now();
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  for (size_t i = 0; i < trace.size(); ++i) {
    const auto& r = trace[i];
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(r.arrival_s)));
    EngineRequest req;
    req.adapter = bench::adapter_name(r.adapter);
    req.max_tokens = r.output_len;  // EOS ignored, as S-LoRA's workload does
    for (int32_t t = 0; t < r.input_len; ++t)
      req.prompt_ids.push_back(3 + static_cast<int32_t>(prompt_rng.next_u64() %
                                                        static_cast<uint64_t>(mc.vocab_size - 3)));
    timing[i].arrival_s = since();
    auto id = engine.submit(std::move(req), [&, i](const TokenEvent& e) {
      const double now = since();
      std::lock_guard<std::mutex> lock(mu);
      auto& t = timing[i];
      if (e.token >= 0) {
        if (t.first_token_s < 0) t.first_token_s = now;
        t.token_times_s.push_back(now);
        ++t.output_tokens;
      }
      if (e.finished) {
        t.finish_s = now;
        t.ok = e.error.empty() && (e.finish_reason == "length" || e.finish_reason == "stop");
      }
    });
    if (!id.ok()) return id.status().with_context("request " + std::to_string(i));
  }
  engine.wait_idle();
  const double wall = since();
  nlohmann::ordered_json out;
  out["num_adapters"] = w.num_adapters;
  out["ranks"] = w.ranks;
  out["alpha"] = w.alpha;
  out["rate"] = w.rate;
  out["cv"] = w.cv;
  out["duration_s"] = w.duration_s;
  out["input_range"] = {w.input_lo, w.input_hi};
  out["output_range"] = {w.output_lo, w.output_hi};
  out["seed"] = w.seed;
  out["max_num_seqs"] = cfg.engine.max_num_seqs;
  out["metrics"] = bench::summarize(timing, wall, cfg.slo_ttft_s);
  out["engine"] = cache_json(engine.stats());
  return out;
}

}  // namespace ls
