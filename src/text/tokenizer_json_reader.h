// Reads tokenizer.json in one SAX pass: model.vocab and model.merges (hundreds of thousands of
// entries) go straight into flat vectors; the rest becomes a small JSON document. A DOM of the
// whole file takes about 2x the time and 5x the memory of the file for large vocabularies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "text/tokenizer_json.h"

namespace ls::tok {

struct TokenizerJson {
  Json document;            // the file without model.vocab and model.merges
  bool has_vocab = false;   // model.vocab was an object
  bool has_merges = false;  // model.merges was an array
  std::vector<std::pair<std::string, int64_t>> vocab;  // id -1: not an integer id
  std::vector<std::pair<std::string, std::string>> merges;
};

// Parses `text`; malformed JSON and malformed vocab/merge entries are errors naming the place.
Result<TokenizerJson> read_tokenizer_json(std::string_view text);

}  // namespace ls::tok
