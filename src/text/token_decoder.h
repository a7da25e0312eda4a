// tokenizer.json "decoder": turns token strings back into text (ByteLevel, Metaspace, Replace,
// ByteFallback, Fuse, Strip, BPEDecoder, Sequence), each step mapping the token list as HF's
// decode_chain does, then joining.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "text/pcre_regex.h"
#include "text/tokenizer_json.h"

namespace ls::tok {

class TokenDecoder {
 public:
  static Result<std::unique_ptr<TokenDecoder>> from_json(const Json& j);

  // The decoded text (valid UTF-8) of `tokens`; the list is consumed.
  std::string decode(std::vector<std::string> tokens) const;
  // True when a ByteFallback step turns runs of <0xNN> tokens into text.
  bool has_byte_fallback() const;

 private:
  enum class Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip, kBpe };
  struct Step {
    Kind kind = Kind::kFuse;
    std::string text;                          // Metaspace replacement, Strip content, BPE suffix
    std::string content;                       // Replace content
    std::shared_ptr<const PcreRegex> pattern;  // Replace
    bool prepend = true;                       // Metaspace: prepend_scheme != never
    size_t start = 0, stop = 0;                // Strip
  };
  static Status add_steps(const Json& j, std::vector<Step>* steps, int depth);
  static void apply(const Step& st, std::vector<std::string>* tokens);
  std::vector<Step> steps_;
};

}  // namespace ls::tok
