// BatchGenerator: runs a list of requests together in mixed-adapter batches until each is
// done. Every step feeds each running sequence its next tokens (a prompt chunk or the last
// sampled token) in one forward; pages for prompt + max_tokens are reserved at admission.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/generation.h"
#include "model/llama_model.h"

namespace ls {

struct BatchGeneratorOptions {
  int32_t max_num_seqs = 64;           // sequences running at once
  int32_t max_tokens_per_step = 2048;  // token budget of one forward (chunked prefill)
  int32_t page_size = 1;               // tokens per KV page
  int64_t max_kv_bytes = 1ll << 30;    // cap on the KV cache
};

class BatchGenerator {
 public:
  BatchGenerator(const LlamaModel& model, const std::map<std::string, DeviceAdapter>& adapters,
                 BatchGeneratorOptions options = {});

  // Checks one request before anything runs: adapter known, ids in the vocabulary,
  // prompt + max_tokens within the context.
  Status validate(const GenerationRequest& r) const;

  // Runs all requests; results in input order. Fails only on invalid requests (nothing runs).
  Result<std::vector<GenerationResult>> run(const std::vector<GenerationRequest>& requests);

 private:
  const LlamaModel& model_;
  const std::map<std::string, DeviceAdapter>& adapters_;
  BatchGeneratorOptions options_;
};

}  // namespace ls
