// The tokenizer.json implementation of Tokenizer: added tokens -> normalizer -> pre-tokenizer ->
// BPE -> post-processor, and the decoder chain back.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "text/added_vocabulary.h"
#include "text/bpe_model.h"
#include "text/normalizer.h"
#include "text/post_processor.h"
#include "text/pre_tokenizer.h"
#include "text/token_decoder.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json_reader.h"

namespace ls {

class HfTokenizer : public Tokenizer {
 public:
  // `json` is tokenizer.json as read_tokenizer_json returns it; `config` is
  // tokenizer_config.json (or null), used for BOS/EOS names. WordPiece, Unigram and WordLevel
  // models are refused with a clear message; saved padding/truncation settings are ignored
  // (generation never pads or truncates here).
  static Result<std::unique_ptr<HfTokenizer>> create(tok::TokenizerJson json,
                                                     const tok::Json& config);

  Result<std::vector<int32_t>> encode(std::string_view text,
                                      bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int32_t>& ids,
                     bool skip_special_tokens = true) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::vector<int32_t> eos_ids() const override { return eos_ids_; }
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  bool is_special(int32_t id) const override;
  bool is_byte_token(int32_t id) const override;

  void add_eos_id(int32_t id);

 private:
  HfTokenizer() = default;
  Status load_components(tok::TokenizerJson json);
  // Encodes one normalized (or raw, when no normalizer) plain segment into `ids`.
  Status encode_plain(std::string_view segment, bool at_start, std::vector<int32_t>* ids) const;
  // The string decode starts from for `id`, or nullptr.
  const std::string* decode_token(int32_t id) const;

  std::unique_ptr<tok::Normalizer> normalizer_;       // may be null
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;  // may be null
  std::unique_ptr<tok::BpeModel> model_;
  std::unique_ptr<tok::PostProcessor> post_processor_;  // may be null
  std::unique_ptr<tok::TokenDecoder> decoder_;          // may be null
  std::unique_ptr<tok::AddedVocabulary> added_;
  int32_t vocab_size_ = 0;
  bool has_byte_fallback_decoder_ = false;
  std::optional<int32_t> bos_id_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace ls
