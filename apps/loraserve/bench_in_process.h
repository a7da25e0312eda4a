// `loraserve bench --in-process`: drives the Engine directly with a request list, open loop
// (requests are submitted at their arrival times whatever the engine's pace).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/engine.h"
#include "metrics.h"
#include "trace.h"

namespace ls {

struct InProcessBenchConfig {
  std::string adapter_dir;  // adapter <name> of the trace is registered from <adapter_dir>/<name>
  // ... unless it is one of these (compressed bundle adapters, served or materialised).
  std::vector<std::shared_ptr<const ResidentAdapter>> resident;
  std::vector<std::shared_ptr<const LoraAdapter>> loaded;
  EngineOptions engine;
};

struct InProcessRun {
  std::vector<bench::RequestTiming> timing;
  double wall_s = 0.0;
  nlohmann::ordered_json engine;  // adapter-cache and scheduler statistics
};

// Replays `requests` (prompts as token ids) against a fresh Engine whose adapters start cold
// (registered, on disk only).
Result<InProcessRun> run_in_process_bench(const InProcessBenchConfig& config,
                                          const LlamaModel& model,
                                          const std::vector<bench::TraceRequest>& requests);

}  // namespace ls
