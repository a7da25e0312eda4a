// Tokenizer components on small hand-made inputs, using the examples of HF's own unit tests
// (split behaviors, added-token options, ByteFallback/Strip/Metaspace decoders) plus BPE merge
// order, byte fallback, unk fusing and the invalid-UTF-8 replacement.
#include <gtest/gtest.h>

#include <thread>

#include "text/added_vocabulary.h"
#include "text/hf_tokenizer.h"
#include "text/pre_tokenizer.h"
#include "text/token_decoder.h"
#include "text/utf8.h"
#include "tokenizer_fixtures.h"

namespace ls {
namespace {

using tok::Json;

std::unique_ptr<Tokenizer> make(const Json& j) {
  auto t = Tokenizer::from_json_text(j.dump());
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<int32_t> ids(const Tokenizer& t, const std::string& text, bool special = true) {
  auto r = t.encode(text, special);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : std::vector<int32_t>{};
}

Json bpe(Json vocab, Json merges, Json extra = Json::object()) {
  Json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
  for (auto& [k, v] : extra.items()) model[k] = v;
  return {{"model", model}};
}

TEST(BpeModel, LowestRankMergesFirstAndLeftmostOnTies) {
  auto t = make(
      bpe({{"a", 0}, {"b", 1}, {"c", 2}, {"aa", 3}, {"bc", 4}, {"ab", 5}}, {"b c", "a a", "a b"}));
  ASSERT_TRUE(t);
  EXPECT_EQ(ids(*t, "aaa"), (std::vector<int32_t>{3, 0}));  // leftmost pair merges first
  EXPECT_EQ(ids(*t, "abc"), (std::vector<int32_t>{0, 4}));  // rank 0 "b c" beats "a b"
  EXPECT_EQ(ids(*t, "abab"), (std::vector<int32_t>{5, 5}));
}

TEST(BpeModel, PairMergesAndStringMergesAreTheSame) {
  auto a = make(bpe({{"a", 0}, {"b", 1}, {"ab", 2}}, {"a b"}));
  auto b = make(bpe({{"a", 0}, {"b", 1}, {"ab", 2}}, Json::array({Json::array({"a", "b"})})));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(ids(*a, "abba"), ids(*b, "abba"));
  EXPECT_EQ(ids(*a, "abba"), (std::vector<int32_t>{2, 1, 0}));
}

TEST(BpeModel, ByteFallbackThenUnkFusing) {
  Json vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
  auto fb = make(bpe(vocab, Json::array(), {{"byte_fallback", true}, {"unk_token", "<unk>"}}));
  ASSERT_TRUE(fb);
  // \u00e9 = C3 A9 has byte tokens; \u00e8 = C3 A8 lacks A8, so it is unknown.
  EXPECT_EQ(ids(*fb,
                "a\xC3\xA9"
                "a"),
            (std::vector<int32_t>{1, 2, 3, 1}));
  EXPECT_EQ(ids(*fb,
                "\xC3\xA8\xC3\xA8"
                "a"),
            (std::vector<int32_t>{0, 0, 1}));
  auto fused = make(bpe(vocab, Json::array(), {{"fuse_unk", true}, {"unk_token", "<unk>"}}));
  ASSERT_TRUE(fused);
  EXPECT_EQ(ids(*fused,
                "\xC3\xA8\xC3\xA8"
                "a\xC3\xA8"),
            (std::vector<int32_t>{0, 1, 0}));
  auto none = make(bpe(vocab, Json::array()));  // no unk token: HF drops the character
  ASSERT_TRUE(none);
  EXPECT_EQ(ids(*none,
                "x"
                "a"
                "x"),
            (std::vector<int32_t>{1}));
}

TEST(BpeModel, IgnoreMergesTakesWholeWordsFromTheVocab) {
  Json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"abb", 3}};
  auto plain = make(bpe(vocab, {"a b"}));
  auto ignore = make(bpe(vocab, {"a b"}, {{"ignore_merges", true}}));
  ASSERT_TRUE(plain && ignore);
  EXPECT_EQ(ids(*plain, "abb"), (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(ids(*ignore, "abb"), (std::vector<int32_t>{3}));
}

TEST(BpeModel, SubwordPrefixAndWordSuffix) {
  Json vocab = {{"a", 0}, {"##b", 1}, {"ab", 2}, {"c</w>", 3}, {"##c</w>", 4}, {"abc</w>", 5}};
  auto t = make(bpe(vocab, {"a ##b", "ab ##c</w>"},
                    {{"continuing_subword_prefix", "##"}, {"end_of_word_suffix", "</w>"}}));
  ASSERT_TRUE(t);
  EXPECT_EQ(ids(*t, "abc"), (std::vector<int32_t>{5}));
  EXPECT_EQ(ids(*t, "c"), (std::vector<int32_t>{3}));
}

std::vector<std::string> split(const std::string& text, tok::SplitBehavior b) {
  std::vector<tok::Span> spans;
  size_t prev = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '-') continue;
    if (prev < i) spans.push_back({prev, i, false});
    spans.push_back({i, i + 1, true});
    prev = i + 1;
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), false});
  std::vector<tok::Piece> out;
  tok::split_piece({text, true}, spans, b, &out);
  std::vector<std::string> words;
  for (const auto& p : out) words.push_back(p.text);
  return words;
}

TEST(PreTokenizer, SplitBehaviorsAsHuggingFaceDocumentsThem) {
  using B = tok::SplitBehavior;
  using V = std::vector<std::string>;
  const std::string s = "The-final--countdown";
  EXPECT_EQ(split(s, B::kRemoved), (V{"The", "final", "countdown"}));
  EXPECT_EQ(split(s, B::kIsolated), (V{"The", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(s, B::kMergedWithPrevious), (V{"The-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(s, B::kMergedWithNext), (V{"The", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(s, B::kContiguous), (V{"The", "-", "final", "--", "countdown"}));
}

std::vector<std::string> pre_tokenize(const Json& j, const std::string& text, bool at_start) {
  auto p = tok::PreTokenizer::from_json(j);
  EXPECT_TRUE(p.ok()) << p.status().message();
  std::vector<tok::Piece> pieces{{text, at_start}};
  EXPECT_TRUE(p.value()->run(&pieces).ok());
  std::vector<std::string> out;
  for (const auto& piece : pieces) out.push_back(piece.text);
  return out;
}

TEST(PreTokenizer, MetaspacePrependSchemes) {
  using V = std::vector<std::string>;
  Json first = {{"type", "Metaspace"},
                {"replacement", "\xE2\x96\x81"},
                {"prepend_scheme", "first"},
                {"split", false}};
  EXPECT_EQ(pre_tokenize(first, "Hey my", true), (V{"\xE2\x96\x81Hey\xE2\x96\x81my"}));
  EXPECT_EQ(pre_tokenize(first, "how are", false), (V{"how\xE2\x96\x81"
                                                      "are"}));
  Json always = {{"type", "Metaspace"},
                 {"replacement", "\xE2\x96\x81"},
                 {"prepend_scheme", "always"},
                 {"split", true}};
  EXPECT_EQ(pre_tokenize(always, "Hey   friend!", false),
            (V{"\xE2\x96\x81Hey", "\xE2\x96\x81", "\xE2\x96\x81",
               "\xE2\x96\x81"
               "friend!"}));
}

TEST(PreTokenizer, WhitespaceDigitsPunctuationAndByteLevel) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "Hey friend!  How are you?!?", true),
            (V{"Hey", "friend", "!", "How", "are", "you", "?!?"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}}, "Hey friend!\u3000x", true),
            (V{"Hey", "friend!", "x"}));
  EXPECT_EQ(
      pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "Hey 123 friend!", true),
      (V{"Hey ", "1", "2", "3", " friend!"}));
  EXPECT_EQ(
      pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!", true),
      (V{"Hey ", "123", " friend!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Punctuation"}}, "Hey friend!     How are you?!?", true),
            (V{"Hey friend", "!", "     How are you", "?", "!", "?"}));
  EXPECT_EQ(
      pre_tokenize({{"type", "ByteLevel"}, {"add_prefix_space", false}}, "Hello my friend,", true),
      (V{"Hello", "\xC4\xA0my",
         "\xC4\xA0"
         "friend",
         ","}));
}

TEST(AddedVocabulary, OptionsAsHuggingFaceTestsThem) {
  // HF's options_use_cases: Lowercase normalizer, "my" (lstrip+rstrip), "name", "ony"
  // (single_word), specials [CLS] and [SEP].
  Json j = bpe(Json::object(), Json::array());
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = Json::array({
      {{"id", 0}, {"content", "my"}, {"lstrip", true}, {"rstrip", true}, {"normalized", true}},
      {{"id", 1}, {"content", "name"}, {"normalized", true}},
      {{"id", 2}, {"content", "ony"}, {"single_word", true}, {"normalized", true}},
      {{"id", 3}, {"content", "[CLS]"}, {"special", true}, {"normalized", false}},
      {{"id", 4}, {"content", "[SEP]"}, {"special", true}, {"normalized", false}},
  });
  auto t = make(j);
  ASSERT_TRUE(t);
  // The model has no vocabulary, so only the added tokens produce ids.
  EXPECT_EQ(ids(*t, "[CLS] My name is Anthony [SEP]"), (std::vector<int32_t>{3, 0, 1, 4}));
  EXPECT_TRUE(t->is_special(3));
  EXPECT_FALSE(t->is_special(1));
  EXPECT_EQ(t->decode({3, 0, 1, 4}, true), "my name");  // no decoder: tokens joined by spaces
  EXPECT_EQ(t->decode({3, 0, 1, 4}, false), "[CLS] my name [SEP]");
}

TEST(AddedVocabulary, SingleWordAndLstripFollowUnicodeClasses) {
  auto norm = tok::Normalizer::from_json({{"type", "Lowercase"}});
  ASSERT_TRUE(norm.ok());
  Json tokens = Json::array(
      {{{"id", 0}, {"content", "<mask>"}, {"single_word", true}, {"normalized", true}}});
  auto v = tok::AddedVocabulary::from_json(tokens, norm.value().get());
  ASSERT_TRUE(v.ok());
  std::vector<tok::Segment> segs;
  // Punctuation and '-' are not word characters; a combining mark is.
  std::string text = "<mask>, <mask>- \xE2\x97\x8C\xCC\xB0<mask>";
  v.value()->split(text, true, &segs);
  std::vector<int32_t> found;
  for (const auto& s : segs) found.push_back(s.token_id);
  EXPECT_EQ(found, (std::vector<int32_t>{0, -1, 0, -1}));

  Json strip = Json::array({{{"id", 0},
                             {"content", "<mask>"},
                             {"lstrip", true},
                             {"rstrip", true},
                             {"single_word", true},
                             {"normalized", false}}});
  auto w = tok::AddedVocabulary::from_json(strip, nullptr);
  ASSERT_TRUE(w.ok());
  segs.clear();
  text = "Hi <mask> there\t<mask>\t<mask>\xE2\x80\x80";
  w.value()->split(text, false, &segs);
  std::vector<std::string> parts;
  for (const auto& s : segs) parts.push_back(text.substr(s.begin, s.end - s.begin));
  EXPECT_EQ(parts, (std::vector<std::string>{"Hi", " <mask> ", "there", "\t<mask>\t",
                                             "<mask>\xE2\x80\x80"}));
}

std::string decode_with(const Json& decoder, std::vector<std::string> tokens) {
  auto d = tok::TokenDecoder::from_json(decoder);
  EXPECT_TRUE(d.ok()) << d.status().message();
  return d.ok() ? d.value()->decode(std::move(tokens)) : "";
}

TEST(TokenDecoder, ByteFallbackStripMetaspaceAndBpe) {
  Json fb = {{"type", "ByteFallback"}};
  EXPECT_EQ(decode_with(fb, {"<0x61>"}), "a");
  EXPECT_EQ(decode_with(fb, {"<0xE5>"}), "\xEF\xBF\xBD");
  EXPECT_EQ(decode_with(fb, {"<0xE5>", "<0x8f>"}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(decode_with(fb, {"<0xE5>", "<0x8f>", "<0xab>", "a"}),
            "\xE5\x8F\xAB"
            "a");
  EXPECT_EQ(decode_with(fb, {"<0xE5>", "<0x8f>", "a"}),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(decode_with({{"type", "Strip"}, {"content", "H"}, {"start", 1}, {"stop", 0}},
                        {"Hey", " friend!", "HHH"}),
            "ey friend!HH");
  EXPECT_EQ(decode_with({{"type", "Strip"}, {"content", "y"}, {"start", 0}, {"stop", 1}},
                        {"Hey", " friend!"}),
            "He friend!");
  Json ms = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}};
  EXPECT_EQ(decode_with(ms, {"\xE2\x96\x81Hey",
                             "\xE2\x96\x81"
                             "friend!"}),
            "Hey friend!");
  ms["prepend_scheme"] = "never";
  EXPECT_EQ(decode_with(ms, {"\xE2\x96\x81Hey",
                             "\xE2\x96\x81"
                             "friend!"}),
            " Hey friend!");
  EXPECT_EQ(decode_with({{"type", "BPEDecoder"}, {"suffix", "</w>"}}, {"My</w>", "na", "me</w>"}),
            "My name");
  EXPECT_EQ(decode_with({{"type", "ByteLevel"}}, {"Hello", "\xC4\xA0my",
                                                  "\xC4\xA0"
                                                  "friend"}),
            "Hello my friend");
}

TEST(PostProcessor, TemplatesBertRobertaAndSequences) {
  Json j = bpe({{"a", 0}, {"<s>", 1}, {"</s>", 2}}, Json::array());
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", false}},
        {{"type", "TemplateProcessing"},
         {"single", "<s> $A </s>"},
         {"special_tokens",
          {{"<s>", {{"id", "<s>"}, {"ids", {1}}}}, {"</s>", {{"id", "</s>"}, {"ids", {2}}}}}}},
        {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 1}}}}}};
  auto t = make(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(ids(*t, "aa"), (std::vector<int32_t>{1, 1, 0, 0, 2, 2}));
  EXPECT_EQ(ids(*t, "aa", false), (std::vector<int32_t>{0, 0}));
}

TEST(Utf8, ReplacementMatchesPython) {
  auto cases = test::read_jsonl(test::tokenizer_fixture_dir() + "/invalid_utf8.jsonl");
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    std::string hex = c["hex"], raw;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    EXPECT_FALSE(tok::is_valid_utf8(raw)) << hex;
    EXPECT_EQ(tok::sanitize_utf8(raw), c["replaced"].get<std::string>()) << hex;
    EXPECT_TRUE(tok::is_valid_utf8(c["replaced"].get<std::string>()));
  }
  for (const std::string& ok :
       std::vector<std::string>{"", "abc", "\xC2\xA9", "\xF0\x9F\x98\x80", "\xEF\xBB\xBF",
                                "\xF4\x8F\xBF\xBF", std::string("\0x", 2)})
    EXPECT_TRUE(tok::is_valid_utf8(ok));
}

TEST(Utf8, EncodeReplacesInvalidBytesBeforeTokenizing) {
  const Tokenizer* t = test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/bytelevel");
  ASSERT_NE(t, nullptr);
  for (const std::string raw : {"abc\x80"
                                "def",
                                "\xff", "Hello \xF0\x9F\x98 world", "<s>\xff</s>"}) {
    EXPECT_EQ(ids(*t, raw), ids(*t, tok::sanitize_utf8(raw)));
    EXPECT_TRUE(tok::is_valid_utf8(t->decode(ids(*t, raw))));
  }
}

TEST(Normalizer, LowercaseNfcStripAndPrepend) {
  auto n = tok::Normalizer::from_json(
      {{"type", "Sequence"},
       {"normalizers",
        {{{"type", "NFC"}},
         {{"type", "Lowercase"}},
         {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
         {{"type", "Prepend"}, {"prepend", "_"}}}}});
  ASSERT_TRUE(n.ok()) << n.status().message();
  std::string s =
      "\xE3\x80\x80 Cafe\xCC\x81 \xC4\xB0 \t";  // ideographic space, e + combining acute
  ASSERT_TRUE(n.value()->normalize(&s).ok());
  EXPECT_EQ(s, "_caf\xC3\xA9 i\xCC\x87");
  std::string empty = "   ";
  ASSERT_TRUE(n.value()->normalize(&empty).ok());
  EXPECT_EQ(empty, "");  // Prepend leaves empty text alone
}

TEST(Tokenizer, BosAndEosComeFromTheConfigFiles) {
  std::string shared = test::shared_dir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent";
  const Tokenizer* llama3 = test::cached_tokenizer(shared + "/tokenizers/llama3");
  const Tokenizer* stories = test::cached_tokenizer(shared + "/models/stories260k");
  ASSERT_TRUE(llama3 && stories);
  EXPECT_EQ(llama3->bos_id(), 128000);
  EXPECT_EQ(llama3->eos_ids(), (std::vector<int32_t>{128009}));  // <|eot_id|>
  EXPECT_EQ(stories->bos_id(), 1);
  EXPECT_EQ(stories->eos_ids(), (std::vector<int32_t>{2}));
  EXPECT_EQ(stories->vocab_size(), 512);
  EXPECT_TRUE(stories->is_byte_token(stories->token_to_id("<0x0A>").value_or(-1)));
  EXPECT_FALSE(llama3->is_byte_token(128000));
  EXPECT_EQ(llama3->token_text(128000), "<|begin_of_text|>");
}

TEST(Tokenizer, ConcurrentEncodesMatchSequentialOnes) {
  // One instance serves every request thread: the word cache and regex scratch are shared or
  // per thread, never racing on results.
  const Tokenizer* t = test::cached_tokenizer(test::tokenizer_fixture_dir() + "/trained/bytelevel");
  ASSERT_NE(t, nullptr);
  const auto& texts = test::corpus();
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(ids(*t, s));
  auto fresh = Tokenizer::load_dir(test::tokenizer_fixture_dir() + "/trained/bytelevel");
  ASSERT_TRUE(fresh.ok());  // a cold word cache, filled by the threads at once
  const Tokenizer& u = *fresh.value();
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (size_t i = k; i < texts.size(); i += 2) {
        auto r = u.encode(texts[i]);
        if (!r.ok() || r.value() != want[i]) ++mismatches[k];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace ls
