// tokenizer.json "normalizer": a flat list of steps (Sequence is flattened) applied to each text
// segment between added tokens, before pre-tokenization.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "text/pcre_regex.h"
#include "text/tokenizer_json.h"
#include "text/unicode_props.h"

namespace ls::tok {

class Normalizer {
 public:
  // Supports Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend and Replace; other types
  // are refused by name.
  static Result<std::unique_ptr<Normalizer>> from_json(const Json& j);

  // Normalizes valid UTF-8 in place.
  Status normalize(std::string* s) const;

 private:
  enum class Kind { kForm, kLowercase, kStrip, kPrepend, kReplace };
  struct Step {
    Kind kind = Kind::kForm;
    NormalForm form = NormalForm::kNfc;
    bool left = false, right = false;          // Strip
    std::string text;                          // Prepend text, Replace content
    std::shared_ptr<const PcreRegex> pattern;  // Replace
  };
  static Status add_steps(const Json& j, std::vector<Step>* steps, int depth);
  std::vector<Step> steps_;
};

// Strips leading/trailing Unicode White_Space, as NormalizedString::lstrip/rstrip.
std::string strip_white_space(const std::string& s, bool left, bool right);
// Replaces every match of `re` in `s` by `content` (no $n group expansion).
Result<std::string> replace_all(const PcreRegex& re, const std::string& s,
                                const std::string& content);

}  // namespace ls::tok
