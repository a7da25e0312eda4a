// UTF-8 decoding, encoding and the invalid-byte replacement every tokenizer entry point applies.
// Replacement follows the Unicode "maximal subpart" practice, which is what Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ls::tok {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);

// `s` with each maximal invalid subpart replaced by U+FFFD; valid input comes back unchanged.
std::string sanitize_utf8(std::string_view s);

// Length in bytes of the well-formed sequence starting at s[i], or 0 when it is invalid or cut.
size_t valid_sequence_length(std::string_view s, size_t i);

// Decodes the code point at s[*i] of VALID UTF-8 and advances *i past it.
inline char32_t next_code_point(std::string_view s, size_t* i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + *i;
  if (p[0] < 0x80) {
    *i += 1;
    return p[0];
  }
  if (p[0] < 0xE0) {
    *i += 2;
    return (char32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (p[0] < 0xF0) {
    *i += 3;
    return (char32_t(p[0] & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *i += 4;
  return (char32_t(p[0] & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
         (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// Byte length of the character whose lead byte is `lead` (valid UTF-8 assumed).
inline size_t char_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

void append_utf8(std::string* out, char32_t cp);
std::string to_utf8(char32_t cp);

// True when `s` ends with U+FFFD: the incremental decoder's sign of an unfinished character.
bool ends_with_replacement(std::string_view s);

// `s` fit for a one-line error message: control bytes as \n, \t, \r or \xNN, a backslash
// doubled, invalid UTF-8 as \xNN, and at most `max_bytes` of it kept (then "...").
std::string quote_for_message(std::string_view s, size_t max_bytes = 64);

}  // namespace ls::tok
