// jinja2's lexer (lexer.py, 3.1) rewritten as a scanner: the same token rules in the same order,
// the same whitespace control, and the `line_starting` subtlety of lstrip_blocks.
#include "text/jinja_lexer.h"

#include <algorithm>
#include <charconv>

#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// jinja2 normalises \r\n and \r to \n and drops one trailing newline (keep_trailing_newline
// is off in transformers).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  Result<std::vector<Token>> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t tag = find_tag_start(pos);
      if (tag == std::string::npos) {
        push_data(pos, src_.substr(pos));
        break;
      }
      LS_ASSIGN_OR_RETURN(pos, lex_tag(pos, tag));
    }
    Token eof;
    eof.kind = Token::Kind::kEof;
    eof.pos = pos_of(src_.size());
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  SourcePos pos_of(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line_start = *(it - 1);
    SourcePos p;
    p.line = static_cast<int>(it - line_starts_.begin());
    p.column = 1 + static_cast<int>(count_code_points(
                       std::string_view(src_).substr(line_start, offset - line_start)));
    return p;
  }

  Status error_at(size_t offset, const std::string& message) const {
    const SourcePos p = pos_of(offset);
    return invalid_argument("template syntax error at line " + std::to_string(p.line) +
                            ", column " + std::to_string(p.column) + ": " + message);
  }

  // Byte length of the Python whitespace code point at `pos`, or 0.
  size_t space_at(size_t pos) const {
    const auto c = static_cast<unsigned char>(src_[pos]);
    if (c < 0x80) return is_python_space(c) ? 1 : 0;
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    len = std::min(len, src_.size() - pos);
    const std::u32string cp = decode_utf8(std::string_view(src_).substr(pos, len));
    return cp.size() == 1 && is_python_space(cp[0]) ? len : 0;
  }

  size_t skip_space(size_t pos) const {
    while (pos < src_.size()) {
      const size_t n = space_at(pos);
      if (!n) break;
      pos += n;
    }
    return pos;
  }

  bool starts_with(size_t pos, std::string_view s) const {
    return src_.compare(pos, s.size(), s) == 0;
  }

  size_t find_tag_start(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    return std::string::npos;
  }

  void push(Token::Kind kind, size_t offset, std::string text = {}) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.pos = pos_of(offset);
    tokens_.push_back(std::move(t));
  }

  void push_data(size_t offset, std::string text) {
    if (!text.empty()) push(Token::Kind::kData, offset, std::move(text));
  }

  // Applies `{%-` (strip all whitespace before) or lstrip_blocks (strip the spaces between the
  // line start and a block or comment tag) to the text before a tag.
  std::string strip_before(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return python_strip(text, std::nullopt, /*left=*/false, /*right=*/true);
    if (sign == '+' || is_variable) return text;
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return text;
    const std::u32string tail = decode_utf8(std::string_view(text).substr(l_pos));
    if (tail.empty() || !std::all_of(tail.begin(), tail.end(), is_python_space)) return text;
    text.resize(l_pos);
    return text;
  }

  // Matches the end of a block (`%}`) or comment (`#}`) with its whitespace control at `pos`:
  // `+%}` keeps what follows, `-%}` strips all whitespace after, `%}` drops one newline
  // (trim_blocks). Returns the position after, or npos.
  size_t match_block_end(size_t pos, char closer) const {
    const std::string end = std::string(1, closer) + "}";
    if (src_[pos] == '+' && starts_with(pos + 1, end)) return pos + 3;
    if (src_[pos] == '-' && starts_with(pos + 1, end)) return skip_space(pos + 3);
    if (starts_with(pos, end)) {
      size_t after = pos + 2;
      if (after < src_.size() && src_[after] == '\n') ++after;
      return after;
    }
    return std::string::npos;
  }

  void set_line_starting(size_t end) { line_starting_ = end > 0 && src_[end - 1] == '\n'; }

  Result<size_t> lex_tag(size_t pos, size_t tag) {
    const char kind = src_[tag + 1];
    size_t after = tag + 2;
    char sign = 0;
    if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
    push_data(pos, strip_before(src_.substr(pos, tag - pos), sign, kind == '{'));
    if (kind == '#') return lex_comment(tag, after);
    if (kind == '%') {
      const size_t raw_end = match_raw_begin(after);
      if (raw_end != std::string::npos) return lex_raw(tag, raw_end);
      push(Token::Kind::kBlockBegin, tag);
      return lex_inside(after, /*is_block=*/true);
    }
    push(Token::Kind::kVarBegin, tag);
    return lex_inside(after, /*is_block=*/false);
  }

  Result<size_t> lex_comment(size_t tag, size_t after) {
    const size_t q = src_.find("#}", after);
    if (q == std::string::npos) return error_at(tag, "missing end of comment tag");
    const size_t p = (q > after && (src_[q - 1] == '-' || src_[q - 1] == '+')) ? q - 1 : q;
    const size_t end = match_block_end(p, '#');
    set_line_starting(end);
    return end;
  }

  // `{% raw %}` as jinja2 matches it: whitespace around `raw`, and no trim_blocks newline.
  size_t match_raw_begin(size_t after) const {
    size_t p = skip_space(after);
    if (!starts_with(p, "raw")) return std::string::npos;
    p = skip_space(p + 3);
    if (starts_with(p, "-%}")) return skip_space(p + 3);
    if (starts_with(p, "%}")) return p + 2;
    return std::string::npos;
  }

  Result<size_t> lex_raw(size_t tag, size_t content) {
    set_line_starting(content);
    for (size_t q = src_.find("{%", content); q != std::string::npos; q = src_.find("{%", q + 1)) {
      size_t p = q + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_space(p);
      if (!starts_with(p, "endraw")) continue;
      p = skip_space(p + 6);
      if (p >= src_.size()) continue;
      const size_t end = match_block_end(p, '%');
      if (end == std::string::npos) continue;
      push_data(content, strip_before(src_.substr(content, q - content), sign, false));
      set_line_starting(end);
      return end;
    }
    return error_at(tag, "missing end of raw directive");
  }

  // Tokens inside {% %} or {{ }} up to the matching end; the end only counts when brackets
  // are balanced, as in jinja2.
  Result<size_t> lex_inside(size_t pos, bool is_block) {
    std::vector<char> balance;
    while (true) {
      if (pos >= src_.size())
        return error_at(pos, std::string("unexpected end of template, expected '") +
                                 (is_block ? "%}" : "}}") + "'");
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (is_block) {
          end = match_block_end(pos, '%');
        } else if (starts_with(pos, "-}}")) {
          end = skip_space(pos + 3);
        } else if (starts_with(pos, "}}")) {
          end = pos + 2;
        }
        if (end != std::string::npos) {
          push(is_block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, pos);
          set_line_starting(end);
          return end;
        }
      }
      if (const size_t n = space_at(pos)) {
        pos += n;
        continue;
      }
      LS_ASSIGN_OR_RETURN(pos, lex_token(pos, &balance));
    }
  }

  // `(\d+_)*\d+`: digits with single underscores between them. Returns the end or npos.
  size_t scan_digits(size_t pos) const {
    if (pos >= src_.size() || !is_digit(src_[pos])) return std::string::npos;
    while (pos < src_.size()) {
      if (is_digit(src_[pos])) {
        ++pos;
      } else if (src_[pos] == '_' && pos + 1 < src_.size() && is_digit(src_[pos + 1])) {
        ++pos;
      } else {
        break;
      }
    }
    return pos;
  }

  size_t scan_exponent(size_t pos) const {
    if (pos >= src_.size() || (src_[pos] != 'e' && src_[pos] != 'E')) return std::string::npos;
    ++pos;
    if (pos < src_.size() && (src_[pos] == '+' || src_[pos] == '-')) ++pos;
    return scan_digits(pos);
  }

  // jinja2's float_re: digits, then a fraction and/or exponent; never right after a dot.
  size_t scan_float(size_t pos) const {
    if (pos > 0 && src_[pos - 1] == '.') return std::string::npos;
    const size_t int_end = scan_digits(pos);
    if (int_end == std::string::npos) return std::string::npos;
    size_t frac_end = std::string::npos;
    if (int_end < src_.size() && src_[int_end] == '.') frac_end = scan_digits(int_end + 1);
    if (frac_end != std::string::npos) {
      const size_t e = scan_exponent(frac_end);
      return e != std::string::npos ? e : frac_end;
    }
    return scan_exponent(int_end);
  }

  // jinja2's integer_re: 0b/0o/0x prefixed, decimal, or zeros. Returns end, sets base.
  size_t scan_integer(size_t pos, int* base) const {
    auto run = [&](size_t p, auto ok) {
      size_t q = p;
      while (q < src_.size()) {
        if (ok(src_[q])) {
          ++q;
        } else if (src_[q] == '_' && q + 1 < src_.size() && ok(src_[q + 1])) {
          q += 2;
        } else {
          break;
        }
      }
      return q;
    };
    const char c = src_[pos];
    if (c == '0' && pos + 1 < src_.size()) {
      const char p = static_cast<char>(src_[pos + 1] | 0x20);
      auto try_prefix = [&](char letter, int b, auto ok) -> size_t {
        if (p != letter) return std::string::npos;
        size_t start = pos + 2;
        if (start < src_.size() && src_[start] == '_') ++start;
        if (start >= src_.size() || !ok(src_[start])) return std::string::npos;
        *base = b;
        return run(start, ok);
      };
      size_t e = try_prefix('b', 2, [](char ch) { return ch == '0' || ch == '1'; });
      if (e == std::string::npos)
        e = try_prefix('o', 8, [](char ch) { return ch >= '0' && ch <= '7'; });
      if (e == std::string::npos)
        e = try_prefix('x', 16, [](char ch) {
          return is_digit(ch) || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
        });
      if (e != std::string::npos) return e;
    }
    *base = 10;
    if (c >= '1' && c <= '9') return run(pos + 1, is_digit);
    if (c == '0') return run(pos + 1, [](char ch) { return ch == '0'; });
    return std::string::npos;
  }

  Result<size_t> lex_number(size_t pos, size_t end, bool is_float) {
    std::string digits;
    for (size_t i = pos; i < end; ++i)
      if (src_[i] != '_') digits.push_back(src_[i]);
    Token t;
    t.pos = pos_of(pos);
    t.text = src_.substr(pos, end - pos);
    if (is_float) {
      t.kind = Token::Kind::kFloat;
      std::from_chars(digits.data(), digits.data() + digits.size(), t.float_value);
    } else {
      int base = 10;
      scan_integer(pos, &base);
      const size_t skip = base == 10 ? 0 : 2;
      t.kind = Token::Kind::kInteger;
      auto r =
          std::from_chars(digits.data() + skip, digits.data() + digits.size(), t.int_value, base);
      if (r.ec != std::errc()) return error_at(pos, "integer literal beyond 64 bits");
    }
    tokens_.push_back(std::move(t));
    return end;
  }

  Result<size_t> lex_token(size_t pos, std::vector<char>* balance) {
    const char c = src_[pos];
    if (const size_t e = scan_float(pos); e != std::string::npos) return lex_number(pos, e, true);
    int base = 10;
    if (const size_t e = scan_integer(pos, &base); e != std::string::npos)
      return lex_number(pos, e, false);
    if (is_name_start(c)) {
      size_t e = pos + 1;
      while (e < src_.size() && is_name_char(src_[e])) ++e;
      push(Token::Kind::kName, pos, src_.substr(pos, e - pos));
      return e;
    }
    if (c == '\'' || c == '"') {
      size_t e = pos + 1;
      while (e < src_.size() && src_[e] != c) e += src_[e] == '\\' ? 2 : 1;
      if (e < src_.size()) {
        LS_ASSIGN_OR_RETURN(std::string value, unescape(pos, src_.substr(pos + 1, e - pos - 1)));
        push(Token::Kind::kString, pos, std::move(value));
        return e + 1;
      }
      // An unterminated string falls through to the operator rule and fails there.
    }
    return lex_operator(pos, balance);
  }

  Result<size_t> lex_operator(size_t pos, std::vector<char>* balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo)
      if (starts_with(pos, op)) {
        push(Token::Kind::kOperator, pos, std::string(op));
        return pos + 2;
      }
    const char c = src_[pos];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      const std::u32string cp = decode_utf8(std::string_view(src_).substr(pos, 4));
      std::string shown;
      append_utf8(&shown, cp.empty() ? U'?' : cp[0]);
      return error_at(pos, "unexpected character '" + shown + "'");
    }
    if (c == '(' || c == '[' || c == '{') balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (balance->empty()) return error_at(pos, std::string("unexpected '") + c + "'");
      const char want = balance->back();
      balance->pop_back();
      if (want != c)
        return error_at(pos, std::string("unexpected '") + c + "', expected '" + want + "'");
    }
    push(Token::Kind::kOperator, pos, std::string(1, c));
    return pos + 1;
  }

  // Python's "unicode-escape" decoding of a string literal's body, as jinja2 applies it.
  Result<std::string> unescape(size_t pos, std::string_view body) const {
    static constexpr std::string_view kFrom = "\\'\"abfnrtv";
    static constexpr std::string_view kTo = "\\'\"\a\b\f\n\r\t\v";
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] != '\\') {
        out.push_back(body[i]);
        continue;
      }
      const char e = body[++i];  // the string scan guarantees a character after '\'
      if (const size_t k = kFrom.find(e); k != std::string_view::npos) {
        out.push_back(kTo[k]);
      } else if (e == 'x' || e == 'u' || e == 'U') {
        LS_RETURN_IF_ERROR(unescape_hex(pos, body, &i, &out));
      } else if (e == 'N') {
        return error_at(pos, "named Unicode escapes (\\N{...}) are not supported");
      } else if (e >= '0' && e <= '7') {  // up to three octal digits
        uint32_t cp = 0;
        size_t k = 0;
        for (; k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7'; ++k)
          cp = cp * 8 + static_cast<uint32_t>(body[i + k] - '0');
        append_utf8(&out, cp);
        i += k - 1;
      } else if (static_cast<unsigned char>(e) >= 0x80) {
        unescape_non_ascii(body, &i, &out);
      } else if (e != '\n') {  // a backslash-newline joins lines; unknown escapes stay as written
        out.push_back('\\');
        out.push_back(e);
      }
    }
    return out;
  }

  // \xNN, \uNNNN, \UNNNNNNNN with body[*i] at the letter; exactly that many hex digits.
  Status unescape_hex(size_t pos, std::string_view body, size_t* i, std::string* out) const {
    const char e = body[*i];
    const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
    const size_t begin = *i + 1;
    if (begin + n > body.size())
      return error_at(pos, std::string("truncated \\") + e + " escape in string");
    uint32_t cp = 0;
    auto r = std::from_chars(body.data() + begin, body.data() + begin + n, cp, 16);
    if (r.ptr != body.data() + begin + n)
      return error_at(pos, std::string("truncated \\") + e + " escape in string");
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return error_at(pos, "string escape is not a valid Unicode scalar value");
    append_utf8(out, cp);
    *i += n;
    return ok_status();
  }

  // jinja2 first rewrites non-ASCII as \xNN/\uNNNN/\UNNNNNNNN escapes, then decodes: a
  // backslash right before a non-ASCII character therefore leaves that escape's text behind.
  static void unescape_non_ascii(std::string_view body, size_t* i, std::string* out) {
    const std::u32string cps = decode_utf8(body.substr(*i, 4));
    const char32_t cp = cps.empty() ? 0 : cps[0];
    char buf[16];
    std::snprintf(buf, sizeof(buf),
                  cp < 0x100     ? "\\x%02x"
                  : cp < 0x10000 ? "\\u%04x"
                                 : "\\U%08x",
                  static_cast<unsigned>(cp));
    out->append(buf);
    std::string enc;
    append_utf8(&enc, cp);
    *i += enc.size() - 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  bool line_starting_ = true;
};

}  // namespace

Result<std::vector<Token>> tokenize_template(std::string_view source) {
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace ls::jinja
