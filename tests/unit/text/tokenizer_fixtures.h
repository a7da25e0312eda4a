// Shared by the tokenizer tests: the corpus, the HF reference files and a per-process cache of
// loaded tokenizers (the large tokenizer.json files take seconds to parse under ASan).
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "text/tokenizer.h"

namespace ls::test {

inline std::string tokenizer_fixture_dir() {
  return fixture_dir() + "/text/tokenizers";
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::string text = read_file(path);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) out.push_back(nlohmann::json::parse(text.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

inline const std::vector<std::string>& corpus() {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t;
    for (const auto& j : read_jsonl(tokenizer_fixture_dir() + "/corpus.jsonl"))
      t.push_back(j["text"].get<std::string>());
    return t;
  }();
  return texts;
}

// Where each reference tokenizer lives: trained ones in the fixtures, real ones in ../shared.
struct TokenizerSource {
  std::string name;
  std::string dir;  // "" when ../shared is absent
  bool shared = false;
};

// gtest prints parameters with this instead of a byte dump.
inline void PrintTo(const TokenizerSource& s, std::ostream* os) {
  *os << s.name;
}

inline std::vector<TokenizerSource> tokenizer_sources() {
  std::vector<TokenizerSource> out;
  for (const char* n : {"bytelevel", "spbpe", "wordish", "metaspace"})
    out.push_back({n, tokenizer_fixture_dir() + "/trained/" + n, false});
  std::string shared = shared_dir();
  for (const char* n : {"llama3", "llama2", "mistral", "qwen2", "smollm", "gemma"})
    out.push_back({n, shared.empty() ? "" : shared + "/tokenizers/" + n, true});
  out.push_back({"stories260k", shared.empty() ? "" : shared + "/models/stories260k", true});
  return out;
}

// Loads `dir` once per process; null (with the status in *error) when loading failed.
inline const Tokenizer* cached_tokenizer(const std::string& dir, std::string* error = nullptr) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  static std::map<std::string, std::string> errors;
  auto it = cache.find(dir);
  if (it == cache.end()) {
    auto t = Tokenizer::load_dir(dir);
    if (!t.ok()) errors[dir] = t.status().message();
    it = cache.emplace(dir, t.ok() ? std::move(t).value() : nullptr).first;
  }
  if (error && errors.count(dir)) *error = errors[dir];
  return it->second.get();
}

}  // namespace ls::test
