// Serving a bundle with today's engine: each compressed adapter becomes an ordinary LoRA of
// rank ku per module, A = S V^T [ku, in] and B^T = U^T [ku, out] with scale 1 (a diagonal S is
// folded the same way), so AdapterCache::register_loaded serves compressed and ordinary
// adapters in one batch. (The shared-basis serving math is the Backend's compressed_lora op.)
#pragma once

#include <string>
#include <vector>

#include "compress/bundle.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls {

// Reads and validates <bundle_dir> against `model` and materialises every adapter by name.
Result<std::vector<LoraAdapter>> load_bundle_adapters(const std::string& bundle_dir,
                                                      const ModelConfig& model);

namespace compress {
// One adapter of an already validated bundle as a LoRA (dir = "<bundle_dir>#<name>").
LoraAdapter materialize(const Bundle& bundle, const BundleAdapter& adapter,
                        const std::string& bundle_dir);
}  // namespace compress

}  // namespace ls
