// Incremental decoding by window difference (as vLLM and HF's DecodeStream do), with the hold and
// window-start rules that keep the concatenated output equal to the full decode.
#include "text/stream_detokenizer.h"

#include "text/utf8.h"

namespace ls {

StreamDetokenizer::StreamDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDetokenizer::decode_range(size_t begin, size_t end) const {
  return tokenizer_.decode(std::vector<int32_t>(ids_.begin() + begin, ids_.begin() + end),
                           skip_special_);
}

bool StreamDetokenizer::safe_window_start(int32_t id, bool allow_byte) const {
  if (skip_special_ && tokenizer_.is_special(id)) return false;
  if (tokenizer_.is_byte_token(id)) return allow_byte;
  return !tokenizer_.token_text(id).empty();
}

std::string StreamDetokenizer::new_text(const std::string& text) const {
  if (text.size() <= prefix_text_.size()) return std::string();
  std::string out = text.substr(prefix_text_.size());
  // Only a stream past the limits above (a long run made invalid after it streamed) gets here
  // with a changed prefix; the chunk must still be valid UTF-8.
  if (text.compare(0, prefix_text_.size(), prefix_text_) != 0) out = tok::sanitize_utf8(out);
  return out;
}

std::string StreamDetokenizer::push(int32_t id) {
  ids_.push_back(id);
  // A skipped special, or an id with no token, vanishes before the decoder sees the tokens, so it
  // does not end a byte run.
  bool vanishes = (skip_special_ && tokenizer_.is_special(id)) || tokenizer_.token_text(id).empty();
  if (!vanishes) run_tokens_ = tokenizer_.is_byte_token(id) ? run_tokens_ + 1 : 0;
  // Past kMaxHeldByteTokens a run streams as soon as it is valid UTF-8 (window starts may then
  // fall on byte tokens); shorter runs wait for their end, which costs no decoding.
  bool eager_run = run_tokens_ > kMaxHeldByteTokens;
  if (run_tokens_ > 0 && !eager_run) return std::string();
  std::string text = decode_range(0, ids_.size());
  bool undecided = text.size() <= prefix_text_.size() || tok::ends_with_replacement(text);
  if (undecided && ids_.size() <= kMaxWindowTokens) return std::string();
  std::string out = new_text(text);
  // The tokens just emitted become the context of the next window, when the first of them is a
  // safe start; otherwise the window keeps its older start.
  size_t start = read_ < ids_.size() && safe_window_start(ids_[read_], eager_run) ? read_ : 0;
  if (ids_.size() - start > kMaxWindowTokens) start = read_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(start));
  read_ = ids_.size();
  prefix_text_ = start == 0 ? std::move(text) : decode_range(0, ids_.size());
  return out;
}

std::string StreamDetokenizer::finish() {
  std::string out = new_text(decode_range(0, ids_.size()));
  ids_.clear();
  read_ = 0;
  run_tokens_ = 0;
  prefix_text_.clear();
  return out;
}

}  // namespace ls
