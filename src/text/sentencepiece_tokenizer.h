// Tokenizer over a SentencePiece tokenizer.model (libsentencepiece), for model directories that
// ship no tokenizer.json. BOS/EOS are added as tokenizer_config.json's add_bos_token (default
// true) and add_eos_token (default false) say, as transformers' LlamaTokenizer does. Text that
// spells a control token ("<s>") is encoded as text: SentencePiece has no added-token matching.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ls {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // `model_path` is tokenizer.model; `config` tokenizer_config.json (or null).
  static Result<std::unique_ptr<SentencePieceTokenizer>> load(const std::string& model_path,
                                                              const tok::Json& config);
  ~SentencePieceTokenizer() override;

  Result<std::vector<int32_t>> encode(std::string_view text,
                                      bool add_special_tokens = true) const override;
  // skip_special_tokens drops control and unknown pieces; otherwise SentencePiece renders
  // control pieces as "" and the unknown piece as " \u2047 ".
  std::string decode(const std::vector<int32_t>& ids,
                     bool skip_special_tokens = true) const override;
  int32_t vocab_size() const override;
  std::optional<int32_t> bos_id() const override;
  std::vector<int32_t> eos_ids() const override;
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  bool is_special(int32_t id) const override;
  bool is_byte_token(int32_t id) const override;

  void add_eos_id(int32_t id);

 private:
  SentencePieceTokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  bool add_bos_ = true;
  bool add_eos_ = false;
  std::vector<int32_t> extra_eos_;
};

}  // namespace ls
