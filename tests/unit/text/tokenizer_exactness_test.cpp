// Exactness against HF `tokenizers` 0.23.2 (references from tools/make_tokenizer_refs.py): the
// ids of every corpus string with and without special tokens, the decoded text, and decodes of
// random id sequences, for the trained fixtures and the real tokenizers of ../shared.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tokenizer_fixtures.h"

namespace ls {
namespace {

using test::corpus;
using test::read_jsonl;

std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

std::string show_text(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct Counts {
  int strings = 0, ids_ok = 0, decode_ok = 0, plain = 0, plain_ok = 0, random = 0, random_ok = 0;
};

class TokenizerExactness : public ::testing::TestWithParam<test::TokenizerSource> {};

TEST_P(TokenizerExactness, MatchesHuggingFace) {
  const test::TokenizerSource& src = GetParam();
  if (src.dir.empty()) GTEST_SKIP() << "../shared is absent: skipping " << src.name;
  std::string ref_path = test::tokenizer_fixture_dir() + "/refs/" + src.name + ".jsonl";
  if (!std::ifstream(ref_path)) GTEST_SKIP() << "no reference file " << ref_path;
  std::string error;
  const Tokenizer* tok = test::cached_tokenizer(src.dir, &error);
  ASSERT_NE(tok, nullptr) << error;
  auto refs = read_jsonl(ref_path);
  ASSERT_FALSE(refs.empty());
  const auto& texts = corpus();
  EXPECT_EQ(refs[0]["meta"]["strings"].get<size_t>(), texts.size()) << "stale references";
  EXPECT_EQ(tok->vocab_size(), refs[0]["meta"]["vocab_size"].get<int32_t>());

  Counts c;
  int reported = 0;
  auto report = [&](const std::string& what) {
    if (++reported <= 8) ADD_FAILURE() << src.name << ": " << what;
  };
  for (size_t k = 1; k < refs.size(); ++k) {
    const auto& r = refs[k];
    if (r.contains("random")) {
      auto seq = r["random"].get<std::vector<int32_t>>();
      ++c.random;
      std::string d1 = tok->decode(seq, true), d2 = tok->decode(seq, false);
      if (d1 == r["decoded"].get<std::string>() && d2 == r["decoded_keep"].get<std::string>()) {
        ++c.random_ok;
      } else {
        report("decode of " + show_ids(seq) + ": got " + show_text(d1) + " / " + show_text(d2) +
               ", want " + show_text(r["decoded"].get<std::string>()) + " / " +
               show_text(r["decoded_keep"].get<std::string>()));
      }
      continue;
    }
    size_t i = r["i"].get<size_t>();
    ASSERT_LT(i, texts.size());
    const std::string& text = texts[i];
    ++c.strings;
    auto want = r["ids"].get<std::vector<int32_t>>();
    auto got = tok->encode(text, true);
    ASSERT_TRUE(got.ok()) << got.status().message();
    if (got.value() == want) {
      ++c.ids_ok;
    } else {
      report("string " + std::to_string(i) + " " + show_text(text) + ": got " +
             show_ids(got.value()) + ", want " + show_ids(want));
    }
    std::string want_text = r.contains("decoded") ? r["decoded"].get<std::string>() : text;
    std::string decoded = tok->decode(want, true);
    if (decoded == want_text) {
      ++c.decode_ok;
    } else {
      report("decode of string " + std::to_string(i) + ": got " + show_text(decoded) + ", want " +
             show_text(want_text));
    }
    if (r.contains("ids_no_special")) {
      ++c.plain;
      auto want_plain = r["ids_no_special"].get<std::vector<int32_t>>();
      auto plain = tok->encode(text, false);
      ASSERT_TRUE(plain.ok()) << plain.status().message();
      std::string keep = tok->decode(want_plain, false);
      if (plain.value() == want_plain && keep == r["decoded_keep"].get<std::string>()) {
        ++c.plain_ok;
      } else {
        report("no-special string " + std::to_string(i) + ": got " + show_ids(plain.value()) + " " +
               show_text(keep) + ", want " + show_ids(want_plain) + " " +
               show_text(r["decoded_keep"].get<std::string>()));
      }
    }
  }
  std::printf("[ exact    ] %-11s ids %d/%d, decode %d/%d, no-special %d/%d, random decode %d/%d\n",
              src.name.c_str(), c.ids_ok, c.strings, c.decode_ok, c.strings, c.plain_ok, c.plain,
              c.random_ok, c.random);
  EXPECT_EQ(c.ids_ok, c.strings);
  EXPECT_EQ(c.decode_ok, c.strings);
  EXPECT_EQ(c.plain_ok, c.plain);
  EXPECT_EQ(c.random_ok, c.random);
  EXPECT_GE(c.strings, 500);
}

INSTANTIATE_TEST_SUITE_P(All, TokenizerExactness, ::testing::ValuesIn(test::tokenizer_sources()),
                         [](const auto& info) { return info.param.name; });

// The tokenizer.model path (no tokenizer.json in the directory) against Python SentencePiece.
class SentencePieceExactness : public ::testing::TestWithParam<std::string> {};

TEST_P(SentencePieceExactness, MatchesSentencePiece) {
  const std::string& name = GetParam();
  std::string shared = test::shared_dir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent: skipping " << name;
  std::string src = shared + "/tokenizers/" + name;
  std::string dir = test::temp_dir("sp_" + name);
  test::write_file(dir + "/tokenizer.model", test::read_file(src + "/tokenizer.model"));
  test::write_file(dir + "/tokenizer_config.json", test::read_file(src + "/tokenizer_config.json"));
  auto loaded = Tokenizer::load_dir(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const Tokenizer& tok = *loaded.value();
  auto refs = read_jsonl(test::tokenizer_fixture_dir() + "/refs/" + name + ".sp.jsonl");
  ASSERT_FALSE(refs.empty());
  EXPECT_EQ(tok.vocab_size(), refs[0]["meta"]["vocab_size"].get<int32_t>());
  int strings = 0, ids_ok = 0, decode_ok = 0, reported = 0;
  for (size_t k = 1; k < refs.size(); ++k) {
    const auto& r = refs[k];
    const std::string& text = corpus()[r["i"].get<size_t>()];
    ++strings;
    auto want = r["ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(text);
    ASSERT_TRUE(got.ok()) << got.status().message();
    bool ids_same = got.value() == want;
    ids_ok += ids_same;
    std::string want_text = r.contains("decoded") ? r["decoded"].get<std::string>() : text;
    std::string decoded = tok.decode(want);
    decode_ok += decoded == want_text;
    if ((!ids_same || decoded != want_text) && ++reported <= 5)
      ADD_FAILURE() << name << " string " << r["i"] << " " << show_text(text) << ": got "
                    << show_ids(got.value()) << " " << show_text(decoded) << ", want "
                    << show_ids(want) << " " << show_text(want_text);
  }
  std::printf("[ exact    ] %-11s sentencepiece ids %d/%d, decode %d/%d\n", name.c_str(), ids_ok,
              strings, decode_ok, strings);
  EXPECT_EQ(ids_ok, strings);
  EXPECT_EQ(decode_ok, strings);
}

INSTANTIATE_TEST_SUITE_P(All, SentencePieceExactness, ::testing::Values("llama2", "mistral"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ls
