// Prefill tile hints for attention (see attention_tiles.h).
#include "backend/attention_tiles.h"

#include <algorithm>

#include "base/check.h"

namespace ls {

AttentionTiles build_attention_tiles(const std::vector<int32_t>& token_seq,
                                     const std::vector<int32_t>& token_pos) {
  LS_CHECK(token_seq.size() == token_pos.size());
  AttentionTiles t;
  const auto n = static_cast<int32_t>(token_seq.size());
  int32_t start = 0;
  while (start < n) {
    int32_t end = start + 1;
    while (end < n &&
           token_seq[static_cast<size_t>(end)] == token_seq[static_cast<size_t>(start)] &&
           token_pos[static_cast<size_t>(end)] == token_pos[static_cast<size_t>(end - 1)] + 1)
      ++end;
    if (end - start >= AttentionTiles::kMinTileRun) {
      t.runs.push_back({start, end - start, token_seq[static_cast<size_t>(start)],
                        token_pos[static_cast<size_t>(start)]});
      for (int32_t i = start; i < end; i += AttentionTiles::kTileRows) {
        t.tiles.push_back(i);
        t.tiles.push_back(std::min(AttentionTiles::kTileRows, end - i));
      }
    } else {
      for (int32_t i = start; i < end; ++i) t.rest.push_back(i);
    }
    start = end;
  }
  return t;
}

}  // namespace ls
