// The BPE model of tokenizer.json: vocab, ranked merges and HF's options (byte_fallback,
// unk_token + fuse_unk, ignore_merges, continuing_subword_prefix, end_of_word_suffix).
// Words merge lowest rank first (leftmost on ties) through a heap over a linked list of symbols,
// O(n log n) per word; results of words under 256 bytes are cached.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "text/tokenizer_json.h"

namespace ls::tok {

// Hash for string-keyed maps that also accepts string_view lookups (no temporary string).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `options` is tokenizer.json's "model" object (type "BPE") without its vocab and merges,
  // which come separately (read by read_tokenizer_json); ids are in [0, 2^24).
  static Result<std::unique_ptr<BpeModel>> create(
      const Json& options, std::vector<std::pair<std::string, int64_t>> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges);
  ~BpeModel();

  // Appends the ids of `word` (valid UTF-8). Fails only when the unk token is needed but is not
  // in the vocabulary, as HF does.
  Status tokenize(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token text of `id`, or nullptr when no token has that id.
  const std::string* id_to_token(int32_t id) const;
  size_t vocab_entries() const { return vocab_.size(); }
  // One past the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }
  // The id of the "<0xNN>" token for byte b, or -1.
  int32_t byte_token_id(unsigned char b) const { return byte_ids_[b]; }

 private:
  class PairMap;
  class WordCache;
  BpeModel();
  Status load_vocab(std::vector<std::pair<std::string, int64_t>> vocab);
  Status load_merges(const std::vector<std::pair<std::string, std::string>>& merges);
  Status initial_symbols(std::string_view word, std::vector<int32_t>* ids,
                         std::vector<uint32_t>* lens) const;
  void merge(std::vector<int32_t>* ids, std::vector<uint32_t>* lens) const;
  int32_t char_id(std::string_view ch, char32_t cp) const;

  StringMap<int32_t> vocab_;
  std::vector<const std::string*> id_to_token_;  // [id_limit]: keys of vocab_, null if none
  std::unique_ptr<PairMap> merges_;
  std::unique_ptr<WordCache> cache_;
  std::vector<int32_t> small_char_ids_;  // [0x800]: id of each 1-2 byte character, -1 if none
  std::array<int32_t, 256> byte_ids_{};  // <0xNN> ids for byte_fallback
  std::optional<std::string> unk_token_;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
};

}  // namespace ls::tok
