// Prefill tile hints (src/backend/attention_tiles.h): which tokens become tiles and which stay
// per-token.
#include <gtest/gtest.h>

#include "backend/attention_tiles.h"

namespace ls {
namespace {

TEST(AttentionTiles, RunsOfEightOrMoreBecomeTilesOfSixteen) {
  // seq 0: 20 tokens at 0..19; seq 1: one decode token; seq 2: 7 tokens (too short);
  // seq 3: 8 tokens at 100..107.
  std::vector<int32_t> seq, pos;
  for (int32_t i = 0; i < 20; ++i) seq.push_back(0), pos.push_back(i);
  seq.push_back(1), pos.push_back(55);
  for (int32_t i = 0; i < 7; ++i) seq.push_back(2), pos.push_back(i);
  for (int32_t i = 0; i < 8; ++i) seq.push_back(3), pos.push_back(100 + i);
  AttentionTiles t = build_attention_tiles(seq, pos);
  EXPECT_EQ(t.tiles, (std::vector<int32_t>{0, 16, 16, 4, 28, 8}));
  std::vector<int32_t> rest = {20, 21, 22, 23, 24, 25, 26, 27};
  EXPECT_EQ(t.rest, rest);
}

TEST(AttentionTiles, GapsInPositionsOrSequencesSplitRuns) {
  // One sequence whose positions jump (not a contiguous chunk) and two sequences back to back.
  std::vector<int32_t> seq = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  std::vector<int32_t> pos = {0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 0, 1, 2, 3, 4, 5, 6, 7};
  AttentionTiles t = build_attention_tiles(seq, pos);
  EXPECT_EQ(t.tiles, (std::vector<int32_t>{10, 8}));
  EXPECT_EQ(t.rest, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(build_attention_tiles({}, {}).num_tiles(), 0);
}

}  // namespace
}  // namespace ls
