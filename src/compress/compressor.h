// Compressing a set of loaded LoRA adapters into a Bundle (JD-Full or JD-Diag, optional
// clusters), and projecting new adapters onto an existing bundle without refitting.
// Work is spread over (cluster, layer, module) on ThreadPool::shared(), OpenBLAS
// single-threaded per call.
#pragma once

#include <memory>
#include <vector>

#include "base/status.h"
#include "compress/bundle.h"

namespace ls::compress {

struct CompressOptions {
  Mode mode = Mode::kFull;
  int32_t rank = 16;          // K
  int32_t clusters = 1;       // C
  int32_t iters = 10;         // alternating steps per fit
  int32_t cluster_iters = 8;  // k-means rounds (C > 1)
  bool normalize = true;      // fit each dW_i at unit Frobenius norm
  uint64_t seed = 1;
};

struct CompressStats {
  double seconds = 0;
  int32_t cluster_rounds = 0;  // k-means rounds run (0 with one cluster)
  int64_t modules_fitted = 0;  // (cluster, layer, module) fits in the final round
};

// All adapters must have been loaded against `model` (same layer count and widths).
Result<Bundle> compress_adapters(const ModelConfig& model,
                                 const std::vector<std::shared_ptr<const LoraAdapter>>& adapters,
                                 const CompressOptions& opts, CompressStats* stats = nullptr);

// Projects `adapters` onto the bases of `bundle` (each to the cluster that reproduces it best
// among those with bases for all of its modules) and returns the bundle with them added.
Result<Bundle> add_adapters(const Bundle& bundle, const ModelConfig& model,
                            const std::vector<std::shared_ptr<const LoraAdapter>>& adapters);

}  // namespace ls::compress
