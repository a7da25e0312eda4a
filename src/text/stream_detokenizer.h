// StreamDetokenizer: turns generated ids into text as they arrive, emitting only complete UTF-8,
// so that the concatenation of every push() and finish() equals Tokenizer::decode(all ids).
//
// Each step decodes a small window: context tokens whose text was already emitted, then the new
// ones, and emits the difference. Text is held back while it ends in U+FFFD (a character still
// missing bytes) and while the last token is a byte-fallback token (a later byte token can still
// turn the whole run into U+FFFDs, as HF's ByteFallback does; see kMaxHeldByteTokens). The window
// never starts on a token whose text the decoder could drop or strip differently (a skipped
// special, a byte token, an empty token), so SentencePiece's leading-space rule applies only where
// decode applies it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace ls {

class StreamDetokenizer {
 public:
  // Longest window decoded per step. A stream that stays undecidable longer (thousands of
  // invalid bytes in a row) emits anyway; only such streams can differ from decode().
  static constexpr size_t kMaxWindowTokens = 128;
  // Byte-fallback runs up to this many tokens are held until they end, so that an invalid byte
  // anywhere in the run turns all of it into U+FFFD exactly as decode() does. Longer runs stream
  // as soon as their bytes form whole characters; only an invalid byte after that point makes
  // the stream differ from decode().
  static constexpr size_t kMaxHeldByteTokens = 64;

  explicit StreamDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = true);

  // Feeds one id; returns the text that became final (often "", never a partial character).
  std::string push(int32_t id);
  // Ends the stream and returns everything still held back.
  std::string finish();

 private:
  bool safe_window_start(int32_t id, bool allow_byte) const;
  std::string decode_range(size_t begin, size_t end) const;
  // The part of the window's `text` after what was already emitted.
  std::string new_text(const std::string& text) const;

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // ids_[0] is the first token of the decode window
  size_t read_ = 0;           // ids_[0, read_) were emitted; ids_[read_, size) are pending
  std::string prefix_text_;   // decode(ids_[0, read_))
  size_t run_tokens_ = 0;     // byte-fallback tokens at the end, as the decoder sees them
};

}  // namespace ls
