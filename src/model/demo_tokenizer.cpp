// Demo tokenizer: our own few-line BPE trainer (greedy most-frequent pair, ties to the
// lexicographically smallest) over a built-in text; it only has to give the demo a valid,
// deterministic tokenizer.json that the text layer (and HF tokenizers) load like any other.
#include "model/demo_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "base/file_util.h"

namespace ls {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kText =
    "Once upon a time there was a little model that served many adapters. Every adapter was a "
    "small change to the same base, and the server kept them in pages beside the cache of keys "
    "and values. The pirate said: arr, the sea is wide and the wind is strong! The poet wrote "
    "of the moon, the stars and the quiet night. The coder wrote functions, loops and tests; "
    "return the value, then print the result. Hello, world. How are you today? I am fine, "
    "thank you. What is the weather like in the city? It is sunny and warm, with a light "
    "breeze from the west. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. The quick brown fox "
    "jumps over the lazy dog. She sells sea shells by the sea shore. To be or not to be, that "
    "is the question. All that glitters is not gold. A journey of a thousand miles begins with "
    "a single step. Please answer the question in one short sentence.";

// GPT-2's reversible byte -> printable character map, as UTF-8 strings.
std::vector<std::string> byte_chars() {
  std::vector<int> bs, cs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  std::vector<std::string> out(256);
  for (size_t i = 0; i < bs.size(); ++i) {
    const int c = cs[i];
    std::string u;
    if (c < 0x80) {
      u.push_back(static_cast<char>(c));
    } else {
      u.push_back(static_cast<char>(0xC0 | (c >> 6)));
      u.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
    out[static_cast<size_t>(bs[i])] = u;
  }
  return out;
}

}  // namespace

Status write_demo_tokenizer(const std::string& dir, int32_t vocab_size) {
  if (vocab_size < 300) return invalid_argument("demo tokenizer: vocab_size must be >= 300");
  const std::vector<std::string> bc = byte_chars();
  Json vocab = Json::object();
  const std::vector<std::string> specials = {"<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"};
  int32_t next = 0;
  for (const auto& s : specials) vocab[s] = next++;
  for (int b = 0; b < 256; ++b) vocab[bc[static_cast<size_t>(b)]] = next++;
  // Words as GPT-2 splits them roughly: a leading space joins the word after it.
  std::vector<std::vector<std::string>> words;
  {
    std::string text = kText, word;
    auto flush = [&] {
      if (word.empty()) return;
      std::vector<std::string> syms;
      for (unsigned char ch : word) syms.push_back(bc[ch]);
      words.push_back(syms);
      word.clear();
    };
    for (char ch : text) {
      const bool alnum = std::isalnum(static_cast<unsigned char>(ch)) != 0;
      if (ch == ' ') {
        flush();
        word = " ";
      } else if (alnum) {
        if (!word.empty() && !std::isalnum(static_cast<unsigned char>(word.back())) && word != " ")
          flush();
        word.push_back(ch);
      } else {
        flush();
        word.push_back(ch);
        flush();
      }
    }
    flush();
  }
  Json merges = Json::array();
  while (next < vocab_size) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& w : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) ++counts[{w[i], w[i + 1]}];
    std::pair<std::string, std::string> best;
    int best_n = 0;
    for (const auto& [pair, n] : counts)
      if (n > best_n) best = pair, best_n = n;
    if (best_n < 1) break;
    const std::string merged = best.first + best.second;
    merges.push_back(best.first + " " + best.second);
    vocab[merged] = next++;
    for (auto& w : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(w[i]);
        }
      }
      w = std::move(out);
    }
  }
  // When the text yields fewer merges than the vocabulary needs, the remaining ids are named
  // tokens that no text encodes to (the model still has rows for them).
  while (next < vocab_size) {
    vocab["<|unused_" + std::to_string(next) + "|>"] = next;
    ++next;
  }
  Json added = Json::array();
  for (size_t i = 0; i < specials.size(); ++i)
    added.push_back(Json{{"id", static_cast<int>(i)},
                         {"content", specials[i]},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}});
  Json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", Json::array({Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", Json::array({Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              Json{{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}}}}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  const std::string chat_template =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt "
      "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  Json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"bos_token", "<s>"},
              {"eos_token", "</s>"},
              {"unk_token", "<unk>"},
              {"add_bos_token", true},
              {"model_max_length", 1024},
              {"chat_template", chat_template}};
  LS_RETURN_IF_ERROR(write_text_file(dir + "/tokenizer.json", tok.dump(1)));
  return write_text_file(dir + "/tokenizer_config.json", cfg.dump(2));
}

}  // namespace ls
