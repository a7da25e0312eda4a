// A compressed bundle: shared bases per cluster and (layer, module), and each adapter's small
// coefficient matrices. On disk: bundle.json (metadata) + bundle.safetensors (fp32 tensors);
// the format is docs/COMPRESSION.md. Reading validates everything before anything is used.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "compress/joint_fit.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls::compress {

inline constexpr int32_t kBundleFormatVersion = 1;
inline constexpr const char* kBundleFormat = "loraserve.compressed_lora";

// The base-model shape a bundle was made for; adapters of another shape cannot use it.
struct BundleShape {
  std::string architecture;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t num_layers = 0;
  int32_t q_dim = 0;
  int32_t kv_dim = 0;

  static BundleShape of(const ModelConfig& c);
  // Ok when `c` has the same module widths and layer count; otherwise says what differs.
  Status check(const ModelConfig& c) const;
  int64_t in_dim(LoraTarget t) const;
  int64_t out_dim(LoraTarget t) const;
};

// One adapter's coefficients for one module.
struct AdapterModule {
  Coeffs coeffs;            // S (restored to the adapter's own scale), ||dW||^2, error
  int32_t source_rank = 0;  // the rank of the original LoRA module
  double source_scale = 0;  // its PEFT scale (folded into S)
};

template <typename T>
using PerModule = std::vector<std::array<std::optional<T>, kNumLoraTargets>>;  // [layer][target]

struct BundleAdapter {
  std::string name;
  std::string source;  // where it was compressed from (informational)
  int32_t cluster = 0;
  PerModule<AdapterModule> modules;
};

struct Bundle {
  Mode mode = Mode::kFull;
  int32_t rank = 0;  // K
  bool normalized = true;
  BundleShape shape;
  std::vector<PerModule<Bases>> clusters;  // [cluster][layer][target]
  std::vector<BundleAdapter> adapters;

  int32_t num_clusters() const { return static_cast<int32_t>(clusters.size()); }
  const BundleAdapter* find(const std::string& name) const;
};

// Writes <dir>/bundle.json and <dir>/bundle.safetensors (dir created).
Status write_bundle(const std::string& dir, const Bundle& bundle);
// Reads and validates a bundle directory (shapes, names, missing or extra tensors, finite values).
Result<Bundle> read_bundle(const std::string& dir);

// Per adapter and module: rank, norm, relative error; plus summary statistics.
nlohmann::ordered_json error_report(const Bundle& bundle);

}  // namespace ls::compress
