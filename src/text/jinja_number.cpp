// Number parsing and rounding with CPython's rules (underscores between digits, base
// prefixes, inf/nan spellings, correctly rounded round()).
#include "text/jinja_number.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>

#include "text/jinja_access.h"
#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

// Appends `s`'s digits valid in `base`, allowing single underscores between digits (and one
// right after a base prefix). False when anything else is there.
bool clean_digits(std::string_view s, int base, bool allow_leading_underscore, std::string* out) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      const bool after_digit = i > 0 && s[i - 1] != '_';
      const bool leading_ok = i == 0 && allow_leading_underscore;
      if ((!after_digit && !leading_ok) || i + 1 == s.size()) return false;
      continue;
    }
    if (digit_value(s[i]) >= base) return false;
    out->push_back(s[i]);
  }
  return !out->empty();
}

// int(str, base) as CPython parses it; nullopt for a ValueError.
std::optional<int64_t> parse_python_int(const std::string& text, int64_t base, bool* overflow) {
  std::string s = python_strip(text, std::nullopt, true, true);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  if (base != 0 && (base < 2 || base > 36)) return std::nullopt;
  bool prefixed = false;
  if (s.size() >= 2 && s[0] == '0') {
    const char p = static_cast<char>(s[1] | 0x20);
    const int prefix_base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefix_base && (base == 0 || base == prefix_base)) {
      base = prefix_base;
      s.erase(0, 2);
      prefixed = true;
    }
  }
  if (base == 0) {
    base = 10;
    // Base 0 refuses leading zeros on a non-zero decimal ("010").
    if (s.size() > 1 && s[0] == '0' && s.find_first_not_of("0_") != std::string::npos)
      return std::nullopt;
  }
  std::string digits;
  if (!clean_digits(s, static_cast<int>(base), prefixed, &digits)) return std::nullopt;
  uint64_t magnitude = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude,
                           static_cast<int>(base));
  if (r.ec != std::errc() || magnitude > static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0)) {
    *overflow = true;
    return std::nullopt;
  }
  return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

// float(str) as CPython parses it; nullopt for a ValueError.
std::optional<double> parse_python_float(const std::string& text) {
  std::string s = python_strip(text, std::nullopt, true, true);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  std::string lower;
  for (char c : s) lower.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
  if (lower == "inf" || lower == "infinity") return negative ? -INFINITY : INFINITY;
  if (lower == "nan") return negative ? -NAN : NAN;
  const size_t e = lower.find('e');
  const std::string_view mantissa = std::string_view(lower).substr(0, e);
  const size_t dot = mantissa.find('.');
  std::string clean;
  std::string part;
  const std::string_view int_part = mantissa.substr(0, dot);
  if (!int_part.empty() && !clean_digits(int_part, 10, false, &clean)) return std::nullopt;
  if (dot != std::string_view::npos) {
    clean.push_back('.');
    const std::string_view frac = mantissa.substr(dot + 1);
    if (!frac.empty() && !clean_digits(frac, 10, false, &clean)) return std::nullopt;
    if (int_part.empty() && frac.empty()) return std::nullopt;
  } else if (int_part.empty()) {
    return std::nullopt;
  }
  if (e != std::string::npos) {
    std::string_view exp = std::string_view(lower).substr(e + 1);
    clean.push_back('e');
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
      clean.push_back(exp[0]);
      exp.remove_prefix(1);
    }
    if (!clean_digits(exp, 10, false, &clean)) return std::nullopt;
  }
  double d = 0;
  auto r = std::from_chars(clean.data(), clean.data() + clean.size(), d);
  if (r.ptr != clean.data() + clean.size()) {
    if (r.ec != std::errc::result_out_of_range) return std::nullopt;
    d = clean.find("e-") != std::string::npos ? 0.0 : INFINITY;  // Python over/underflows too
  }
  return negative ? -d : d;
}

Status beyond_64_bits() {
  return invalid_argument("integer beyond 64 bits");
}

// int(float) truncates; inf is an OverflowError and NaN a ValueError in Python.
Result<std::optional<int64_t>> truncate(double d) {
  if (std::isnan(d)) return std::optional<int64_t>();
  if (std::isinf(d)) return invalid_argument("cannot convert float infinity to integer");
  const double t = std::trunc(d);
  if (t < -9223372036854775808.0 || t >= 9223372036854775808.0) return beyond_64_bits();
  return std::optional<int64_t>(static_cast<int64_t>(t));
}

// Python's round(x, n) for n >= 0: the correctly rounded decimal, which glibc's printf
// produces (half to even on the exact binary value), read back.
double round_float(double x, int64_t ndigits) {
  if (!std::isfinite(x) || ndigits > 323) return x;
  if (ndigits < 0) {
    const double scale = std::pow(10.0, static_cast<double>(-ndigits));
    return std::nearbyint(x / scale) * scale;
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
  double y = 0;
  std::from_chars(buf, buf + std::char_traits<char>::length(buf), y);
  return y;
}

}  // namespace

Result<Value> python_int_conversion(const Value& v, int64_t base, const Value& fallback) {
  if (v.is_undefined()) return undefined_error(v);
  if (v.is_string()) {
    bool overflow = false;
    if (auto i = parse_python_int(v.as_string(), base, &overflow)) return Value::integer(*i);
    if (overflow) return beyond_64_bits();
    // jinja2's quirk: "42.23"|int is 42 (through float).
    if (auto d = parse_python_float(v.as_string())) {
      LS_ASSIGN_OR_RETURN(auto t, truncate(*d));
      if (t) return Value::integer(*t);
    }
    return fallback;
  }
  if (v.is_integral()) return Value::integer(v.as_int());
  if (v.is_float()) {
    LS_ASSIGN_OR_RETURN(auto t, truncate(v.as_double()));
    return t ? Value::integer(*t) : fallback;
  }
  return fallback;
}

Result<Value> python_float_conversion(const Value& v, const Value& fallback) {
  if (v.is_undefined()) return undefined_error(v);
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    if (auto d = parse_python_float(v.as_string())) return Value::number(*d);
  }
  return fallback;
}

Result<Value> python_round(const Value& v, int64_t precision, const std::string& method) {
  if (method != "common" && method != "ceil" && method != "floor")
    return invalid_argument("method must be common, ceil or floor");
  if (v.is_undefined()) return undefined_error(v);
  if (!v.is_number())
    return invalid_argument("type " + python_type_name(v) + " doesn't define __round__ method");
  if (method == "common") {
    if (v.is_float()) return Value::number(round_float(v.as_double(), precision));
    if (precision >= 0) return Value::integer(v.as_int());
    const double r = round_float(static_cast<double>(v.as_int()), precision);
    return Value::integer(static_cast<int64_t>(r));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double scaled = v.as_double() * scale;
  const double r = method == "ceil" ? std::ceil(scaled) : std::floor(scaled);
  return Value::number(r / scale);
}

}  // namespace ls::jinja
