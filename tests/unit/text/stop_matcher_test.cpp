// StopMatcher: stops found inside and across pushes, only possible stop prefixes held back, the
// earliest stop wins, and a random-split property against a plain search after each push.
#include "text/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>

namespace ls {
namespace {

TEST(StopMatcher, FindsStopInsideOnePush) {
  StopMatcher m({"\n\n"});
  auto o = m.push("Hello\n\nworld");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "Hello");
  EXPECT_EQ(o.stop_index, 0);
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more").text, "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, FindsStopAcrossTokens) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("abc S").text, "abc ");  // "S" may start STOP: held
  EXPECT_EQ(m.push("T").text, "");
  auto o = m.push("OP tail");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "");
}

TEST(StopMatcher, ReleasesHeldTextWhenItCannotBecomeAStop) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("xST").text, "x");
  EXPECT_EQ(m.push("x").text, "STx");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("STO").text, "");
  EXPECT_EQ(m.finish(), "STO");
}

TEST(StopMatcher, HoldsOnlyTheLongestPossiblePrefix) {
  StopMatcher m({"abd"});
  EXPECT_EQ(m.push("abab").text, "ab");  // only the last "ab" can still become "abd"
  auto o = m.push("d!");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "");
}

TEST(StopMatcher, EarliestStopWinsAndReportsItsIndex) {
  StopMatcher m({"world", "", "lo w"});
  auto o = m.push("hello world");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "hel");
  EXPECT_EQ(o.stop_index, 2);
}

TEST(StopMatcher, StopAtTheVeryStartAndMultiByteStops) {
  StopMatcher a({"<|end|>"});
  auto o = a.push("<|end|>rest");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "");
  StopMatcher b({"\xE3\x80\x82"});  // U+3002 IDEOGRAPHIC FULL STOP
  EXPECT_EQ(b.push("\xE4\xBD\xA0\xE5\xA5\xBD").text, "\xE4\xBD\xA0\xE5\xA5\xBD");
  o = b.push("\xE3\x80\x82\xE5\x86\x8D");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "");
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("anything").text, "anything");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, RandomSplitsMatchASearchAfterEachPush) {
  std::mt19937 rng(7);
  const std::string alphabet = "ab \n";
  for (int n = 0; n < 2000; ++n) {
    std::string text;
    for (int i = 0, len = 1 + rng() % 30; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops;
    for (int i = 0, k = 1 + rng() % 3; i < k; ++i) {
      std::string s;
      for (int j = 0, len = 1 + rng() % 4; j < len; ++j) s += alphabet[rng() % alphabet.size()];
      stops.push_back(s);
    }
    std::vector<std::string> parts;
    for (size_t pos = 0; pos < text.size();) {
      size_t len = 1 + rng() % 5;
      parts.push_back(text.substr(pos, len));
      pos += len;
    }
    // Reference: after each push, the earliest start among the stops the text now contains.
    std::string seen, want;
    size_t first = std::string::npos;
    for (const auto& p : parts) {
      seen += p;
      for (const auto& s : stops) first = std::min(first, seen.find(s));
      if (first != std::string::npos) break;
    }
    want = first == std::string::npos ? text : text.substr(0, first);
    size_t longest = 0;
    for (const auto& s : stops) longest = std::max(longest, s.size());
    StopMatcher m(stops);
    std::string got;
    size_t received = 0;
    for (const auto& p : parts) {
      auto o = m.push(p);
      got += o.text;
      received += p.size();
      if (o.stopped) break;
      ASSERT_LE(received - got.size(), longest - 1) << "held back more than a stop prefix";
    }
    got += m.finish();
    ASSERT_EQ(got, want) << "text " << testing::PrintToString(text) << " stops "
                         << testing::PrintToString(stops) << " parts "
                         << testing::PrintToString(parts);
    ASSERT_EQ(m.stopped(), first != std::string::npos);
  }
}

}  // namespace
}  // namespace ls
