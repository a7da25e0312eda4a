// Python str semantics over UTF-8: utf8proc supplies the Unicode categories and simple case
// mappings; Python's unconditional special casings and final sigma are added here.
#include "text/jinja_unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>

#include "text/unicode_props.h"
#include "text/utf8.h"

namespace ls::jinja {

namespace {

constexpr char32_t kSurrogateEscapeBase = 0xDC00;

int category(char32_t cp) {
  return static_cast<int>(utf8proc_category(static_cast<utf8proc_int32_t>(cp)));
}

// Unconditional full mappings from Unicode's SpecialCasing.txt that Python applies and simple
// mappings miss. Greek letters with ypogegrammeni are left to the simple mapping.
struct SpecialCase {
  char32_t cp;
  std::u32string_view upper;
  std::u32string_view title;
};
constexpr std::array<SpecialCase, 22> kSpecialCases = {{
    {0x00DF, U"SS", U"Ss"},
    {0x0149, U"\u02BCN", U"\u02BCN"},
    {0x01F0, U"J\u030C", U"J\u030C"},
    {0x0390, U"\u0399\u0308\u0301", U"\u0399\u0308\u0301"},
    {0x03B0, U"\u03A5\u0308\u0301", U"\u03A5\u0308\u0301"},
    {0x0587, U"\u0535\u0552", U"\u0535\u0582"},
    {0x1E96, U"H\u0331", U"H\u0331"},
    {0x1E97, U"T\u0308", U"T\u0308"},
    {0x1E98, U"W\u030A", U"W\u030A"},
    {0x1E99, U"Y\u030A", U"Y\u030A"},
    {0x1E9A, U"A\u02BE", U"A\u02BE"},
    {0xFB00, U"FF", U"Ff"},
    {0xFB01, U"FI", U"Fi"},
    {0xFB02, U"FL", U"Fl"},
    {0xFB03, U"FFI", U"Ffi"},
    {0xFB04, U"FFL", U"Ffl"},
    {0xFB05, U"ST", U"St"},
    {0xFB06, U"ST", U"St"},
    {0xFB13, U"\u0544\u0546", U"\u0544\u0576"},
    {0xFB14, U"\u0544\u0535", U"\u0544\u0565"},
    {0xFB15, U"\u0544\u053B", U"\u0544\u056B"},
    {0xFB16, U"\u054E\u0546", U"\u054E\u0576"},
}};

const SpecialCase* find_special(char32_t cp) {
  for (const auto& s : kSpecialCases)
    if (s.cp == cp) return &s;
  return nullptr;
}

void append_upper(std::u32string* out, char32_t cp) {
  if (cp < 0x80) {
    out->push_back(cp >= 'a' && cp <= 'z' ? cp - 32 : cp);
  } else if (cp == 0xFB17) {
    out->append(U"\u0544\u053D");
  } else if (const SpecialCase* s = find_special(cp)) {
    out->append(s->upper);
  } else {
    out->push_back(static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(cp))));
  }
}

void append_title(std::u32string* out, char32_t cp) {
  if (cp < 0x80) {
    out->push_back(cp >= 'a' && cp <= 'z' ? cp - 32 : cp);
  } else if (cp == 0xFB17) {
    out->append(U"\u0544\u056D");
  } else if (const SpecialCase* s = find_special(cp)) {
    out->append(s->title);
  } else {
    out->push_back(static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(cp))));
  }
}

// Unicode's Case_Ignorable, approximated by category plus the word-break apostrophes and dots.
bool is_case_ignorable(char32_t cp) {
  switch (cp) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0x5E:
    case 0x60:
    case 0xA8:
    case 0xAD:
    case 0xAF:
    case 0xB4:
    case 0xB7:
    case 0xB8:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
      return true;
    default:
      break;
  }
  const int c = category(cp);
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
         c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

// Python lowercases U+03A3 to final sigma when a cased letter precedes it and none follows
// (ignoring case-ignorable code points in between).
bool is_final_sigma(const std::u32string& s, size_t i) {
  size_t j = i;
  bool cased_before = false;
  while (j > 0) {
    --j;
    if (is_case_ignorable(s[j])) continue;
    cased_before = python_is_cased(s[j]);
    break;
  }
  if (!cased_before) return false;
  for (size_t k = i + 1; k < s.size(); ++k) {
    if (is_case_ignorable(s[k])) continue;
    return !python_is_cased(s[k]);
  }
  return true;
}

void append_lower(std::u32string* out, const std::u32string& s, size_t i) {
  const char32_t cp = s[i];
  if (cp < 0x80) {
    out->push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
  } else if (cp == 0x0130) {
    out->append(U"i\u0307");
  } else if (cp == 0x03A3) {
    out->push_back(is_final_sigma(s, i) ? 0x03C2 : 0x03C3);
  } else {
    out->push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
}

template <typename Pred>
bool all_of_nonempty(std::string_view s, Pred pred) {
  if (s.empty()) return false;
  for (char32_t cp : decode_utf8(s))
    if (!pred(cp)) return false;
  return true;
}

}  // namespace

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int len = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xC0) == 0x80;
      cp = (cp << 6) | (b & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kSurrogateEscapeBase + b0);
      ++i;
    }
  }
  return out;
}

void append_utf8(std::string* out, char32_t cp) {
  if (cp >= 0xDC80 && cp <= 0xDCFF) {  // an undecodable byte kept by decode_utf8
    out->push_back(static_cast<char>(cp - kSurrogateEscapeBase));
  } else {
    tok::append_utf8(out, cp);
  }
}

std::string encode_utf8(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) append_utf8(&out, cp);
  return out;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

size_t count_code_points(std::string_view s) {
  if (is_ascii(s)) return s.size();
  return decode_utf8(s).size();
}

// Python's str.isspace: Unicode White_Space plus the ASCII separators 0x1C-0x1F.
bool is_python_space(char32_t cp) {
  return tok::is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

bool is_python_printable(char32_t cp) {
  if (cp == ' ') return true;
  if (cp < 0x80) return cp > 0x20 && cp < 0x7F;
  const int c = category(cp);
  return !(c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
           c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_ZL ||
           c == UTF8PROC_CATEGORY_ZP || c == UTF8PROC_CATEGORY_ZS);
}

bool python_is_cased(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  const int c = category(cp);
  if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)
    return true;
  // Other_Uppercase / Other_Lowercase letters that are not Lu/Ll: ª º, Roman numerals, circled.
  return cp == 0xAA || cp == 0xBA || (cp >= 0x2160 && cp <= 0x217F) ||
         (cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x02B0 && cp <= 0x02B8) ||
         (cp >= 0x02C0 && cp <= 0x02C1) || (cp >= 0x02E0 && cp <= 0x02E4);
}

std::string python_strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                         bool right) {
  if (is_ascii(s) && (!chars || is_ascii(*chars))) {  // the common case, without decoding
    auto drop = [&](char c) {
      if (!chars) return is_python_space(static_cast<unsigned char>(c));
      return chars->find(c) != std::string::npos;
    };
    size_t b = 0, e = s.size();
    if (left)
      while (b < e && drop(s[b])) ++b;
    if (right)
      while (e > b && drop(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
  }
  const std::u32string cps = decode_utf8(s);
  const std::u32string set = chars ? decode_utf8(*chars) : std::u32string();
  auto drop = [&](char32_t c) {
    if (!chars) return is_python_space(c);
    return set.find(c) != std::u32string::npos;
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && drop(cps[b])) ++b;
  if (right)
    while (e > b && drop(cps[e - 1])) --e;
  return encode_utf8(std::u32string_view(cps).substr(b, e - b));
}

std::vector<std::string> python_split(std::string_view s, const std::optional<std::string>& sep,
                                      int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (sep) {  // exact separator: empty fields are kept
    if (!from_right) {
      size_t pos = 0;
      while (static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t hit = s.find(*sep, pos);
        if (hit == std::string_view::npos) break;
        parts.emplace_back(s.substr(pos, hit - pos));
        pos = hit + sep->size();
      }
      parts.emplace_back(s.substr(pos));
      return parts;
    }
    size_t end = s.size();
    int64_t done = 0;
    while (done < maxsplit && end >= sep->size()) {
      const size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
      ++done;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Whitespace runs: no empty fields; once maxsplit is reached the rest is one field, stripped
  // only on the side the split started from.
  std::u32string cps = decode_utf8(s);
  if (from_right) std::reverse(cps.begin(), cps.end());
  size_t i = 0;
  const size_t n = cps.size();
  while (true) {
    while (i < n && is_python_space(cps[i])) ++i;
    if (i == n) break;
    if (static_cast<int64_t>(parts.size()) == maxsplit) {
      std::u32string rest = cps.substr(i, n - i);
      if (from_right) std::reverse(rest.begin(), rest.end());
      parts.push_back(encode_utf8(rest));
      break;
    }
    size_t j = i;
    while (j < n && !is_python_space(cps[j])) ++j;
    std::u32string word = cps.substr(i, j - i);
    if (from_right) std::reverse(word.begin(), word.end());
    parts.push_back(encode_utf8(word));
    i = j;
  }
  if (from_right) std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> python_splitlines(std::string_view s, bool keepends) {
  const std::u32string cps = decode_utf8(s);
  std::vector<std::string> lines;
  size_t start = 0;
  size_t i = 0;
  while (i < cps.size()) {
    const char32_t c = cps[i];
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
                     c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      ++i;
      continue;
    }
    size_t eol = i + 1;
    if (c == '\r' && eol < cps.size() && cps[eol] == '\n') ++eol;
    const size_t end = keepends ? eol : i;
    lines.push_back(encode_utf8(std::u32string_view(cps).substr(start, end - start)));
    start = i = eol;
  }
  if (start < cps.size()) lines.push_back(encode_utf8(std::u32string_view(cps).substr(start)));
  return lines;
}

std::string python_replace(std::string_view s, std::string_view old_text, std::string_view new_text,
                           int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old_text.empty()) {  // inserts `new_text` before every code point and at the end
    const std::u32string cps = decode_utf8(s);
    int64_t done = 0;
    for (char32_t cp : cps) {
      if (done < count) out.append(new_text), ++done;
      append_utf8(&out, cp);
    }
    if (done < count) out.append(new_text);
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (done < count) {
    const size_t hit = s.find(old_text, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(new_text);
    pos = hit + old_text.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

std::string python_upper(std::string_view s) {
  const std::u32string cps = decode_utf8(s);
  std::u32string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) append_upper(&out, cp);
  return encode_utf8(out);
}

std::string python_lower(std::string_view s) {
  const std::u32string cps = decode_utf8(s);
  std::u32string out;
  out.reserve(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) append_lower(&out, cps, i);
  return encode_utf8(out);
}

std::string python_capitalize(std::string_view s) {
  const std::u32string cps = decode_utf8(s);
  std::u32string out;
  out.reserve(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      append_title(&out, cps[0]);
    } else {
      append_lower(&out, cps, i);
    }
  }
  return encode_utf8(out);
}

std::string python_title(std::string_view s) {
  const std::u32string cps = decode_utf8(s);
  std::u32string out;
  out.reserve(cps.size());
  bool previous_is_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (previous_is_cased) {
      append_lower(&out, cps, i);
    } else {
      append_title(&out, cps[i]);
    }
    previous_is_cased = python_is_cased(cps[i]);
  }
  return encode_utf8(out);
}

bool python_str_test(std::string_view s, std::string_view method) {
  auto cat = [](char32_t cp) { return category(cp); };
  auto is_alpha = [&](char32_t cp) {
    const int c = cat(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
  };
  auto is_digit = [&](char32_t cp) {
    return cat(cp) == UTF8PROC_CATEGORY_ND || cp == 0xB2 || cp == 0xB3 || cp == 0xB9 ||
           (cp >= 0x2070 && cp <= 0x2079) || (cp >= 0x2080 && cp <= 0x2089);
  };
  auto is_numeric = [&](char32_t cp) {
    const int c = cat(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
  };
  if (method == "isdigit") return all_of_nonempty(s, is_digit);
  if (method == "isdecimal")
    return all_of_nonempty(s, [&](char32_t cp) { return cat(cp) == UTF8PROC_CATEGORY_ND; });
  if (method == "isnumeric") return all_of_nonempty(s, is_numeric);
  if (method == "isalpha") return all_of_nonempty(s, is_alpha);
  if (method == "isalnum")
    return all_of_nonempty(s, [&](char32_t cp) { return is_alpha(cp) || is_numeric(cp); });
  if (method == "isspace") return all_of_nonempty(s, is_python_space);
  // islower / isupper: at least one cased code point and none of the other case.
  const bool want_lower = method == "islower";
  bool any_cased = false;
  for (char32_t cp : decode_utf8(s)) {
    if (!python_is_cased(cp)) continue;
    any_cased = true;
    const int c = cat(cp);
    const bool upper_or_title = c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT ||
                                (cp >= 0x2160 && cp <= 0x216F) || (cp >= 0x24B6 && cp <= 0x24CF);
    if (want_lower == upper_or_title) return false;
  }
  return any_cased;
}

}  // namespace ls::jinja
