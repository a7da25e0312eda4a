// BatchGenerator: runs a list of requests together through the Engine (mixed-adapter continuous
// batching) and returns every result in input order. `loraserve generate` and tests use it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/generation.h"

namespace ls {

struct BatchGeneratorOptions {
  int32_t max_num_seqs = 64;           // sequences running at once
  int32_t max_tokens_per_step = 2048;  // token budget of one forward (chunked prefill)
  int32_t page_size = 1;               // tokens per KV page
  int64_t max_kv_bytes = 1ll << 30;    // the page pool (KV and adapters)
  int32_t num_pages = 0;               // > 0 overrides max_kv_bytes
  DType kv_dtype = DType::kF32;        // of the page pool: kF32 or kBF16
  PolicyOptions policy;                // admission policy (FCFS by default)
  double ttft_slo_ms = 0.0;            // > 0: early abort of requests that missed it
};

class BatchGenerator {
 public:
  using AdapterMap = std::map<std::string, std::shared_ptr<const LoraAdapter>>;
  BatchGenerator(const LlamaModel& model, const AdapterMap& adapters,
                 BatchGeneratorOptions options = {});

  // Checks one request before anything runs: adapter known, ids in the vocabulary,
  // prompt + max_tokens within the context.
  Status validate(const GenerationRequest& r) const;

  // Runs all requests; results in input order. Fails on an invalid request (nothing runs).
  Result<std::vector<GenerationResult>> run(const std::vector<GenerationRequest>& requests);

  Engine& engine() { return *engine_; }

 private:
  static EngineRequest to_engine(const GenerationRequest& r);
  std::unique_ptr<Engine> engine_;
};

}  // namespace ls
