// Host-side builder of AttentionBatch's prefill tile hints: runs of at least kMinTileRun
// consecutive tokens of one sequence at consecutive positions are cut into tiles of up to
// kTileRows tokens (a tensor-core kernel computes a tile's rows together and reads each key
// once for all of them); every other token (decode tokens, short chunks) is listed as rest.
// The runs themselves are kept too (AttentionBatch.runs: a backend may compute a run whole).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/op_params.h"

namespace ls {

struct AttentionTiles {
  static constexpr int32_t kTileRows = 16;
  static constexpr int32_t kMinTileRun = 8;
  std::vector<int32_t> tiles;      // (first token, count) pairs
  std::vector<int32_t> rest;       // tokens outside every tile
  std::vector<AttentionRun> runs;  // the runs the tiles were cut from (seq, pos0 filled in)
  int32_t num_tiles() const { return static_cast<int32_t>(tiles.size() / 2); }
};

AttentionTiles build_attention_tiles(const std::vector<int32_t>& token_seq,
                                     const std::vector<int32_t>& token_pos);

}  // namespace ls
