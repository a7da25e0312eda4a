// The Unicode character classes and transforms HF tokenizers take from Rust (char::is_whitespace,
// is_numeric, regex \w, to_lowercase) and from unicode-normalization (NFC/NFD/NFKC/NFKD), done
// with utf8proc's tables so the classes match Rust's for every assigned code point we test.
#pragma once

#include <string>
#include <string_view>

namespace ls::tok {

// Unicode White_Space: Rust's char::is_whitespace and regex \s.
bool is_white_space(char32_t cp);
// General category Nd, Nl or No: Rust's char::is_numeric.
bool is_numeric(char32_t cp);
// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, ZWNJ/ZWJ.
bool is_word_char(char32_t cp);
// HF's Punctuation pre-tokenizer test: ASCII punctuation or a P* general category.
bool is_punctuation(char32_t cp);

// Rust's str-by-char lowercase (full mappings; U+0130 becomes "i\u0307").
void append_lowercase(std::string* out, char32_t cp);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// Normalizes valid UTF-8; returns false only when utf8proc fails (out of memory).
bool normalize_unicode(std::string_view in, NormalForm form, std::string* out);

}  // namespace ls::tok
