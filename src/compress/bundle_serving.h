// Serving a bundle with the shared-basis op (Compress then Serve): one backend allocation holds
// every cluster's bases (V^T and U^T per layer and module, fp32) and every adapter's S, and
// each adapter becomes a ResidentAdapter with `compressed` set, which the engine registers as
// always resident (AdapterCache::register_resident). The forward then computes x V and U once
// per cluster's tokens and only the small S per adapter (LlamaModel::forward).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "compress/bundle.h"
#include "model/adapter_layout.h"
#include "model/model_config.h"

namespace ls {

// Largest K (ku or kv) a served bundle may have (the kernels keep a tile of S V^T x in
// shared memory).
inline constexpr int32_t kMaxServedBundleRank = 1024;

struct ServedBundle {
  std::vector<std::shared_ptr<const ResidentAdapter>> adapters;
  int64_t device_bytes = 0;  // bases and S together
};

// Validates `bundle` against `model` and copies it onto `backend`.
Result<ServedBundle> serve_bundle(const compress::Bundle& bundle, const ModelConfig& model,
                                  Backend& backend);
// Reads <bundle_dir> (compress::read_bundle) and serves it.
Result<ServedBundle> serve_bundle_dir(const std::string& bundle_dir, const ModelConfig& model,
                                      Backend& backend);

// Bytes serve_bundle would allocate on the device (for sizing the page pool around it).
int64_t served_bundle_bytes(const compress::Bundle& bundle);

}  // namespace ls
