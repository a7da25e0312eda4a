// Python str/dict/list methods over template values, with Python's argument rules.
#include "text/jinja_methods.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "text/jinja_access.h"
#include "text/jinja_format.h"
#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

constexpr std::array<std::string_view, 23> kStrMethods = {
    "strip", "lstrip",  "rstrip",  "split",      "rsplit",  "splitlines", "startswith", "endswith",
    "upper", "lower",   "title",   "capitalize", "replace", "find",       "rfind",      "count",
    "join",  "isdigit", "isalpha", "isalnum",    "isspace", "islower",    "isupper"};
constexpr std::array<std::string_view, 6> kMoreStrMethods = {
    "isdecimal", "isnumeric", "removeprefix", "removesuffix", "index", "format"};
// Python has these too; a template calling one gets a clear refusal rather than Undefined.
constexpr std::array<std::string_view, 20> kUnsupportedStrMethods = {
    "casefold",    "center",   "encode",    "expandtabs", "format_map", "isascii", "isidentifier",
    "isprintable", "istitle",  "ljust",     "maketrans",  "partition",  "rindex",  "rjust",
    "rpartition",  "swapcase", "translate", "zfill",      "__class__",  "mro"};
constexpr std::array<std::string_view, 5> kDictMethods = {"items", "keys", "values", "get", "copy"};
constexpr std::array<std::string_view, 5> kDictMutators = {"clear", "pop", "popitem", "setdefault",
                                                           "update"};
constexpr std::array<std::string_view, 3> kListMethods = {"count", "index", "copy"};
constexpr std::array<std::string_view, 8> kListMutators = {"append", "clear", "pop",    "reverse",
                                                           "insert", "sort",  "extend", "remove"};

template <size_t N>
bool contains(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Code point index of a byte offset in `s`.
int64_t code_point_index(const std::string& s, size_t byte_offset) {
  return static_cast<int64_t>(count_code_points(std::string_view(s).substr(0, byte_offset)));
}

Result<Value> str_find(const std::string& s, const std::string& name, const CallArgs& args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"sub"}, 1));
  if (!a[0]->is_string()) return invalid_argument("must be str, not " + python_type_name(*a[0]));
  const std::string& sub = a[0]->as_string();
  if (name == "count") {
    if (sub.empty()) return Value::integer(static_cast<int64_t>(count_code_points(s)) + 1);
    int64_t n = 0;
    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Value::integer(n);
  }
  const size_t hit = name == "rfind" ? s.rfind(sub) : s.find(sub);
  if (hit == std::string::npos) {
    if (name == "index") return invalid_argument("substring not found");
    return Value::integer(-1);
  }
  return Value::integer(code_point_index(s, hit));
}

Result<Value> str_affix(const std::string& s, const std::string& name, const CallArgs& args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"prefix"}, 1));
  std::vector<std::string> options;
  if (a[0]->is_string()) {
    options.push_back(a[0]->as_string());
  } else if (a[0]->is_sequence() && a[0]->as_sequence().form == SequenceForm::kTuple) {
    for (const Value& v : a[0]->as_sequence().items) {
      if (!v.is_string())
        return invalid_argument("tuple for " + name + " must only contain str, not " +
                                python_type_name(v));
      options.push_back(v.as_string());
    }
  } else {
    return invalid_argument(name + " first arg must be str or a tuple of str, not " +
                            python_type_name(*a[0]));
  }
  const bool starts = name == "startswith";
  for (const std::string& o : options) {
    if (o.size() > s.size()) continue;
    if (starts ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0)
      return Value::boolean(true);
  }
  return Value::boolean(false);
}

Result<Value> str_split(const std::string& s, const std::string& name, const CallArgs& args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"sep", "maxsplit"}));
  LS_ASSIGN_OR_RETURN(auto sep, string_arg(name, a[0]));
  LS_ASSIGN_OR_RETURN(int64_t maxsplit, int_arg(name, a[1], -1));
  if (sep && sep->empty()) return invalid_argument("empty separator");
  std::vector<Value> parts;
  for (auto& p : python_split(s, sep, maxsplit, name == "rsplit"))
    parts.push_back(Value::string(std::move(p)));
  return Value::list(std::move(parts));
}

Result<Value> str_join(const std::string& s, const CallArgs& args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("join", args, {"iterable"}, 1));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(*a[0]));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string())
      return invalid_argument("sequence item " + std::to_string(i) + ": expected str instance, " +
                              python_type_name(items[i]) + " found");
    if (i) out += s;
    out += items[i].as_string();
  }
  return Value::string(std::move(out));
}

// str.format with {}, {0}, {name}, !s/!r and {{ }} escapes; format specs are refused.
Result<Value> str_format(const std::string& s, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if ((c == '{' || c == '}') && i + 1 < s.size() && s[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') return invalid_argument("Single '}' encountered in format string");
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const size_t close = s.find('}', i);
    if (close == std::string::npos)
      return invalid_argument("Single '{' encountered in format string");
    std::string field = s.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) return invalid_argument("format specs are not supported");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    if (field.find_first_of(":.[") != std::string::npos)
      return invalid_argument("format specs and field access are not supported in str.format");
    const Value* v = nullptr;
    if (field.empty() ||
        std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t idx = auto_index;
      if (field.empty()) {
        ++auto_index;
      } else if (std::from_chars(field.data(), field.data() + field.size(), idx).ec !=
                 std::errc()) {
        return invalid_argument("Replacement index " + field + " out of range");
      }
      if (idx >= args.positional.size())
        return invalid_argument("Replacement index " + std::to_string(idx) +
                                " out of range for positional args tuple");
      v = &args.positional[idx];
    } else {
      for (const auto& [k, val] : args.keyword)
        if (k == field) v = &val;
      if (!v) return invalid_argument("KeyError: '" + field + "'");
    }
    out += conversion == 'r' ? python_repr(*v) : python_str(*v);
  }
  return Value::string(std::move(out));
}

Result<Value> call_str_method(const std::string& s, const std::string& name, const CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"chars"}));
    LS_ASSIGN_OR_RETURN(auto chars, string_arg(name, a[0]));
    return Value::string(python_strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") return str_split(s, name, args);
  if (name == "splitlines") {
    LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"keepends"}));
    std::vector<Value> lines;
    for (auto& l : python_splitlines(s, a[0] && a[0]->truthy()))
      lines.push_back(Value::string(std::move(l)));
    return Value::list(std::move(lines));
  }
  if (name == "startswith" || name == "endswith") return str_affix(s, name, args);
  if (name == "find" || name == "rfind" || name == "index" || name == "count")
    return str_find(s, name, args);
  if (name == "replace") {
    LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"old", "new", "count"}, 2));
    if (!a[0]->is_string() || !a[1]->is_string())
      return invalid_argument("replace() arguments must be str");
    LS_ASSIGN_OR_RETURN(int64_t count, int_arg(name, a[2], -1));
    return Value::string(python_replace(s, a[0]->as_string(), a[1]->as_string(), count));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"affix"}, 1));
    LS_ASSIGN_OR_RETURN(auto affix, string_arg(name, a[0]));
    const std::string& x = affix ? *affix : std::string();
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0)
      return Value::string(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.size() >= x.size() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::string(s.substr(0, s.size() - x.size()));
    return Value::string(s);
  }
  if (name == "join") return str_join(s, args);
  if (name == "format") return str_format(s, args);
  LS_RETURN_IF_ERROR(bind_args(name, args, {}).status());
  if (name == "upper") return Value::string(python_upper(s));
  if (name == "lower") return Value::string(python_lower(s));
  if (name == "title") return Value::string(python_title(s));
  if (name == "capitalize") return Value::string(python_capitalize(s));
  return Value::boolean(python_str_test(s, name));  // the is* predicates
}

Result<Value> call_dict_method(const Dict& d, const std::string& name, const CallArgs& args) {
  if (name == "get") {
    LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"key", "default"}, 1));
    if (!is_hashable(*a[0]))
      return invalid_argument("unhashable type: '" + python_type_name(*a[0]) + "'");
    if (const Value* v = d.find(*a[0])) return *v;
    return a[1] ? *a[1] : Value::none();
  }
  LS_RETURN_IF_ERROR(bind_args(name, args, {}).status());
  if (name == "copy") {
    std::vector<std::pair<Value, Value>> items = d.items();
    return Value::dict(Dict(std::move(items)));
  }
  std::vector<Value> out;
  out.reserve(d.size());
  for (const auto& [k, v] : d.items()) {
    if (name == "keys") {
      out.push_back(k);
    } else if (name == "values") {
      out.push_back(v);
    } else {
      out.push_back(Value::tuple({k, v}));
    }
  }
  const SequenceForm form = name == "keys"     ? SequenceForm::kDictKeys
                            : name == "values" ? SequenceForm::kDictValues
                                               : SequenceForm::kDictItems;
  return Value::sequence(form, std::move(out));
}

Result<Value> call_list_method(const Sequence& s, const std::string& name, const CallArgs& args) {
  if (name == "copy") {
    LS_RETURN_IF_ERROR(bind_args(name, args, {}).status());
    return Value::sequence(s.form, s.items);
  }
  LS_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {"value"}, 1));
  int64_t count = 0;
  for (size_t i = 0; i < s.items.size(); ++i) {
    if (!python_equal(s.items[i], *a[0])) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") return invalid_argument(python_repr(*a[0]) + " is not in list");
  return Value::integer(count);
}

class BoundMethod : public Callable {
 public:
  BoundMethod(Value receiver, std::string name)
      : receiver_(std::move(receiver)), name_(std::move(name)) {}

  Result<Value> call(Interpreter& /*interp*/, CallArgs args) const override {
    if (receiver_.is_string()) return call_str_method(receiver_.as_string(), name_, args);
    if (receiver_.is_dict()) return call_dict_method(receiver_.as_dict(), name_, args);
    return call_list_method(receiver_.as_sequence(), name_, args);
  }
  std::string repr() const override {
    return "<built-in method " + name_ + " of " + python_type_name(receiver_) + " object>";
  }
  int depth() const override { return receiver_.depth() + 1; }

 private:
  Value receiver_;
  std::string name_;
};

Value bound(const Value& receiver, std::string_view name) {
  return Value::callable(std::make_shared<BoundMethod>(receiver, std::string(name)));
}

Value unsafe(const Value& receiver, std::string_view name) {
  return Value::undefined("access to attribute '" + std::string(name) + "' of '" +
                          python_type_name(receiver) + "' object is unsafe.");
}

}  // namespace

Value find_method(const Value& receiver, std::string_view name) {
  if (receiver.is_string()) {
    if (contains(kStrMethods, name) || contains(kMoreStrMethods, name))
      return bound(receiver, name);
    if (contains(kUnsupportedStrMethods, name))
      return Value::undefined("the str method '" + std::string(name) + "' is not supported");
  } else if (receiver.is_dict()) {
    if (contains(kDictMethods, name)) return bound(receiver, name);
    if (contains(kDictMutators, name)) return unsafe(receiver, name);
  } else if (receiver.is_list_like()) {
    const bool is_list = receiver.as_sequence().form == SequenceForm::kList;
    if (contains(kListMethods, name) && (is_list || name != "copy")) return bound(receiver, name);
    if (is_list && contains(kListMutators, name)) return unsafe(receiver, name);
  }
  return Value::undefined("");
}

}  // namespace ls::jinja
