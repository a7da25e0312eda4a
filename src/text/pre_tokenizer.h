// tokenizer.json "pre_tokenizer": cuts each normalized segment into the words the model
// tokenizes one at a time (and rewrites them: ByteLevel's byte alphabet, Metaspace's U+2581).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "text/pcre_regex.h"
#include "text/tokenizer_json.h"

namespace ls::tok {

// A piece of text on its way to the model. `at_start` is true when the piece begins at offset 0
// of the original input, which Metaspace's prepend_scheme "first" asks about.
struct Piece {
  std::string text;
  bool at_start = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A run of a piece and whether it matched the splitting pattern; spans cover the whole piece.
struct Span {
  size_t begin = 0, end = 0;
  bool is_match = false;
};

// Applies HF's SplitDelimiterBehavior to `spans` of `in`, appending the non-empty results.
void split_piece(const Piece& in, const std::vector<Span>& spans, SplitBehavior behavior,
                 std::vector<Piece>* out);

// GPT-2's byte-to-character table: byte b is written as the UTF-8 of kByteChars[b].
const std::array<std::string, 256>& byte_level_chars();

class PreTokenizer {
 public:
  // Supports Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit,
  // Punctuation, CharDelimiterSplit and BertPreTokenizer.
  static Result<std::unique_ptr<PreTokenizer>> from_json(const Json& j);

  // Replaces `pieces` by their pre-tokenized words (empty words dropped).
  Status run(std::vector<Piece>* pieces) const;

 private:
  enum class Kind {
    kSplit,
    kByteLevel,
    kMetaspace,
    kDigits,
    kWhitespace,
    kWhitespaceSplit,
    kPunctuation,
    kCharDelimiter,
    kBert,
  };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind = Kind::kSplit;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;                     // Split
    std::shared_ptr<const PcreRegex> regex;  // Split; ByteLevel when use_regex
    bool add_prefix_space = false;           // ByteLevel
    bool individual_digits = false;          // Digits
    std::string replacement;                 // Metaspace (one character)
    Prepend prepend = Prepend::kAlways;      // Metaspace
    bool split = true;                       // Metaspace
    char32_t delimiter = 0;                  // CharDelimiterSplit
  };
  static Status add_steps(const Json& j, std::vector<Step>* steps, int depth);
  static Result<Step> parse_step(const std::string& type, const Json& j);
  Status apply(const Step& st, Piece&& in, std::vector<Piece>* out) const;
  std::vector<Step> steps_;
};

}  // namespace ls::tok
