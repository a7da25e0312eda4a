// jinja2's SandboxedEnvironment.getattr/getitem, Python slicing, iteration and len().
#include "text/jinja_access.h"

#include <algorithm>

#include "text/jinja_format.h"
#include "text/jinja_methods.h"
#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

Value missing_attribute(const Value& obj, std::string_view name) {
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + std::string(name) +
                          "'");
}

Value missing_element(const Value& obj, const Value& key) {
  if (key.is_string()) return missing_attribute(obj, key.as_string());
  return Value::undefined(object_type_repr(obj) + " has no element " + python_repr(key));
}

bool is_no_method(const Value& m) {
  return m.is_undefined() && m.undefined_message().empty();
}

// A method found through x.name or x["name"], or the plain "has no attribute" Undefined.
Value method_or_missing(const Value& obj, std::string_view name) {
  Value m = find_method(obj, name);
  return is_no_method(m) ? missing_attribute(obj, name) : m;
}

// Python's slice.indices(): clamps start/stop for a sequence of `length` items.
void adjust_slice(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                  int64_t step, int64_t* out_start, int64_t* out_stop) {
  auto clamp = [&](std::optional<int64_t> v, int64_t if_none) {
    if (!v) return if_none;
    int64_t x = *v;
    if (x < 0) {
      x = x < -length ? -1 : x + length;
      if (x < 0) return step < 0 ? int64_t{-1} : int64_t{0};
      return x;
    }
    if (x >= length) return step < 0 ? length - 1 : length;
    return x;
  };
  *out_start = clamp(start, step < 0 ? length - 1 : 0);
  *out_stop = clamp(stop, step < 0 ? -1 : length);
}

}  // namespace

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_object()) return "jinja2." + std::string(v.as_object().type_name()) + " object";
  return python_type_name(v) + " object";
}

Status undefined_error(const Value& undefined) {
  const std::string& m = undefined.undefined_message();
  return invalid_argument(m.empty() ? "value is undefined" : m);
}

Result<Value> get_attribute(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      return undefined_error(obj);
    case Value::Kind::kDict: {
      // Python attributes (the dict methods) win over keys, as jinja2's getattr tries them first.
      Value m = find_method(obj, name);
      if (!is_no_method(m)) return m;
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return missing_attribute(obj, name);
    }
    case Value::Kind::kObject:
      return obj.as_object().attribute(name);
    case Value::Kind::kString:
    case Value::Kind::kSequence:
      return method_or_missing(obj, name);
    default:
      return missing_attribute(obj, name);
  }
}

Result<Value> get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      return undefined_error(obj);
    case Value::Kind::kDict:
      if (is_hashable(key))
        if (const Value* v = obj.as_dict().find(key)) return *v;
      break;
    case Value::Kind::kObject:
      if (key.is_string()) return obj.as_object().attribute(key.as_string());
      return missing_element(obj, key);
    case Value::Kind::kSequence:
      if (obj.is_list_like() && key.is_integral()) {
        const auto& items = obj.as_sequence().items;
        int64_t i = key.as_int();
        const auto n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
        return missing_element(obj, key);
      }
      break;
    case Value::Kind::kString:
      if (key.is_integral()) {
        const std::string& s = obj.as_string();
        int64_t i = key.as_int();
        if (is_ascii(s)) {
          const auto n = static_cast<int64_t>(s.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return Value::string(std::string(1, s[static_cast<size_t>(i)]));
        } else {
          const std::u32string cps = decode_utf8(s);
          const auto n = static_cast<int64_t>(cps.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) {
            std::string out;
            append_utf8(&out, cps[static_cast<size_t>(i)]);
            return Value::string(std::move(out));
          }
        }
        return missing_element(obj, key);
      }
      break;
    default:
      return missing_element(obj, key);
  }
  // jinja2 falls back to an attribute for string keys (so d["items"] finds the method).
  if (key.is_string()) return method_or_missing(obj, key.as_string());
  return missing_element(obj, key);
}

Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop,
                        const Value& step) {
  if (obj.is_undefined()) return undefined_error(obj);
  auto bound = [](const Value& v, bool* ok) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (!v.is_integral()) {
      *ok = false;
      return std::nullopt;
    }
    return v.as_int();
  };
  bool ok = true;
  const auto b = bound(start, &ok);
  const auto e = bound(stop, &ok);
  const auto s = bound(step, &ok);
  // Bad bounds or unsliceable types are a TypeError, which jinja2 turns into Undefined.
  if (!ok || !(obj.is_string() || obj.is_list_like()))
    return Value::undefined(object_type_repr(obj) + " has no element slice");
  const int64_t st = s.value_or(1);
  if (st == 0) return invalid_argument("slice step cannot be zero");
  std::u32string cps;
  const std::vector<Value>* items = nullptr;
  int64_t length = 0;
  if (obj.is_string()) {
    cps = decode_utf8(obj.as_string());
    length = static_cast<int64_t>(cps.size());
  } else {
    items = &obj.as_sequence().items;
    length = static_cast<int64_t>(items->size());
  }
  int64_t lo = 0, hi = 0;
  adjust_slice(length, b, e, st, &lo, &hi);
  std::u32string out_cps;
  std::vector<Value> out_items;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
    if (items) {
      out_items.push_back((*items)[static_cast<size_t>(i)]);
    } else {
      out_cps.push_back(cps[static_cast<size_t>(i)]);
    }
  }
  if (!items) return Value::string(encode_utf8(out_cps));
  return Value::sequence(obj.as_sequence().form, std::move(out_items));
}

Result<std::vector<Value>> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>{};
    case Value::Kind::kSequence:
      return v.as_sequence().items;
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.as_dict().size());
      for (const auto& kv : v.as_dict().items()) keys.push_back(kv.first);
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      if (is_ascii(v.as_string())) {
        for (char c : v.as_string()) chars.push_back(Value::string(std::string(1, c)));
        return chars;
      }
      for (char32_t cp : decode_utf8(v.as_string())) {
        std::string s;
        append_utf8(&s, cp);
        chars.push_back(Value::string(std::move(s)));
      }
      return chars;
    }
    default:
      return invalid_argument("'" + python_type_name(v) + "' object is not iterable");
  }
}

Result<int64_t> python_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return int64_t{0};
    case Value::Kind::kString:
      return static_cast<int64_t>(count_code_points(v.as_string()));
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.as_dict().size());
    case Value::Kind::kSequence:
      if (v.as_sequence().form != SequenceForm::kIterator)
        return static_cast<int64_t>(v.as_sequence().items.size());
      break;
    default:
      break;
  }
  return invalid_argument("object of type '" + python_type_name(v) + "' has no len()");
}

Result<std::vector<const Value*>> bind_args(std::string_view function, const CallArgs& args,
                                            std::initializer_list<std::string_view> params,
                                            size_t required) {
  const std::string fn(function);
  std::vector<const Value*> bound(params.size(), nullptr);
  if (args.positional.size() > params.size())
    return invalid_argument(fn + "() takes at most " + std::to_string(params.size()) +
                            " arguments (" + std::to_string(args.positional.size()) + " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) bound[i] = &args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    auto it = std::find(params.begin(), params.end(), key);
    if (it == params.end())
      return invalid_argument(fn + "() got an unexpected keyword argument '" + key + "'");
    const auto i = static_cast<size_t>(it - params.begin());
    if (bound[i]) return invalid_argument(fn + "() got multiple values for argument '" + key + "'");
    bound[i] = &value;
  }
  for (size_t i = 0; i < required; ++i)
    if (!bound[i])
      return invalid_argument(fn + "() missing required argument '" +
                              std::string(*(params.begin() + i)) + "'");
  return bound;
}

Result<int64_t> int_arg(std::string_view function, const Value* v, int64_t fallback) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_integral())
    return invalid_argument(std::string(function) + "(): '" + python_type_name(*v) +
                            "' object cannot be interpreted as an integer");
  return v->as_int();
}

Result<std::optional<std::string>> string_arg(std::string_view function, const Value* v) {
  if (!v || v->is_none()) return std::optional<std::string>();
  if (!v->is_string())
    return invalid_argument(std::string(function) + "(): argument must be str or None, not " +
                            python_type_name(*v));
  return std::optional<std::string>(v->as_string());
}

}  // namespace ls::jinja
