// Splits a template into tokens exactly as jinja2's lexer does with trim_blocks and
// lstrip_blocks on, including whitespace control (-/+), comments and raw blocks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ls::jinja {

// 1-based position in the template (after jinja2's newline normalisation), for error messages.
struct SourcePos {
  int line = 1;
  int column = 1;
};

struct Token {
  enum class Kind : uint8_t {
    kData,        // template text between tags, already whitespace-controlled
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kVarBegin,    // {{
    kVarEnd,      // }}
    kName,
    kString,  // text holds the unescaped value
    kInteger,
    kFloat,
    kOperator,  // text holds the operator: + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { }
    kEof,
  };
  Kind kind = Kind::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  SourcePos pos;
};

// Tokenizes `source`. Errors (an unterminated tag, comment or string, an unexpected character,
// unbalanced brackets) name the line and column.
Result<std::vector<Token>> tokenize_template(std::string_view source);

}  // namespace ls::jinja
