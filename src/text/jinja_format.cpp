// Python's str/repr/json.dumps output, byte for byte, for the values templates build.
#include "text/jinja_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

void append_hex_escape(std::string* out, char prefix, char32_t cp, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\%c%0*x", prefix, digits, static_cast<unsigned>(cp));
  out->append(buf);
}

void append_repr(std::string* out, const Value& v);

void append_items_repr(std::string* out, const std::vector<Value>& items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out->append(", ");
    append_repr(out, items[i]);
  }
}

void append_sequence_repr(std::string* out, const Sequence& s) {
  switch (s.form) {
    case SequenceForm::kList:
      out->push_back('[');
      append_items_repr(out, s.items);
      out->push_back(']');
      return;
    case SequenceForm::kTuple:
      out->push_back('(');
      append_items_repr(out, s.items);
      if (s.items.size() == 1) out->push_back(',');
      out->push_back(')');
      return;
    case SequenceForm::kIterator:
      // Python prints an address here, which no template can depend on.
      out->append("<generator object>");
      return;
    case SequenceForm::kDictKeys:
    case SequenceForm::kDictValues:
    case SequenceForm::kDictItems: {
      const char* name = s.form == SequenceForm::kDictKeys     ? "dict_keys(["
                         : s.form == SequenceForm::kDictValues ? "dict_values(["
                                                               : "dict_items([";
      out->append(name);
      append_items_repr(out, s.items);
      out->append("])");
      return;
    }
  }
}

void append_repr(std::string* out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      out->append("Undefined");
      return;
    case Value::Kind::kString:
      out->append(python_string_repr(v.as_string()));
      return;
    case Value::Kind::kSequence:
      append_sequence_repr(out, v.as_sequence());
      return;
    case Value::Kind::kDict: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, val] : v.as_dict().items()) {
        if (!first) out->append(", ");
        first = false;
        append_repr(out, k);
        out->append(": ");
        append_repr(out, val);
      }
      out->push_back('}');
      return;
    }
    default:
      out->append(python_str(v));
  }
}

void append_json_string(std::string* out, std::string_view s, bool ensure_ascii) {
  out->push_back('"');
  auto escape_ascii = [&](unsigned char c) {
    switch (c) {
      case '"':
        out->append("\\\"");
        return;
      case '\\':
        out->append("\\\\");
        return;
      case '\n':
        out->append("\\n");
        return;
      case '\r':
        out->append("\\r");
        return;
      case '\t':
        out->append("\\t");
        return;
      case '\b':
        out->append("\\b");
        return;
      case '\f':
        out->append("\\f");
        return;
      default:
        if (c < 0x20 || (ensure_ascii && c == 0x7F)) {
          append_hex_escape(out, 'u', c, 4);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  };
  if (!ensure_ascii || is_ascii(s)) {
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x80) {
        out->push_back(c);  // non-ASCII bytes pass through unchanged with ensure_ascii=False
      } else {
        escape_ascii(u);
      }
    }
  } else {
    for (char32_t cp : decode_utf8(s)) {
      if (cp < 0x80) {
        escape_ascii(static_cast<unsigned char>(cp));
      } else if (cp < 0x10000) {
        append_hex_escape(out, 'u', cp, 4);
      } else {  // UTF-16 surrogate pair, as Python writes astral code points
        const char32_t v = cp - 0x10000;
        append_hex_escape(out, 'u', 0xD800 + (v >> 10), 4);
        append_hex_escape(out, 'u', 0xDC00 + (v & 0x3FF), 4);
      }
    }
  }
  out->push_back('"');
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return python_float_repr(d);
}

// json turns non-string keys into strings before writing them.
Result<std::string> json_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::kString:
      return k.as_string();
    case Value::Kind::kBool:
      return std::string(k.as_bool() ? "true" : "false");
    case Value::Kind::kInt:
      return std::to_string(k.as_int());
    case Value::Kind::kFloat:
      return json_float(k.as_double());
    case Value::Kind::kNone:
      return std::string("null");
    default:
      return invalid_argument("keys must be str, int, float, bool or None, not " +
                              python_type_name(k));
  }
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpOptions& o) : o_(o) {}

  Status write(const Value& v, int level) {
    switch (v.kind()) {
      case Value::Kind::kNone:
        out_.append("null");
        return ok_status();
      case Value::Kind::kBool:
        out_.append(v.as_bool() ? "true" : "false");
        return ok_status();
      case Value::Kind::kInt:
        out_.append(std::to_string(v.as_int()));
        return ok_status();
      case Value::Kind::kFloat:
        out_.append(json_float(v.as_double()));
        return ok_status();
      case Value::Kind::kString:
        append_json_string(&out_, v.as_string(), o_.ensure_ascii);
        return ok_status();
      case Value::Kind::kSequence:
        if (v.is_list_like()) return write_list(v.as_sequence().items, level);
        break;
      case Value::Kind::kDict:
        return write_dict(v.as_dict(), level);
      default:
        break;
    }
    return invalid_argument("Object of type " + python_type_name(v) + " is not JSON serializable");
  }

  std::string take() { return std::move(out_); }

 private:
  void newline(int level) {
    if (!o_.indent) return;
    out_.push_back('\n');
    for (int i = 0; i < level; ++i) out_.append(*o_.indent);
  }

  Status write_list(const std::vector<Value>& items, int level) {
    if (items.empty()) {
      out_.append("[]");
      return ok_status();
    }
    out_.push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out_.append(o_.item_separator);
      newline(level + 1);
      LS_RETURN_IF_ERROR(write(items[i], level + 1));
    }
    newline(level);
    out_.push_back(']');
    return ok_status();
  }

  Status write_dict(const Dict& d, int level) {
    if (d.size() == 0) {
      out_.append("{}");
      return ok_status();
    }
    std::vector<const std::pair<Value, Value>*> items;
    for (const auto& kv : d.items()) items.push_back(&kv);
    if (o_.sort_keys) {
      Status failed;
      std::stable_sort(items.begin(), items.end(), [&](const auto* a, const auto* b) {
        auto less = python_order(a->first, b->first, OrderOp::kLt);
        if (!less.ok()) failed = less.status();
        return less.ok() && less.value();
      });
      LS_RETURN_IF_ERROR(failed);
    }
    out_.push_back('{');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out_.append(o_.item_separator);
      newline(level + 1);
      LS_ASSIGN_OR_RETURN(std::string key, json_key(items[i]->first));
      append_json_string(&out_, key, o_.ensure_ascii);
      out_.append(o_.key_separator);
      LS_RETURN_IF_ERROR(write(items[i]->second, level + 1));
    }
    newline(level);
    out_.push_back('}');
    return ok_status();
  }

  const JsonDumpOptions& o_;
  std::string out_;
};

Result<Value> from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth)
    return invalid_argument("JSON input nests deeper than " + std::to_string(kMaxValueDepth));
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null:
      return Value::none();
    case T::boolean:
      return Value::boolean(j.get<bool>());
    case T::number_integer:
      return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX))
        return invalid_argument("JSON integer beyond 64 bits: " + std::to_string(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case T::number_float:
      return Value::number(j.get<double>());
    case T::string:
      return Value::string(j.get<std::string>());
    case T::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        LS_ASSIGN_OR_RETURN(Value v, from_json(e, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case T::object: {
      std::vector<std::pair<Value, Value>> items;
      items.reserve(j.size());
      for (const auto& [k, e] : j.items()) {
        LS_ASSIGN_OR_RETURN(Value v, from_json(e, depth + 1));
        items.emplace_back(Value::string(k), std::move(v));
      }
      return Value::dict(Dict(std::move(items)));
    }
    default:
      return invalid_argument("unsupported JSON value (binary)");
  }
}

}  // namespace

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's layout: fixed notation when the decimal point
  // falls within -4 < decpt <= 16, else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  std::string out;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits.push_back(c);
  int exp10 = 0;
  std::string_view exp_text = sci.substr(e + 1);
  if (!exp_text.empty() && exp_text[0] == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp10);
  const int decpt = exp10 + 1;
  const int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= n) {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
    return out;
  }
  out.push_back(digits[0]);
  if (n > 1) out += "." + digits.substr(1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  return out + exp_buf;
}

std::string python_string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t cp : decode_utf8(s)) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out.append("\\n");
    } else if (cp == '\r') {
      out.append("\\r");
    } else if (cp == '\t') {
      out.append("\\t");
    } else if (is_python_printable(cp)) {
      append_utf8(&out, cp);
    } else if (cp < 0x100) {
      append_hex_escape(&out, 'x', cp, 2);
    } else if (cp < 0x10000) {
      append_hex_escape(&out, 'u', cp, 4);
    } else {
      append_hex_escape(&out, 'U', cp, 8);
    }
  }
  out.push_back(quote);
  return out;
}

std::string python_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat:
      return python_float_repr(v.as_double());
    case Value::Kind::kString:
      return v.as_string();
    case Value::Kind::kObject:
      return v.as_object().repr();
    case Value::Kind::kCallable:
      return v.as_callable().repr();
    default: {
      std::string out;
      append_repr(&out, v);
      return out;
    }
  }
}

std::string python_repr(const Value& v) {
  std::string out;
  append_repr(&out, v);
  return out;
}

Result<std::string> python_json_dumps(const Value& v, const JsonDumpOptions& options) {
  JsonWriter w(options);
  LS_RETURN_IF_ERROR(w.write(v, 0));
  return w.take();
}

Result<Value> value_from_json(const nlohmann::ordered_json& j) {
  return from_json(j, 1);
}

}  // namespace ls::jinja
