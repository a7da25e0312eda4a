// The Python str operations chat templates use (strip, split, case mapping, isprintable), done on
// UTF-8 with Python's Unicode rules so results match jinja2 byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ls::jinja {

// Decodes UTF-8. A byte that is not part of valid UTF-8 becomes U+DC80 + byte (Python's
// "surrogateescape"), so any byte string survives a decode/encode round trip unchanged.
std::u32string decode_utf8(std::string_view s);
void append_utf8(std::string* out, char32_t cp);
std::string encode_utf8(std::u32string_view cps);
// Number of code points, which is what Python's len() counts.
size_t count_code_points(std::string_view s);
bool is_ascii(std::string_view s);

// Python's str.isspace() for one code point: what strip(), split() and jinja's `\s` remove.
bool is_python_space(char32_t cp);
// Python's str.isprintable(): repr() escapes every code point for which this is false.
bool is_python_printable(char32_t cp);

// str.strip/lstrip/rstrip; `chars` empty optional strips whitespace, as Python's None does.
std::string python_strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                         bool right);
// str.split(sep, maxsplit) and str.split() (whitespace runs) when sep is empty optional.
// rsplit when `from_right`. The caller refuses an empty separator (a ValueError in Python).
std::vector<std::string> python_split(std::string_view s, const std::optional<std::string>& sep,
                                      int64_t maxsplit, bool from_right);
// str.splitlines(): \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029 end lines.
std::vector<std::string> python_splitlines(std::string_view s, bool keepends);
// str.replace(old, new, count); count < 0 replaces all. An empty `old` inserts between code
// points, as Python does.
std::string python_replace(std::string_view s, std::string_view old_text, std::string_view new_text,
                           int64_t count);

// Case mapping with Python's full mappings for the common special cases (ß -> SS, ligatures,
// İ -> i̇, final sigma); other code points use the Unicode simple mappings.
std::string python_upper(std::string_view s);
std::string python_lower(std::string_view s);
std::string python_capitalize(std::string_view s);  // str.capitalize()
std::string python_title(std::string_view s);       // str.title()
bool python_is_cased(char32_t cp);
// str.isdigit/isalpha/isalnum/isspace/islower/isupper.
bool python_str_test(std::string_view s, std::string_view method);

}  // namespace ls::jinja
