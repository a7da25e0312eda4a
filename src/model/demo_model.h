// The embedded default: a small Llama-family model in HF format plus PEFT adapters of
// different ranks and targets, made deterministically from a seed with no download.
#pragma once

#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls {

struct DemoAdapterInfo {
  std::string name;
  std::string dir;
};

// A PEFT adapter with random non-zero A and B, scaled so it visibly changes outputs.
struct RandomAdapterSpec {
  std::string name;
  int32_t r = 8;
  double alpha = 16;
  bool rslora = false;
  std::vector<LoraTarget> targets;
  DType dtype = DType::kF32;
  std::vector<std::pair<std::string, int32_t>> rank_pattern;
};

// Writes adapter_config.json + adapter_model.safetensors for `config` into `dir` (created).
Status write_random_adapter(const std::string& dir, const ModelConfig& config,
                            const RandomAdapterSpec& spec, uint64_t seed);

// Writes <dir>/model (config.json + model.safetensors) and <dir>/adapters/<name>/
// (adapter_config.json + adapter_model.safetensors) for each demo adapter.
Result<std::vector<DemoAdapterInfo>> make_demo(const std::string& dir, uint64_t seed = 42);

}  // namespace ls
