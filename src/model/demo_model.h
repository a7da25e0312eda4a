// The embedded default: a small Llama-family model in HF format plus PEFT adapters of
// different ranks and targets, made deterministically from a seed with no download.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace ls {

struct DemoAdapterInfo {
  std::string name;
  std::string dir;
};

// Writes <dir>/model (config.json + model.safetensors) and <dir>/adapters/<name>/
// (adapter_config.json + adapter_model.safetensors) for each demo adapter.
Result<std::vector<DemoAdapterInfo>> make_demo(const std::string& dir, uint64_t seed = 42);

}  // namespace ls
