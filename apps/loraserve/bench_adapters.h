// The adapters a benchmark needs, as PEFT directories <dir>/<name>, made from their names:
// "lora-r<rank>-<k>" is a random adapter of that rank (S-LoRA's dummy adapters; the same in
// every run that uses it), "lora-<i>" with a real source is a copy of the (i mod k)-th real
// adapter; any other name must already be there. Reused when a previous run wrote the same
// thing (a small stamp file per adapter says what).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls {

struct BenchAdapterOptions {
  std::string dir;  // where <name>/ directories go (created); the server's --lora-root
  std::vector<LoraTarget> targets = {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV,
                                     LoraTarget::kO};  // S-LoRA's dummy adapters
  std::string real_dir;  // non-empty: "lora-<i>" is a copy of the i % k-th adapter found here
  // > 0: random "lora-r<rank>-<k>" with k >= variants hard-link the weights of
  // "lora-r<rank>-<k % variants>" (serving cost is the same: the server loads each adapter on
  // its own; disk use is bounded).
  int32_t variants = 0;
};

// Makes <dir>/<name> for every name of `names`. Progress on a terminal only.
Status ensure_bench_adapters(const BenchAdapterOptions& options,
                             const std::vector<std::string>& names, const ModelConfig& config);

// The sub-directories of `dir` holding adapter_config.json, sorted by name.
Result<std::vector<std::string>> list_adapter_dirs(const std::string& dir);

}  // namespace ls
