// Bad input never crashes: malformed or unsupported tokenizer.json gives one clear error line,
// huge or pathological text gives ids or a clear error, odd ids decode to valid UTF-8.
#include <gtest/gtest.h>

#include "support/test_support.h"
#include "text/utf8.h"
#include "tokenizer_fixtures.h"

namespace ls {
namespace {

using Json = nlohmann::json;

using test::FailsWith;

Status load(const std::string& text) {
  auto t = Tokenizer::from_json_text(text);
  return t.ok() ? ok_status() : t.status();
}

Json minimal() {
  return {{"model",
           {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

Status load_with(const char* key, const Json& value) {
  Json j = minimal();
  j[key] = value;
  return load(j.dump());
}

TEST(TokenizerBadInput, MalformedJson) {
  EXPECT_TRUE(FailsWith(load(""), {"malformed JSON"}));
  EXPECT_TRUE(FailsWith(load("{\"model\": "), {"malformed JSON"}));
  EXPECT_TRUE(FailsWith(load("[1, 2]"), {"must be a JSON object"}));
  EXPECT_TRUE(FailsWith(load("{}"), {"no 'model'"}));
  EXPECT_TRUE(
      FailsWith(load(std::string(100000, '[') + std::string(100000, ']')), {"JSON object"}));
  EXPECT_TRUE(load(minimal().dump()).ok());
}

TEST(TokenizerBadInput, RefusedModelsNameThemselves) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    Json j = {{"model", {{"type", type}, {"vocab", Json::object()}}}};
    Status st = load(j.dump());
    EXPECT_TRUE(FailsWith(st, {type, "not supported", "BPE"}));
    EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
  }
}

TEST(TokenizerBadInput, UnknownComponentTypes) {
  EXPECT_TRUE(FailsWith(load_with("normalizer", {{"type", "Precompiled"}}),
                        {"normalizer", "Precompiled", "not supported"}));
  EXPECT_TRUE(FailsWith(load_with("pre_tokenizer", {{"type", "UnicodeScripts"}}),
                        {"pre_tokenizer", "UnicodeScripts", "not supported"}));
  EXPECT_TRUE(FailsWith(load_with("decoder", {{"type", "WordPiece"}}),
                        {"decoder", "WordPiece", "not supported"}));
  EXPECT_TRUE(FailsWith(load_with("post_processor", {{"type", "Whatever"}}),
                        {"post_processor", "Whatever", "not supported"}));
  EXPECT_TRUE(FailsWith(load_with("normalizer", {{"kind", "NFC"}}), {"normalizer", "'type'"}));
  EXPECT_TRUE(FailsWith(load_with("decoder", "ByteLevel"), {"decoder", "JSON object"}));
}

TEST(TokenizerBadInput, BadFieldsAndRegexes) {
  EXPECT_TRUE(FailsWith(load_with("pre_tokenizer", {{"type", "Split"},
                                                    {"pattern", {{"Regex", "(unclosed"}}},
                                                    {"behavior", "Isolated"}}),
                        {"bad regex", "(unclosed"}));
  EXPECT_TRUE(
      FailsWith(load_with("pre_tokenizer", {{"type", "Split"}, {"pattern", "x"}}), {"pattern"}));
  EXPECT_TRUE(FailsWith(
      load_with("pre_tokenizer",
                {{"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}}),
      {"behavior", "Sideways"}));
  EXPECT_TRUE(FailsWith(load_with("pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "ab"}}),
                        {"replacement", "one character"}));
  EXPECT_TRUE(FailsWith(load_with("added_tokens", {{"id", 1}}), {"added_tokens", "array"}));
  EXPECT_TRUE(FailsWith(load_with("added_tokens", Json::array({{{"content", "x"}}})), {"id"}));
  EXPECT_TRUE(FailsWith(load_with("decoder", {{"type", "Strip"}, {"content", " "}, {"start", -1}}),
                        {"start"}));
  Json nested = {{"type", "NFC"}};
  for (int i = 0; i < 40; ++i) nested = {{"type", "Sequence"}, {"normalizers", {nested}}};
  EXPECT_TRUE(FailsWith(load_with("normalizer", nested), {"nested too deeply"}));
}

TEST(TokenizerBadInput, BadVocabAndMerges) {
  Json j = minimal();
  j["model"]["merges"] = {"a c"};
  EXPECT_TRUE(FailsWith(load(j.dump()), {"merge 1", "not in vocab"}));
  j["model"]["merges"] = {"a b c"};
  EXPECT_TRUE(FailsWith(load(j.dump()), {"merge 1"}));
  j["model"]["merges"] = {"b a"};
  EXPECT_TRUE(FailsWith(load(j.dump()), {"'ba'", "not in vocab"}));
  j["model"]["merges"] = Json::array({Json::array({"a", 1})});
  EXPECT_TRUE(FailsWith(load(j.dump()), {"merge 1"}));
  j = minimal();
  j["model"]["vocab"]["x"] = -3;
  EXPECT_TRUE(FailsWith(load(j.dump()), {"vocab['x']"}));
  j["model"]["vocab"]["x"] = "seven";
  EXPECT_TRUE(FailsWith(load(j.dump()), {"vocab['x']"}));
  j = minimal();
  j["model"]["vocab"] = Json::array();
  EXPECT_TRUE(FailsWith(load(j.dump()), {"model.vocab"}));
  j = minimal();
  j["model"]["unk_token"] = "<nope>";  // only an error once an unknown character needs it
  auto t = Tokenizer::from_json_text(j.dump());
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t.value()->encode("ab").ok());
  EXPECT_TRUE(FailsWith(t.value()->encode("z").status(), {"unk_token", "<nope>"}));
}

// Tokens quoted in an error are escaped, so the message stays one line (the tokenizer fuzzer
// found "merge N makes '<newlines>'" spanning lines).
TEST(TokenizerBadInput, TokensInErrorsAreEscapedToOneLine) {
  Json j = {{"model",
             {{"type", "BPE"},
              {"vocab", {{"\n", 0}, {"\t\x01", 1}, {"\n\n\n", 2}}},
              {"merges", Json::array({Json::array({"\t\x01", "\n"})})}}}};
  const Status st = load(j.dump());
  EXPECT_TRUE(FailsWith(st, {"merge 1", "'\\t\\x01\\n'", "not in vocab"}));
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << st.message();
  j["model"]["vocab"]["bad\nline"] = -1;
  const Status st2 = load(j.dump());
  EXPECT_TRUE(FailsWith(st2, {"vocab['bad\\nline']"}));
  EXPECT_EQ(st2.message().find('\n'), std::string::npos) << st2.message();
}

TEST(TokenizerBadInput, QuoteForMessage) {
  EXPECT_EQ(tok::quote_for_message("plain \xC3\xA9"), "plain \xC3\xA9");  // UTF-8 kept
  EXPECT_EQ(tok::quote_for_message("a\nb\tc\rd\\e"), "a\\nb\\tc\\rd\\\\e");
  EXPECT_EQ(tok::quote_for_message(std::string("\x00\x7f\xff", 3)), "\\x00\\x7f\\xff");
  EXPECT_EQ(tok::quote_for_message(std::string(100, 'x'), 8), "xxxxxxxx...");
}

TEST(TokenizerBadInput, MissingDirectoriesAndBrokenModelFiles) {
  EXPECT_TRUE(FailsWith(Tokenizer::load_dir("/nonexistent/dir").status(), {"no tokenizer.json"}));
  std::string dir = test::temp_dir("badtok");
  test::write_file(dir + "/tokenizer.model", "not a protobuf at all");
  EXPECT_TRUE(FailsWith(Tokenizer::load_dir(dir).status(), {"tokenizer.model"}));
  test::write_file(dir + "/tokenizer.json", "{\"model\": 3");
  EXPECT_TRUE(FailsWith(Tokenizer::load_dir(dir).status(), {"tokenizer.json", "malformed JSON"}));
  test::write_file(dir + "/tokenizer.json", minimal().dump());
  test::write_file(dir + "/tokenizer_config.json", "{oops");
  EXPECT_TRUE(FailsWith(Tokenizer::load_dir(dir).status(), {"tokenizer_config.json"}));
}

TEST(TokenizerBadInput, HugeAndPathologicalText) {
  const Tokenizer* bytelevel =
      test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/bytelevel");
  const Tokenizer* spbpe = test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/spbpe");
  ASSERT_TRUE(bytelevel && spbpe);
  std::string too_big(Tokenizer::kMaxInputBytes + 1, 'a');
  auto r = bytelevel->encode(too_big);
  EXPECT_TRUE(FailsWith(r.status(), {"over the tokenizer limit"}));
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  too_big.clear();
  too_big.shrink_to_fit();
  // Whitespace runs exercise the \s+(?!\S) lookahead, and with no pre-tokenizer each input is
  // one BPE word. (Sizes keep this under ASan's budget; bench/ times megabyte inputs.)
  for (const std::string& text : {std::string(128 << 10, ' '), std::string(64 << 10, '\n'),
                                  std::string(100000, 'x'), std::string(50000, '\xE4')}) {
    for (const Tokenizer* t : {bytelevel, spbpe}) {
      auto ids = t->encode(text);
      if (!ids.ok()) {
        EXPECT_EQ(ids.status().code(), StatusCode::kResourceExhausted) << ids.status().message();
        continue;
      }
      EXPECT_FALSE(ids.value().empty());
      EXPECT_TRUE(tok::is_valid_utf8(t->decode(ids.value())));
    }
  }
}

TEST(TokenizerBadInput, OddIdsDecodeToValidText) {
  const Tokenizer* t = test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/spbpe");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->decode({-1, 1 << 30, t->vocab_size() + 5}), "");
  EXPECT_EQ(t->token_text(-7), "");
  auto byte = t->token_to_id("<0xFF>");
  ASSERT_TRUE(byte.has_value());
  EXPECT_TRUE(tok::is_valid_utf8(t->decode({*byte, *byte, -4, *byte})));
}

}  // namespace
}  // namespace ls
