// Parameters of the shared-basis LoRA op (Compress then Serve; docs/COMPRESSION.md): for one
// layer module, the tokens of each cluster ("group") share the bases U_g, V_g, and each token
// carries its adapter's small S. The op adds U_g S_t V_g^T x_t to y for every token with a group.
#pragma once

#include <cstdint>

namespace ls {

struct CompressedLoraBatch {
  int64_t in_dim = 0;
  int64_t out_dim = 0;
  int32_t num_groups = 0;                 // clusters present in this batch
  const float* const* vt = nullptr;       // [num_groups] V_g^T, [kv_g, in_dim] row-major
  const float* const* ut = nullptr;       // [num_groups] U_g^T, [ku_g, out_dim] row-major
  const int32_t* ku = nullptr;            // [num_groups]
  const int32_t* kv = nullptr;            // [num_groups]
  bool diag = false;                      // S is diagonal ([ku], ku == kv) instead of [ku, kv]
  const int32_t* token_group = nullptr;   // [n] group of each token, -1 for none
  const float* const* token_s = nullptr;  // [n] the token's S (row-major; unused for group -1)
};

}  // namespace ls
