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
  // The runs the tiles came from, with their sequence and first position.
  ASSERT_EQ(t.runs.size(), 2u);
  EXPECT_EQ(t.runs[0].first, 0);
  EXPECT_EQ(t.runs[0].count, 20);
  EXPECT_EQ(t.runs[0].seq, 0);
  EXPECT_EQ(t.runs[0].pos0, 0);
  EXPECT_EQ(t.runs[1].first, 28);
  EXPECT_EQ(t.runs[1].count, 8);
  EXPECT_EQ(t.runs[1].seq, 3);
  EXPECT_EQ(t.runs[1].pos0, 100);
}

TEST(AttentionTiles, GapsInPositionsOrSequencesSplitRuns) {
  // One sequence whose positions jump (not a contiguous chunk) and two sequences back to back.
  std::vector<int32_t> seq = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  std::vector<int32_t> pos = {0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 0, 1, 2, 3, 4, 5, 6, 7};
  AttentionTiles t = build_attention_tiles(seq, pos);
  EXPECT_EQ(t.tiles, (std::vector<int32_t>{10, 8}));
  ASSERT_EQ(t.runs.size(), 1u);
  EXPECT_EQ(t.runs[0].first, 10);
  EXPECT_EQ(t.runs[0].pos0, 0);
  EXPECT_EQ(t.rest, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(build_attention_tiles({}, {}).num_tiles(), 0);
}

}  // namespace
}  // namespace ls
