// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the Split pre-tokenizer and the
// Replace normalizer/decoder. HF compiles these with Oniguruma; PCRE2 reads the same syntax for
// every pattern in the tokenizers we serve (\p{L}, lookahead, (?i:...)).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace ls::tok {

class PcreRegex {
 public:
  // `literal` matches the pattern text as is (HF's {"String": ...} patterns), by plain search.
  static Result<std::shared_ptr<const PcreRegex>> compile(std::string_view pattern, bool literal);
  ~PcreRegex();
  PcreRegex(const PcreRegex&) = delete;
  PcreRegex& operator=(const PcreRegex&) = delete;

  // Appends the byte ranges [start, end) of the non-overlapping, non-empty matches in valid
  // UTF-8 `text`, left to right. Fails (never aborts) when PCRE2 gives up, e.g. on a JIT stack
  // overflow from a pathological input.
  Status find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  PcreRegex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*; null for literals
  bool jit_ = false;
  bool literal_ = false;
};

}  // namespace ls::tok
