// A compressed adapter resident on the device (Compress then Serve; docs/COMPRESSION.md): no
// pages of its own, only pointers to its cluster's shared bases and to its own small S per
// layer and module, all in device memory that `owner` keeps alive (one allocation per bundle,
// made by compress/bundle_serving.h). The forward adds U S V^T x for its tokens through the
// backend's compressed_lora op, with every token of a cluster sharing the x V and U GEMMs.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/lora_adapter.h"

namespace ls {

struct CompressedModule {
  const float* vt = nullptr;  // V^T [kv, in_dim] row-major, shared by the cluster
  const float* ut = nullptr;  // U^T [ku, out_dim] row-major, shared by the cluster
  const float* s = nullptr;   // this adapter's S: [ku, kv] row-major, or [ku] when diagonal
  int32_t ku = 0;             // 0: the adapter leaves this module alone
  int32_t kv = 0;
};

struct CompressedAdapter {
  const void* cluster = nullptr;  // identity of the cluster whose bases it shares
  bool diag = false;              // S diagonal (JD-Diag) or full (JD-Full)
  int32_t max_k = 0;              // largest ku or kv over its modules
  std::vector<std::array<CompressedModule, kNumLoraTargets>> layers;
  std::shared_ptr<const void> owner;  // the bundle's device memory
};

}  // namespace ls
