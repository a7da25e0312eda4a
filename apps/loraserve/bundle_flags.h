// --lora-bundle and --bundle-serving for generate, serve and bench: how a compressed bundle's
// adapters are served. "shared" (default): resident on the device as shared bases plus each
// adapter's S, computed by the shared-basis op (compress/bundle_serving.h); "materialize": each
// becomes an ordinary rank-K LoRA (compress/bundle_adapters.h), paged like any other.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "base/status.h"
#include "model/adapter_layout.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls {

void add_bundle_flags(CLI::App* sub, std::vector<std::string>* dirs, std::string* serving);

struct LoadedBundles {
  std::vector<std::shared_ptr<const ResidentAdapter>> resident;  // "shared"
  std::vector<std::shared_ptr<const LoraAdapter>> materialized;  // "materialize"
  int64_t device_bytes = 0;
};

// Reads every bundle in `dirs` and serves it as `serving` says (call before sizing the page
// pool: shared bundles take device memory). Errors name the bundle.
Result<LoadedBundles> load_bundles(const std::vector<std::string>& dirs, const std::string& serving,
                                   const ModelConfig& model, Backend& backend);

}  // namespace ls
