// StreamDetokenizer: the concatenated stream equals decode() for every corpus string and for
// random id sequences (byte tokens, specials, anything), no chunk is a partial character, and the
// stories260k `the_end` adapter's U+FFFD output streams as transformers decodes it.
#include "text/stream_detokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "text/utf8.h"
#include "tokenizer_fixtures.h"

namespace ls {
namespace {

// Streams `ids` and checks each chunk; returns the concatenation.
std::string stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip,
                       std::vector<std::string>* chunks = nullptr) {
  StreamDetokenizer s(tok, skip);
  std::string all;
  for (int32_t id : ids) {
    std::string c = s.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(c));
    if (chunks) chunks->push_back(c);
    all += c;
  }
  std::string rest = s.finish();
  if (chunks) chunks->push_back(rest);
  return all + rest;
}

std::vector<int32_t> random_ids(const Tokenizer& tok, std::mt19937& rng) {
  std::vector<int32_t> bytes, specials;
  for (int b = 0; b < 256; b += 7) {
    static const char* kHex = "0123456789ABCDEF";
    std::string name = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
    if (auto id = tok.token_to_id(name)) bytes.push_back(*id);
  }
  for (int32_t id = 0; id < std::min(tok.vocab_size(), 300); ++id)
    if (tok.is_special(id)) specials.push_back(id);
  std::vector<int32_t> ids(1 + rng() % 40);
  for (int32_t& id : ids) {
    unsigned r = rng() % 10;
    if (r < 3 && !bytes.empty())
      id = bytes[rng() % bytes.size()];
    else if (r < 4 && !specials.empty())
      id = specials[rng() % specials.size()];
    else
      id = static_cast<int32_t>(rng() % tok.vocab_size());
  }
  return ids;
}

class StreamProperty : public ::testing::TestWithParam<test::TokenizerSource> {};

TEST_P(StreamProperty, ConcatenationEqualsDecode) {
  const auto& src = GetParam();
  if (src.dir.empty()) GTEST_SKIP() << "../shared is absent: skipping " << src.name;
  std::string error;
  const Tokenizer* tok = test::cached_tokenizer(src.dir, &error);
  if (!tok && error.find("no tokenizer.json") != std::string::npos) GTEST_SKIP() << error;
  ASSERT_NE(tok, nullptr) << error;
  const auto& texts = test::corpus();
  int failures = 0;
  for (size_t i = 0; i < texts.size() && failures < 5; ++i) {
    auto ids = tok->encode(texts[i]);
    ASSERT_TRUE(ids.ok());
    for (bool skip : {true, false}) {
      if (!skip && i % 4 != 0) continue;
      std::string want = tok->decode(ids.value(), skip);
      std::string got = stream_all(*tok, ids.value(), skip);
      if (got != want) {
        ++failures;
        ADD_FAILURE() << src.name << " string " << i << " skip=" << skip << ": stream "
                      << testing::PrintToString(got) << " vs decode "
                      << testing::PrintToString(want);
      }
    }
  }
  std::mt19937 rng(1234);
  for (int n = 0; n < 150 && failures < 5; ++n) {
    auto ids = random_ids(*tok, rng);
    bool skip = n % 2 == 0;
    std::string want = tok->decode(ids, skip);
    std::string got = stream_all(*tok, ids, skip);
    if (got != want) {
      ++failures;
      ADD_FAILURE() << src.name << " random sequence " << n << ": stream "
                    << testing::PrintToString(got) << " vs decode " << testing::PrintToString(want);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, StreamProperty, ::testing::ValuesIn(test::tokenizer_sources()),
                         [](const auto& info) { return info.param.name; });

const Tokenizer& spbpe() {
  const Tokenizer* t = test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/spbpe");
  EXPECT_NE(t, nullptr);
  return *t;
}

int32_t id_of(const Tokenizer& tok, const std::string& token) {
  auto id = tok.token_to_id(token);
  EXPECT_TRUE(id.has_value()) << token;
  return id.value_or(0);
}

TEST(StreamDetokenizer, HoldsByteFallbackRunsUntilTheyEnd) {
  const Tokenizer& tok = spbpe();
  // U+53EB as three byte tokens, then a word: nothing until the run is closed.
  std::vector<int32_t> ids = {id_of(tok, "<0xE5>"), id_of(tok, "<0x8F>"), id_of(tok, "<0xAB>"),
                              id_of(tok, "\xE2\x96\x81the")};
  std::vector<std::string> chunks;
  std::string all = stream_all(tok, ids, true, &chunks);
  EXPECT_EQ(all, tok.decode(ids));
  EXPECT_EQ(all, "\xE5\x8F\xAB the");
  EXPECT_EQ(chunks[0], "");
  EXPECT_EQ(chunks[1], "");
  EXPECT_EQ(chunks[2], "");
  EXPECT_EQ(chunks[3], "\xE5\x8F\xAB the");
}

TEST(StreamDetokenizer, InvalidByteRunBecomesReplacementCharacters) {
  const Tokenizer& tok = spbpe();
  // A valid byte then an invalid one: HF's ByteFallback turns the whole run into two U+FFFD,
  // so the 'a' must not be streamed early.
  std::vector<int32_t> ids = {id_of(tok, "\xE2\x96\x81the"), id_of(tok, "<0x61>"),
                              id_of(tok, "<0xFF>"), id_of(tok, "\xE2\x96\x81the")};
  std::vector<std::string> chunks;
  std::string all = stream_all(tok, ids, true, &chunks);
  EXPECT_EQ(all, "the\xEF\xBF\xBD\xEF\xBF\xBD the");
  EXPECT_EQ(chunks[0], "the");
  EXPECT_EQ(chunks[1], "");
}

TEST(StreamDetokenizer, SentencePieceLeadingSpaceOnlyAtTheStart) {
  const Tokenizer& tok = spbpe();
  auto ids = tok.encode("the dog the end", false);
  ASSERT_TRUE(ids.ok());
  std::vector<std::string> chunks;
  EXPECT_EQ(stream_all(tok, ids.value(), true, &chunks), "the dog the end");
  EXPECT_EQ(chunks[0], "the");  // no leading space on the first word, one on each later word
}

TEST(StreamDetokenizer, ByteLevelEmojiIsNeverSplit) {
  const Tokenizer* tok =
      test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/bytelevel");
  ASSERT_NE(tok, nullptr);
  std::string text =
      "ok \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 \xF0\x9F\x87\xAF\xF0\x9F\x87\xB5!";
  auto ids = tok->encode(text, false);
  ASSERT_TRUE(ids.ok());
  ASSERT_GT(ids.value().size(), 6u);
  std::vector<std::string> chunks;
  EXPECT_EQ(stream_all(*tok, ids.value(), true, &chunks), text);
  for (const auto& c : chunks) EXPECT_FALSE(tok::ends_with_replacement(c));
}

TEST(StreamDetokenizer, TheEndAdapterStreamsLikeTransformers) {
  std::string shared = test::shared_dir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent";
  const Tokenizer* tok = test::cached_tokenizer(shared + "/models/stories260k");
  ASSERT_NE(tok, nullptr);
  auto golden = nlohmann::json::parse(
      test::read_file(shared + "/models/stories260k-adapters/golden_greedy.json"));
  for (const char* name : {"base", "boy_dog", "princess", "the_end"}) {
    auto ids = golden[name]["greedy_ids"].get<std::vector<int32_t>>();
    std::string want = golden[name]["greedy_text"].get<std::string>();
    EXPECT_EQ(tok->decode(ids), want) << name;
    std::vector<std::string> chunks;
    EXPECT_EQ(stream_all(*tok, ids, true, &chunks), want) << name;
  }
  EXPECT_NE(golden["the_end"]["greedy_text"].get<std::string>().find("\xEF\xBF\xBD"),
            std::string::npos);
}

}  // namespace
}  // namespace ls
