// `loraserve bench --in-process`: drives the Engine directly with an S-LoRA workload,
// open loop (requests are submitted at their arrival times whatever the engine's pace).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/engine.h"
#include "workload.h"

namespace ls {

struct InProcessBenchConfig {
  std::string model_dir;
  std::string adapter_dir;  // where the N random adapters are written (reused when present)
  bench::WorkloadSpec workload;
  EngineOptions engine;
  double slo_ttft_s = 6.0;
  std::vector<LoraTarget> targets = {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV,
                                     LoraTarget::kO};
};

// Runs one workload; returns its summary (config, latencies, throughput, cache statistics).
Result<nlohmann::ordered_json> run_in_process_bench(const InProcessBenchConfig& config,
                                                    const LlamaModel& model);

}  // namespace ls
