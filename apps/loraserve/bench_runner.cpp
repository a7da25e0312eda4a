// `loraserve bench` after parsing: build each run's request list (generated or replayed),
// write traces, make the adapters, run in process or over HTTP, print one table row per run
// and write the JSON report (configuration, command line, metrics, latency samples, cache).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

#include "bench_adapters.h"
#include "bench_in_process.h"
#include "bench_options.h"
#include "bundle_flags.h"
#include "commands.h"
#include "compress/bundle_adapters.h"
#include "compress/bundle_serving.h"
#include "compress/synthetic.h"
#include "device_flag.h"
#include "model/demo_model.h"
#include "model/random_model.h"
#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#ifdef LORASERVE_HAS_BENCH_HTTP
#include "bench_http.h"
#endif
#ifdef LORASERVE_HAS_TEXT
#include "text/tokenizer.h"
#endif

namespace ls {

const char* mode_name(BenchMode m) {
  switch (m) {
    case BenchMode::kInProcess:
      return "in-process";
    case BenchMode::kLaunch:
      return "launch";
    case BenchMode::kUrl:
      return "url";
  }
  return "?";
}

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using bench::TraceRequest;

// A directory under the system temp dir, removed when the bench ends.
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

Json workload_json(const bench::WorkloadSpec& w) {
  return {{"num_adapters", w.num_adapters},
          {"ranks", w.ranks},
          {"alpha", w.alpha},
          {"rate", w.rate},
          {"cv", w.cv},
          {"duration_s", w.duration_s},
          {"input_range", {w.input_lo, w.input_hi}},
          {"output_range", {w.output_lo, w.output_hi}},
          {"seed", w.seed}};
}

// Where run i's trace goes: the path itself for one run, else "<stem>-<i><ext>".
std::string trace_path(const std::string& path, size_t i, size_t runs) {
  if (runs == 1) return path;
  fs::path p(path);
  return (p.parent_path() /
          (p.stem().string() + "-" + std::to_string(i + 1) + p.extension().string()))
      .string();
}

// Token ids for text prompts (in process there is no server to tokenize them).
Status tokenize_prompts(std::vector<TraceRequest>* requests, const std::string& model_dir) {
  bool any = false;
  for (const auto& r : *requests) any = any || !r.prompt_text.empty();
  if (!any) return ok_status();
#ifdef LORASERVE_HAS_TEXT
  LS_ASSIGN_OR_RETURN(auto tok, Tokenizer::load_dir(model_dir));
  for (auto& r : *requests) {
    if (r.prompt_text.empty()) continue;
    LS_ASSIGN_OR_RETURN(r.prompt_ids, tok->encode(r.prompt_text));
    r.input_len = static_cast<int32_t>(r.prompt_ids.size());
  }
  return ok_status();
#else
  (void)model_dir;
  return invalid_argument("text prompts need the text layer, which this build leaves out");
#endif
}

// The request list of one run, prompts filled (ids unless --prompt-format text).
Result<std::vector<TraceRequest>> build_requests(const BenchOptions& o, const BenchRun& run,
                                                 int32_t vocab) {
  std::vector<TraceRequest> reqs;
  if (!o.trace.empty()) {
    LS_ASSIGN_OR_RETURN(reqs, bench::read_trace(o.trace));
  } else {
    const auto workload = bench::generate_workload(run.spec);
    reqs = bench::to_trace(run.spec, workload);
    if (reqs.empty())
      return invalid_argument(run.label + ": rate x duration gives no request (raise --duration)");
    if (!o.adapters_from.empty())  // copies of real adapters: lora-<index>
      for (size_t i = 0; i < reqs.size(); ++i)
        reqs[i].adapter = "lora-" + std::to_string(workload[i].adapter);
  }
  if (o.no_lora)
    for (auto& r : reqs) r.adapter.clear();
  LS_RETURN_IF_ERROR(
      bench::fill_prompts(&reqs, o.prompt_format, vocab, run.spec.seed + 1ull)
          .with_context(vocab > 0 ? run.label : run.label + " (give --model or --vocab-size)"));
  return reqs;
}

// The context check: prompt + output within the model's positions, where both are known.
Status check_lengths(const std::vector<TraceRequest>& reqs, int32_t max_positions,
                     const std::string& what) {
  if (max_positions <= 0) return ok_status();
  for (size_t i = 0; i < reqs.size(); ++i)
    if (reqs[i].input_len + reqs[i].output_len > max_positions)
      return invalid_argument(what + ": request " + std::to_string(i) + " needs " +
                              std::to_string(reqs[i].input_len + reqs[i].output_len) +
                              " positions (prompt + output), more than the model's " +
                              std::to_string(max_positions));
  return ok_status();
}

void print_header() {
  std::printf("%-44s %6s %7s %9s %8s %8s %8s %6s %6s %7s\n", "run", "reqs", "req/s", "out_tok/s",
              "ttft_p50", "ttft_p99", "tpot_p50", "slo", "failed", "loads");
}

void print_row(const Json& run) {
  const Json& m = run["metrics"];
  const Json& cache = run.contains("engine") ? run["engine"]
                      : run.contains("server") && run["server"].contains("adapter_cache")
                          ? run["server"]["adapter_cache"]
                          : Json::object();
  char loads[32] = "-";
  if (cache.contains("disk_loads"))
    std::snprintf(loads, sizeof loads, "%.0f", cache["disk_loads"].get<double>());
  std::printf("%-44s %6lld %7.2f %9.1f %8.3f %8.3f %8.4f %6.3f %6lld %7s\n",
              run["label"].get<std::string>().c_str(), m["requests"].get<long long>(),
              m["request_throughput"].get<double>(), m["output_token_throughput"].get<double>(),
              m["ttft_s"]["p50"].get<double>(), m["ttft_s"]["p99"].get<double>(),
              m["tpot_s"]["p50"].get<double>(), m["slo_attainment"].get<double>(),
              m["failed"].get<long long>(), loads);
  std::fflush(stdout);
}

// The first few distinct error messages of a run.
Json error_samples(const std::vector<bench::RequestTiming>& t) {
  std::set<std::string> seen;
  Json out = Json::array();
  for (const auto& r : t)
    if (!r.ok && seen.insert(r.error).second && out.size() < 5) out.push_back(r.error);
  return out;
}

class Runner {
 public:
  explicit Runner(const BenchOptions& o) : o_(o) {}

  int run() {
    if (Status st = prepare(); !st.ok()) return fail(st.message());
    std::vector<std::vector<TraceRequest>> lists;
    for (size_t i = 0; i < o_.runs.size(); ++i) {
      auto reqs = build_requests(o_, o_.runs[i], vocab_);
      if (!reqs.ok()) return fail(reqs.status().message());
      Status st = check_lengths(reqs.value(), max_positions_, o_.runs[i].label);
      if (!st.ok()) return fail(st.message());
      if (!o_.write_trace.empty()) {
        const std::string path = trace_path(o_.write_trace, i, o_.runs.size());
        if (Status w = bench::write_trace(path, reqs.value()); !w.ok()) return fail(w.message());
        trace_files_.push_back(path);
      }
      lists.push_back(std::move(reqs).value());
    }
    if (o_.dry_run) return dry_run(lists);
    if (o_.make_adapters) return make_adapters_only(lists);
    if (Status st = load_model(); !st.ok()) return fail(st.message());
    Json runs = Json::array();
    int64_t failed = 0;
    std::string first_error;
    for (size_t i = 0; i < o_.runs.size(); ++i) {
      auto r = execute(o_.runs[i], lists[i]);
      if (!r.ok()) return fail(r.status().message());
      if (!trace_files_.empty()) r.value()["trace_file"] = trace_files_[i];
      if (i == 0) print_header();  // only once something ran: errors leave stdout empty
      print_row(r.value());
      const int64_t f = r.value()["metrics"]["failed"].get<int64_t>();
      if (f > 0 && first_error.empty()) first_error = r.value()["errors"][0].get<std::string>();
      failed += f;
      runs.push_back(std::move(r).value());
    }
    if (!o_.out.empty()) {
      std::ofstream out(o_.out);
      out << report(runs).dump(2) << "\n";
      out.close();
      if (!out) return fail(o_.out + ": cannot write");
    }
    if (failed > 0 && !o_.allow_failures)
      return fail(std::to_string(failed) + " request(s) failed (first: " + first_error +
                  "); --allow-failures reports them without failing");
    return 0;
  }

 private:
  // The model directory (the demo model when none is given), its shape and the adapter dir.
  Status prepare() {
    model_dir_ = o_.model;
    if (model_dir_.empty() && o_.mode != BenchMode::kUrl) {
      tmp_.path =
          (fs::temp_directory_path() / ("loraserve_bench_" + std::to_string(::getpid()))).string();
      LS_RETURN_IF_ERROR(make_demo(tmp_.path).status());
      model_dir_ = tmp_.path + "/model";
    }
    vocab_ = o_.vocab_size;
    if (model_dir_.rfind("random:", 0) == 0) {  // random weights of a real shape, no files
      if (o_.mode != BenchMode::kInProcess)
        return invalid_argument("--model random:SHAPE works with --in-process only");
      LS_ASSIGN_OR_RETURN(config_, model_shape_config(model_dir_.substr(7)));
      vocab_ = config_.vocab_size;
      max_positions_ = config_.max_position_embeddings;
    } else if (!model_dir_.empty()) {
      LS_ASSIGN_OR_RETURN(config_, ModelConfig::load(model_dir_));
      vocab_ = config_.vocab_size;
      max_positions_ = config_.max_position_embeddings;
    }
    adapter_dir_ = !o_.adapter_dir.empty() ? o_.adapter_dir
                   : !tmp_.path.empty()    ? tmp_.path + "/bench_adapters"
                                           : "/tmp/loraserve_bench_adapters";
    adapter_dir_ = fs::absolute(adapter_dir_).string();
    return ok_status();
  }

  Status load_model() {
    if (o_.mode != BenchMode::kInProcess) return ok_status();
    LS_ASSIGN_OR_RETURN(backend_, make_backend(o_.device));
    if (model_dir_.rfind("random:", 0) == 0) {
      RandomWeightFn fill = host_random_weights(*backend_);
#ifdef LORASERVE_HAS_CUDA
      if (backend_->name() == "cuda")
        fill = [this](DType t, int64_t rows, int64_t cols, uint64_t seed, float scale,
                      float offset) {
          return cuda_random_weight(*backend_, t, rows, cols, seed, scale, offset);
        };
#endif
      LS_ASSIGN_OR_RETURN(model_, make_random_model(config_, *backend_, DType::kBF16, 1, fill));
    } else {
      LS_ASSIGN_OR_RETURN(model_, LlamaModel::load(model_dir_, *backend_));
    }
    LS_ASSIGN_OR_RETURN(kv_dtype_, kv_cache_dtype(o_.kv_cache_dtype, *backend_));
    LS_ASSIGN_OR_RETURN(pool_bytes_, kv_pool_bytes(*backend_, config_, o_.gpu_memory_utilization,
                                                   o_.max_tokens_per_step, o_.max_num_seqs,
                                                   o_.pool_bytes, kv_dtype_));
    return ok_status();
  }

  int dry_run(const std::vector<std::vector<TraceRequest>>& lists) {
    for (size_t i = 0; i < lists.size(); ++i) {
      int64_t in = 0, out = 0;
      for (const auto& r : lists[i]) {
        in += r.input_len;
        out += r.output_len;
      }
      const auto& l = lists[i];
      std::printf(
          "%-44s requests %zu adapters %zu last_arrival_s %.3f input_tokens %lld "
          "output_tokens %lld%s%s\n",
          o_.runs[i].label.c_str(), l.size(), bench::trace_adapters(l).size(),
          l.empty() ? 0.0 : l.back().timestamp_s, static_cast<long long>(in),
          static_cast<long long>(out), trace_files_.empty() ? "" : " trace ",
          trace_files_.empty() ? "" : trace_files_[i].c_str());
    }
    return 0;
  }

  Status make_adapters(const std::vector<std::string>& names) {
    if (names.empty()) return ok_status();
    BenchAdapterOptions ao;
    ao.dir = adapter_dir_;
    ao.real_dir = o_.adapters_from;
    ao.variants = o_.adapter_variants;
    return ensure_bench_adapters(ao, names, config_);
  }

  // --make-adapters: the adapters every run needs, for a server started by hand.
  int make_adapters_only(const std::vector<std::vector<TraceRequest>>& lists) {
    std::set<std::string> all;
    for (const auto& list : lists) {
      const auto names = bench::trace_adapters(list);
      all.insert(names.begin(), names.end());
    }
    if (Status st = make_adapters({all.begin(), all.end()}); !st.ok()) return fail(st.message());
    std::printf("%zu adapters in %s for the model %s (loraserve serve --lora-root %s)\n",
                all.size(), adapter_dir_.c_str(), model_dir_.c_str(), adapter_dir_.c_str());
    return 0;
  }

  // The run's compressed adapters (in process): --lora-bundle, or a synthetic bundle for all
  // of the trace's adapter names.
  Result<LoadedBundles> run_bundles(const std::vector<std::string>& names) {
    if (o_.mode != BenchMode::kInProcess) return LoadedBundles{};
    if (o_.synthetic_bundle_rank <= 0)
      return load_bundles(o_.lora_bundles, o_.bundle_serving, config_, *backend_);
    const compress::Bundle b = compress::synthetic_bundle(
        config_, names, o_.synthetic_bundle_rank, o_.synthetic_bundle_clusters,
        {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV, LoraTarget::kO}, 7);
    LoadedBundles out;
    if (o_.bundle_serving == "materialize") {
      for (const auto& a : b.adapters)
        out.materialized.push_back(
            std::make_shared<const LoraAdapter>(compress::materialize(b, a, "synthetic")));
      return out;
    }
    LS_ASSIGN_OR_RETURN(ServedBundle served, serve_bundle(b, config_, *backend_));
    out.resident = std::move(served.adapters);
    out.device_bytes = served.device_bytes;
    return out;
  }

  Result<Json> execute(const BenchRun& run, std::vector<TraceRequest>& reqs) {
    const std::vector<std::string> names = bench::trace_adapters(reqs);
    LS_ASSIGN_OR_RETURN(LoadedBundles bundles, run_bundles(names));
    std::set<std::string> bundled;
    for (const auto& a : bundles.resident) bundled.insert(a->name);
    for (const auto& a : bundles.materialized) bundled.insert(a->name);
    std::vector<std::string> on_disk;
    for (const auto& n : names)
      if (!bundled.count(n)) on_disk.push_back(n);
    if (o_.mode != BenchMode::kUrl) LS_RETURN_IF_ERROR(make_adapters(on_disk));
    Json j;
    j["label"] = run.label;
    j["workload"] = o_.trace.empty() ? workload_json(run.spec) : Json{{"trace", o_.trace}};
    j["adapters_used"] = names.size();
    if (!bundled.empty())
      j["compressed"] = {{"adapters", bundled.size()},
                         {"serving", o_.bundle_serving},
                         {"synthetic_rank", o_.synthetic_bundle_rank},
                         {"synthetic_clusters", o_.synthetic_bundle_clusters},
                         {"bundles", o_.lora_bundles},
                         {"device_bytes", bundles.device_bytes}};
    std::vector<bench::RequestTiming> timing;
    double wall = 0;
    if (o_.mode == BenchMode::kInProcess) {
      LS_RETURN_IF_ERROR(tokenize_prompts(&reqs, model_dir_));
      InProcessBenchConfig cfg;
      cfg.adapter_dir = adapter_dir_;
      cfg.resident = bundles.resident;
      cfg.loaded = bundles.materialized;
      cfg.engine.max_num_seqs = o_.max_num_seqs;
      cfg.engine.max_tokens_per_step = o_.max_tokens_per_step;
      cfg.engine.pool_bytes = pool_bytes_;
      cfg.engine.kv_dtype = kv_dtype_;
      cfg.engine.adapters.host_budget_bytes = o_.host_bytes;
      cfg.engine.policy = o_.policy;
      cfg.engine.ttft_slo_ms = o_.ttft_slo_ms;
      LS_ASSIGN_OR_RETURN(InProcessRun r, run_in_process_bench(cfg, *model_, reqs));
      timing = std::move(r.timing);
      wall = r.wall_s;
      j["engine"] = std::move(r.engine);
    } else {
#ifdef LORASERVE_HAS_BENCH_HTTP
      LS_ASSIGN_OR_RETURN(HttpRun r, run_http_bench(o_, model_dir_, adapter_dir_, reqs));
      timing = std::move(r.timing);
      wall = r.wall_s;
      j["url"] = r.url;
      j["server"] = std::move(r.server);
#else
      return failed_precondition(
          "--url and --launch need the HTTP client, which this build "
          "leaves out (configure with LORASERVE_SERVER=ON and Boost)");
#endif
    }
    j["metrics"] = bench::summarize(timing, wall, o_.slo_ttft_s);
    j["errors"] = error_samples(timing);
    j["samples"] = bench::latency_samples(timing);
    return j;
  }

  Json report(const Json& runs) const {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    Json target = {{"mode", mode_name(o_.mode)}};
    if (o_.mode == BenchMode::kUrl) target["url"] = o_.url;
    target["max_concurrency"] = o_.max_concurrency;
    target["prompt_format"] = o_.prompt_format == bench::PromptFormat::kText ? "text" : "token_ids";
    return {
        {"benchmark", "loraserve_bench"},
        {"command", o_.command},
        {"suite", o_.suite},
        {"scale", o_.scale},
        {"no_lora", o_.no_lora},
        {"target", target},
        {"machine",
         {{"hostname", host},
          {"hardware_threads", std::thread::hardware_concurrency()},
          {"device", o_.mode == BenchMode::kInProcess ? backend_->name()
                     : o_.device.empty()              ? default_device()
                                                      : o_.device}}},
        {"model", model_dir_},
        {"adapters",
         {{"dir", adapter_dir_}, {"from", o_.adapters_from}, {"variants", o_.adapter_variants}}},
        {"engine",
         {{"max_num_seqs", o_.max_num_seqs},
          {"max_tokens_per_step", o_.max_tokens_per_step},
          {"pool_bytes", o_.mode == BenchMode::kInProcess ? pool_bytes_ : o_.pool_bytes},
          {"kv_cache_dtype", o_.mode == BenchMode::kInProcess ? std::string(dtype_name(kv_dtype_))
                                                              : o_.kv_cache_dtype},
          {"host_adapter_cache_bytes", o_.host_bytes},
          {"max_active_adapters", o_.policy.max_active_adapters},
          {"vtc", o_.policy.vtc},
          {"ttft_slo_ms", o_.ttft_slo_ms}}},
        {"slo_ttft_s", o_.slo_ttft_s},
        {"runs", runs}};
  }

  const BenchOptions& o_;
  TempDir tmp_;
  std::string model_dir_, adapter_dir_;
  ModelConfig config_;
  int32_t vocab_ = 0, max_positions_ = 0;
  std::vector<std::string> trace_files_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  int64_t pool_bytes_ = 0;
  DType kv_dtype_ = DType::kF32;
};

}  // namespace

int run_bench(const BenchOptions& options) {
  return Runner(options).run();
}

}  // namespace ls
