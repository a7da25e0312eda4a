// tokenizer.json "added_tokens": found in the text before the model runs, exactly as HF's
// AddedVocabulary does: leftmost-longest matching, non-normalized tokens on the raw text,
// normalized ones on each normalized segment, then single_word / lstrip / rstrip.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/status.h"
#include "text/bpe_model.h"
#include "text/normalizer.h"

namespace ls::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A segment of a string: [begin, end) and the added token it is, or -1 for plain text.
struct Segment {
  size_t begin = 0, end = 0;
  int32_t token_id = -1;
};

class AddedVocabulary {
 public:
  // `tokens` is tokenizer.json's "added_tokens" array; `normalizer` (may be null) gives the
  // normalized forms that normalized tokens are matched (and decoded) by.
  static Result<std::unique_ptr<AddedVocabulary>> from_json(const Json& tokens,
                                                            const Normalizer* normalizer);
  ~AddedVocabulary();

  // Splits `text` into plain and token segments covering it, using the non-normalized tokens
  // (`normalized_set` false) or the normalized ones.
  void split(std::string_view text, bool normalized_set, std::vector<Segment>* out) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  // The text decoding starts from: the normalized form for normalized tokens whose normalized
  // form differs (HF 0.22+), else the content. nullptr for ids that are not added tokens.
  const std::string* decode_text(int32_t id) const;
  // The token's content, or nullptr for ids that are not added tokens.
  const std::string* content(int32_t id) const;
  // HF decides "special" by token text: a special added token's content.
  bool is_special_text(std::string_view text) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  class Trie;
  AddedVocabulary();
  void find(std::string_view text, const Trie& trie, std::vector<Segment>* out) const;
  const AddedToken* by_id(int32_t id) const;

  std::vector<AddedToken> tokens_;
  std::vector<std::string> decode_text_;  // parallel to tokens_
  StringMap<int32_t> content_to_id_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> special_contents_;
  std::vector<int32_t> index_by_id_;  // id -> index in tokens_, -1 if none
  std::unique_ptr<Trie> raw_trie_;
  std::unique_ptr<Trie> normalized_trie_;
};

}  // namespace ls::tok
