// Tokenizer: text <-> token ids for a model directory. tokenizer.json (HF `tokenizers`, BPE
// model) is preferred; a directory with only tokenizer.model uses SentencePiece. encode/decode
// give the same ids and text as HF `tokenizers` (encode with add_special_tokens=True, decode with
// skip_special_tokens=True by default). Thread-safe: one instance serves every request thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ls {

class Tokenizer {
 public:
  // Inputs larger than this are refused with kResourceExhausted (a prompt is far smaller).
  static constexpr size_t kMaxInputBytes = size_t(64) << 20;

  virtual ~Tokenizer() = default;

  // Loads `dir`/tokenizer.json, or `dir`/tokenizer.model when there is no tokenizer.json;
  // tokenizer_config.json and generation_config.json (optional) give BOS/EOS and, for
  // SentencePiece, add_bos_token/add_eos_token.
  static Result<std::unique_ptr<Tokenizer>> load_dir(const std::string& dir);
  // A tokenizer.json given as text (tests, fuzzing); `config_json` is tokenizer_config.json's
  // text or empty.
  static Result<std::unique_ptr<Tokenizer>> from_json_text(std::string_view json_text,
                                                           std::string_view config_json = {});

  // Token ids of `text`. Invalid UTF-8 is first replaced as Python's
  // bytes.decode("utf-8", "replace") does (each maximal invalid subpart -> U+FFFD): HF's Python
  // API cannot receive such bytes at all, so this is the string it would have been given.
  virtual Result<std::vector<int32_t>> encode(std::string_view text,
                                              bool add_special_tokens = true) const = 0;
  // Text of `ids` (valid UTF-8). Ids with no token are skipped, as HF does.
  virtual std::string decode(const std::vector<int32_t>& ids,
                             bool skip_special_tokens = true) const = 0;

  // Number of distinct ids (model vocabulary plus added tokens).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  // The EOS ids named by tokenizer_config.json and generation_config.json (may be empty).
  virtual std::vector<int32_t> eos_ids() const = 0;
  // The token's raw vocabulary string ("" for an unknown id).
  virtual std::string token_text(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // True for tokens decode() drops when skip_special_tokens is true.
  virtual bool is_special(int32_t id) const = 0;
  // True for byte-fallback tokens (<0xNN>): their bytes may be part of a longer character.
  virtual bool is_byte_token(int32_t id) const = 0;

 protected:
  // The text an encoder works on: refuses inputs over kMaxInputBytes, and replaces invalid
  // UTF-8 (into `storage`) as described at encode().
  static Result<std::string_view> prepare_input(std::string_view text, std::string* storage);
};

}  // namespace ls
