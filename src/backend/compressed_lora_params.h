// Parameters of the shared-basis LoRA op (Compress then Serve; docs/COMPRESSION.md): for one
// layer module, the tokens of each cluster ("group") share the bases U_g, V_g, and each token
// carries its adapter's small S through its slot. The op adds U_g S V_g^T x_t to y for every
// token whose slot has a group. All pointers are backend memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ls {

// Tokens of one group go in tiles of at most this many rows (the GEMM tiles of the kernels).
inline constexpr int32_t kCompressedTileRows = 8;

struct CompressedLoraBatch {
  int64_t in_dim = 0;
  int64_t out_dim = 0;
  int32_t num_groups = 0;                // clusters present in this batch
  int32_t num_slots = 0;                 // the forward's adapter slots
  int32_t k_max = 0;                     // largest ku / kv over the groups (scratch width)
  const float* const* vt = nullptr;      // [num_groups] V_g^T, [kv_g, in_dim] row-major
  const float* const* ut = nullptr;      // [num_groups] U_g^T, [ku_g, out_dim] row-major
  const int32_t* dims = nullptr;         // [num_groups * 3]: ku_g, kv_g, diag_g (ku_g 0: skip)
  const float* const* slot_s = nullptr;  // [num_slots] the slot's S ([ku, kv] or [ku] if diag)
  const int32_t* slot_group = nullptr;   // [num_slots] group of the slot, -1 for none
  const int32_t* token_slot = nullptr;   // [n] slot of each token, -1 for the base model
  // The tokens with a group, sorted by group, cut into tiles of <= kCompressedTileRows rows of
  // one group: tile i covers rows[tiles[2i] .. tiles[2i] + tiles[2i+1]).
  const int32_t* rows = nullptr;
  int32_t num_tiles = 0;
  const int32_t* tiles = nullptr;
  float* scratch = nullptr;  // [n * k_max] floats of backend memory for x V
};

// The row and tile tables of CompressedLoraBatch from each token's group (-1: none): tokens
// sorted by group (stable), tiles of <= kCompressedTileRows rows of one group.
struct CompressedTiles {
  std::vector<int32_t> rows;
  std::vector<int32_t> tiles;  // [num_tiles * 2]
  int32_t num_tiles() const { return static_cast<int32_t>(tiles.size() / 2); }
};
inline CompressedTiles build_compressed_tiles(const std::vector<int32_t>& token_group,
                                              int32_t num_groups) {
  CompressedTiles t;
  for (int32_t g = 0; g < num_groups; ++g) {
    const auto first = static_cast<int32_t>(t.rows.size());
    for (size_t i = 0; i < token_group.size(); ++i)
      if (token_group[i] == g) t.rows.push_back(static_cast<int32_t>(i));
    const auto end = static_cast<int32_t>(t.rows.size());
    for (int32_t i = first; i < end; i += kCompressedTileRows) {
      t.tiles.push_back(i);
      t.tiles.push_back(std::min(end - i, kCompressedTileRows));
    }
  }
  return t;
}

}  // namespace ls
