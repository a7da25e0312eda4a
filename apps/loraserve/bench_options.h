// Everything `loraserve bench` was asked to do, after flag parsing and validation: the runs,
// where they go (in process, a launched server, a URL) and what to write.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench_suites.h"
#include "engine/admission_policy.h"
#include "trace.h"

namespace ls {

enum class BenchMode { kInProcess, kLaunch, kUrl };
const char* mode_name(BenchMode m);

struct BenchOptions {
  BenchMode mode = BenchMode::kInProcess;
  std::vector<BenchRun> runs;
  std::string suite, scale;  // empty without --suite
  std::string trace;         // --trace FILE: replay it (one run)
  bool no_lora = false;      // requests go to the base model
  bool dry_run = false;
  bool make_adapters = false;  // write the runs' adapters to adapter_dir and stop
  bool allow_failures = false;
  double slo_ttft_s = 6.0;
  // Model and adapters
  std::string model;  // empty: the demo model, made on the fly (not for --url)
  std::string adapter_dir, adapters_from;
  int32_t adapter_variants = 0;
  // Compressed adapters (in process): bundles whose adapters replace the trace's adapters of
  // the same name, or a synthetic bundle of rank K made for the trace's adapter names.
  std::vector<std::string> lora_bundles;
  std::string bundle_serving = "shared";
  int32_t synthetic_bundle_rank = 0;
  int32_t synthetic_bundle_clusters = 1;
  bench::PromptFormat prompt_format = bench::PromptFormat::kTokenIds;
  int32_t vocab_size = 0;  // --url without --model: for random prompt ids
  // Outputs
  std::string out, write_trace;
  // Engine (in process) and the launched server
  int32_t max_num_seqs = 64, max_tokens_per_step = 2048;
  int64_t host_bytes = 4ll << 30, pool_bytes = 512ll << 20;
  PolicyOptions policy;
  double ttft_slo_ms = 0.0;
  std::string device;
  double gpu_memory_utilization = 0.9;
  std::string kv_cache_dtype = "auto";
  bool gpu_memory_given = false;
  // HTTP
  std::string url, api_key, served_model;
  int32_t max_concurrency = 0;
  double request_timeout_s = 3600.0, launch_timeout_s = 600.0;
  std::vector<std::string> serve_args;
  std::string command;  // as typed
};

// Runs the benchmark; returns the exit code (messages already printed).
int run_bench(const BenchOptions& options);

}  // namespace ls
