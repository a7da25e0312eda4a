// Filters with jinja2 3.1's semantics (filters.py): which ones walk Undefined as empty, which
// return iterators rather than lists, case-insensitive sort/unique, transformers' tojson.
#include "text/jinja_filters.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "text/jinja_access.h"
#include "text/jinja_format.h"
#include "text/jinja_interpreter.h"
#include "text/jinja_number.h"
#include "text/jinja_operators.h"
#include "text/jinja_unicode.h"

namespace ls::jinja {

namespace {

using Args = const CallArgs&;

Value str_value(std::string s) {
  return Value::string(std::move(s));
}

// Walks an iterable for a filter, charging one step per item.
Result<std::vector<Value>> walk(Interpreter& interp, const Value& v) {
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v));
  LS_RETURN_IF_ERROR(interp.charge_steps(static_cast<double>(items.size())));
  return items;
}

Value iterator(std::vector<Value> items) {
  return Value::sequence(SequenceForm::kIterator, std::move(items));
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0, each by subscript.
std::vector<Value> attribute_path(const Value& attribute) {
  std::vector<Value> parts;
  if (attribute.is_none() || attribute.is_undefined()) return parts;
  if (!attribute.is_string()) return {attribute};
  for (auto& p : python_split(attribute.as_string(), std::string("."), -1, false)) {
    const bool digits =
        !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
    parts.push_back(digits ? Value::integer(std::strtoll(p.c_str(), nullptr, 10))
                           : Value::string(p));
  }
  return parts;
}

Result<Value> follow(Value item, const std::vector<Value>& path, const Value* fallback) {
  for (const Value& part : path) {
    LS_ASSIGN_OR_RETURN(item, get_item(item, part));
    if (fallback && item.is_undefined()) item = *fallback;
  }
  return item;
}

Value lower_if_string(const Value& v) {
  return v.is_string() ? Value::string(python_lower(v.as_string())) : v;
}

bool flag(const Value* v) {
  return v && v->truthy();
}

// ---------------------------------------------------------------- string filters

Result<Value> f_trim(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("trim", args, {"chars"}));
  LS_ASSIGN_OR_RETURN(auto chars, string_arg("trim", a[0]));
  return str_value(python_strip(python_str(in), chars, true, true));
}

Result<Value> f_upper(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("upper", args, {}).status());
  return str_value(python_upper(python_str(in)));
}

Result<Value> f_lower(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("lower", args, {}).status());
  return str_value(python_lower(python_str(in)));
}

Result<Value> f_capitalize(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("capitalize", args, {}).status());
  return str_value(python_capitalize(python_str(in)));
}

// jinja2's title: words start after whitespace, '-', brackets or '<'; each word is its first
// code point upper-cased and the rest lower-cased.
Result<Value> f_title(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("title", args, {}).status());
  const std::u32string cps = decode_utf8(python_str(in));
  auto is_sep = [](char32_t c) {
    return is_python_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    const bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    const std::string chunk = encode_utf8(std::u32string_view(cps).substr(i, j - i));
    if (sep) {
      out += chunk;
    } else {
      std::string first;
      append_utf8(&first, cps[i]);
      out += python_upper(first) +
             python_lower(encode_utf8(std::u32string_view(cps).substr(i + 1, j - i - 1)));
    }
    i = j;
  }
  return str_value(std::move(out));
}

Result<Value> f_replace(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("replace", args, {"old", "new", "count"}, 2));
  LS_ASSIGN_OR_RETURN(int64_t count, int_arg("replace", a[2], -1));
  std::string out = python_replace(python_str(in), python_str(*a[0]), python_str(*a[1]), count);
  LS_RETURN_IF_ERROR(interp.charge_bytes(static_cast<double>(out.size())));
  return str_value(std::move(out));
}

Result<Value> f_indent(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("indent", args, {"width", "first", "blank"}));
  std::string indention;
  if (a[0] && a[0]->is_string()) {
    indention = a[0]->as_string();
  } else {
    LS_ASSIGN_OR_RETURN(int64_t width, int_arg("indent", a[0], 4));
    indention.assign(static_cast<size_t>(std::clamp<int64_t>(width, 0, 1 << 16)), ' ');
  }
  // jinja2 appends a newline first so that splitlines keeps a trailing empty line.
  const std::vector<std::string> lines = python_splitlines(python_str(in) + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    if (i && (flag(a[2]) || !lines[i].empty())) out += indention;
    out += lines[i];
  }
  if (flag(a[1])) out = indention + out;
  LS_RETURN_IF_ERROR(interp.charge_bytes(static_cast<double>(out.size())));
  return str_value(std::move(out));
}

Result<Value> f_center(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("center", args, {"width"}));
  LS_ASSIGN_OR_RETURN(int64_t width, int_arg("center", a[0], 80));
  std::string s = python_str(in);
  const auto len = static_cast<int64_t>(count_code_points(s));
  if (width <= len) return str_value(std::move(s));
  width = std::min<int64_t>(width, 1 << 20);
  const int64_t marg = width - len;
  const int64_t left = marg / 2 + (marg & width & 1);  // CPython's str.center rounding
  return str_value(std::string(static_cast<size_t>(left), ' ') + s +
                   std::string(static_cast<size_t>(marg - left), ' '));
}

Result<Value> f_string(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("string", args, {}).status());
  return str_value(python_str(in));
}

Result<Value> f_escape(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("escape", args, {}).status());
  std::string out;
  for (char c : python_str(in)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return str_value(std::move(out));
}

Result<Value> f_wordcount(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("wordcount", args, {}).status());
  int64_t words = 0;
  bool in_word = false;
  for (char32_t cp : decode_utf8(python_str(in))) {
    std::string ch;
    append_utf8(&ch, cp);
    const bool w = cp == '_' || python_str_test(ch, "isalnum");  // regex \w
    if (w && !in_word) ++words;
    in_word = w;
  }
  return Value::integer(words);
}

Result<Value> f_tojson(Interpreter& interp, const Value& in, Args args) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  LS_ASSIGN_OR_RETURN(
      auto a, bind_args("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonDumpOptions o;
  o.ensure_ascii = flag(a[0]);
  if (a[1] && !a[1]->is_none()) {
    if (a[1]->is_string()) {
      o.indent = a[1]->as_string();
    } else {
      LS_ASSIGN_OR_RETURN(int64_t n, int_arg("tojson", a[1], 0));
      o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(n, 0, 1 << 10)), ' ');
    }
    o.item_separator = ",";
  }
  if (a[2] && !a[2]->is_none()) {
    LS_ASSIGN_OR_RETURN(std::vector<Value> seps, iterate(*a[2]));
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
      return invalid_argument("tojson separators must be a pair of strings");
    o.item_separator = seps[0].as_string();
    o.key_separator = seps[1].as_string();
  }
  o.sort_keys = flag(a[3]);
  LS_ASSIGN_OR_RETURN(std::string out, python_json_dumps(in, o));
  LS_RETURN_IF_ERROR(interp.charge_bytes(static_cast<double>(out.size())));
  return str_value(std::move(out));
}

// ---------------------------------------------------------------- sequence filters

Result<Value> f_length(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("length", args, {}).status());
  LS_ASSIGN_OR_RETURN(int64_t n, python_len(in));
  return Value::integer(n);
}

Result<Value> f_first(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("first", args, {}).status());
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(in));
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Result<Value> f_last(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("last", args, {}).status());
  if (in.is_sequence() && in.as_sequence().form == SequenceForm::kIterator)
    return invalid_argument("'generator' object is not reversible");
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(in));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Result<Value> f_list(Interpreter& interp, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("list", args, {}).status());
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  return Value::list(std::move(items));
}

Result<Value> f_reverse(Interpreter& interp, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("reverse", args, {}).status());
  if (in.is_string()) {
    std::u32string cps = decode_utf8(in.as_string());
    std::reverse(cps.begin(), cps.end());
    return str_value(encode_utf8(cps));
  }
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  std::reverse(items.begin(), items.end());
  // reversed() of a list, tuple or dict is an iterator; a generator becomes a reversed list.
  if (in.is_sequence() && in.as_sequence().form == SequenceForm::kIterator)
    return Value::list(std::move(items));
  return iterator(std::move(items));
}

Result<Value> f_join(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("join", args, {"d", "attribute"}));
  const std::string sep = a[0] ? python_str(*a[0]) : "";
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  const std::vector<Value> path = a[1] ? attribute_path(*a[1]) : std::vector<Value>{};
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    LS_ASSIGN_OR_RETURN(Value v, follow(items[i], path, nullptr));
    out += python_str(v);
  }
  LS_RETURN_IF_ERROR(interp.charge_bytes(static_cast<double>(out.size())));
  return str_value(std::move(out));
}

Result<Value> f_default(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("default", args, {"default_value", "boolean"}));
  if (in.is_undefined() || (flag(a[1]) && !in.truthy())) return a[0] ? *a[0] : str_value("");
  return in;
}

Result<Value> f_items(Interpreter& interp, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("items", args, {}).status());
  if (in.is_undefined()) return iterator({});
  if (!in.is_dict()) return invalid_argument("Can only get item pairs from a mapping.");
  LS_RETURN_IF_ERROR(interp.charge_steps(static_cast<double>(in.as_dict().size())));
  std::vector<Value> pairs;
  for (const auto& [k, v] : in.as_dict().items()) pairs.push_back(Value::tuple({k, v}));
  return iterator(std::move(pairs));
}

// Values of (sort key, value) pairs in key order, as Python's sorted: stable also with
// reverse=True (equal keys keep their order); an unorderable pair of keys is an error.
Result<Value> sorted_by_key(std::vector<std::pair<Value, Value>> keyed, bool reverse) {
  Status failed;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    auto r = reverse ? python_order(y.first, x.first, OrderOp::kLt)
                     : python_order(x.first, y.first, OrderOp::kLt);
    if (!r.ok()) failed = r.status();
    return r.ok() && r.value();
  });
  LS_RETURN_IF_ERROR(failed);
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Result<Value> f_dictsort(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("dictsort", args, {"case_sensitive", "by", "reverse"}));
  if (!in.is_dict()) return invalid_argument("dictsort expects a mapping");
  const std::string by = a[1] ? python_str(*a[1]) : "key";
  if (by != "key" && by != "value")
    return invalid_argument("You can only sort by either \"key\" or \"value\"");
  LS_RETURN_IF_ERROR(interp.charge_steps(static_cast<double>(in.as_dict().size())));
  std::vector<std::pair<Value, Value>> keyed;  // (sort key, pair)
  for (const auto& [k, v] : in.as_dict().items()) {
    const Value& key = by == "key" ? k : v;
    keyed.emplace_back(flag(a[0]) ? key : lower_if_string(key), Value::tuple({k, v}));
  }
  return sorted_by_key(std::move(keyed), flag(a[2]));
}

// sort/unique/min/max key: the attribute path (sort allows "a,b"), lower-cased unless
// case_sensitive.
Result<Value> sort_key(const Value& item, const std::vector<std::vector<Value>>& paths,
                       bool case_sensitive, bool as_list) {
  std::vector<Value> keys;
  for (const auto& path : paths) {
    LS_ASSIGN_OR_RETURN(Value k, follow(item, path, nullptr));
    keys.push_back(case_sensitive ? k : lower_if_string(k));
  }
  if (!as_list) return keys.front();
  return Value::list(std::move(keys));
}

Result<Value> f_sort(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("sort", args, {"reverse", "case_sensitive", "attribute"}));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  std::vector<std::vector<Value>> paths;
  if (a[2] && a[2]->is_string()) {
    for (auto& part : python_split(a[2]->as_string(), std::string(","), -1, false))
      paths.push_back(attribute_path(Value::string(part)));
  } else {
    paths.push_back(a[2] ? attribute_path(*a[2]) : std::vector<Value>{});
  }
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value k, sort_key(item, paths, flag(a[1]), true));
    keyed.emplace_back(std::move(k), std::move(item));
  }
  return sorted_by_key(std::move(keyed), flag(a[0]));
}

Result<Value> f_unique(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("unique", args, {"case_sensitive", "attribute"}));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  const std::vector<std::vector<Value>> paths = {a[1] ? attribute_path(*a[1])
                                                      : std::vector<Value>{}};
  std::vector<Value> seen, out;
  for (Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value k, sort_key(item, paths, flag(a[0]), false));
    if (!is_hashable(k)) return invalid_argument("unhashable type: '" + python_type_name(k) + "'");
    LS_RETURN_IF_ERROR(interp.charge_steps(static_cast<double>(seen.size())));
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return python_equal(s, k); }))
      continue;
    seen.push_back(std::move(k));
    out.push_back(std::move(item));
  }
  return iterator(std::move(out));
}

Result<Value> min_max(Interpreter& interp, const Value& in, Args args, bool want_max) {
  LS_ASSIGN_OR_RETURN(auto a,
                      bind_args(want_max ? "max" : "min", args, {"case_sensitive", "attribute"}));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const std::vector<std::vector<Value>> paths = {a[1] ? attribute_path(*a[1])
                                                      : std::vector<Value>{}};
  size_t best = 0;
  LS_ASSIGN_OR_RETURN(Value best_key, sort_key(items[0], paths, flag(a[0]), false));
  for (size_t i = 1; i < items.size(); ++i) {
    LS_ASSIGN_OR_RETURN(Value k, sort_key(items[i], paths, flag(a[0]), false));
    // Python's max/min keep the first of equal items.
    LS_ASSIGN_OR_RETURN(bool better,
                        python_order(k, best_key, want_max ? OrderOp::kGt : OrderOp::kLt));
    if (better) best = i, best_key = std::move(k);
  }
  return items[best];
}

Result<Value> f_max(Interpreter& interp, const Value& in, Args args) {
  return min_max(interp, in, args, true);
}
Result<Value> f_min(Interpreter& interp, const Value& in, Args args) {
  return min_max(interp, in, args, false);
}

Result<Value> f_sum(Interpreter& interp, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("sum", args, {"attribute", "start"}));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  const std::vector<Value> path = a[0] ? attribute_path(*a[0]) : std::vector<Value>{};
  Value total = a[1] ? *a[1] : Value::integer(0);
  for (const Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value v, follow(item, path, nullptr));
    if (total.is_string())
      return invalid_argument("sum() can't sum strings [use ''.join(seq) instead]");
    LS_ASSIGN_OR_RETURN(total, binary_op(interp, BinaryOp::kAdd, total, v));
  }
  return total;
}

// map(attribute="x", default=...) or map("filter", args...).
Result<Value> f_map(Interpreter& interp, const Value& in, Args args) {
  if (!in.truthy()) return iterator({});
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  std::vector<Value> out;
  if (args.positional.empty()) {
    const Value* attribute = nullptr;
    const Value* fallback = nullptr;
    for (const auto& [k, v] : args.keyword) {
      if (k == "attribute") {
        attribute = &v;
      } else if (k == "default") {
        fallback = &v;
      } else {
        return invalid_argument("Unexpected keyword argument '" + k + "'");
      }
    }
    if (!attribute) return invalid_argument("map requires a filter argument");
    const std::vector<Value> path = attribute_path(*attribute);
    const Value* def = fallback && !fallback->is_none() ? fallback : nullptr;
    for (const Value& item : items) {
      LS_ASSIGN_OR_RETURN(Value v, follow(item, path, def));
      out.push_back(std::move(v));
    }
    return iterator(std::move(out));
  }
  const std::string name = python_str(args.positional[0]);
  const FilterFn fn = find_filter(name);
  if (!fn || fn == refused_filter) return invalid_argument("No filter named '" + name + "'.");
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value v, fn(interp, item, rest));
    out.push_back(std::move(v));
  }
  return iterator(std::move(out));
}

// select/reject/selectattr/rejectattr: keep the items whose (attribute's) test passes.
Result<Value> select_or_reject(Interpreter& interp, const Value& in, Args args, bool keep,
                               bool by_attribute) {
  if (!in.truthy()) return iterator({});
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(interp, in));
  size_t off = 0;
  std::vector<Value> path;
  if (by_attribute) {
    if (args.positional.empty()) return invalid_argument("Missing parameter for attribute name");
    path = attribute_path(args.positional[0]);
    off = 1;
  }
  TestFn test = nullptr;
  CallArgs rest;
  if (args.positional.size() > off) {
    const std::string name = python_str(args.positional[off]);
    test = find_test(name);
    if (!test) return invalid_argument("No test named '" + name + "'.");
    rest.positional.assign(args.positional.begin() + static_cast<long>(off) + 1,
                           args.positional.end());
    rest.keyword = args.keyword;
  }
  std::vector<Value> out;
  for (Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value v, follow(item, path, nullptr));
    bool pass = v.truthy();
    if (test) {
      LS_ASSIGN_OR_RETURN(pass, test(interp, v, rest));
    }
    if (pass == keep) out.push_back(std::move(item));
  }
  return iterator(std::move(out));
}

Result<Value> f_select(Interpreter& i, const Value& in, Args a) {
  return select_or_reject(i, in, a, true, false);
}
Result<Value> f_reject(Interpreter& i, const Value& in, Args a) {
  return select_or_reject(i, in, a, false, false);
}
Result<Value> f_selectattr(Interpreter& i, const Value& in, Args a) {
  return select_or_reject(i, in, a, true, true);
}
Result<Value> f_rejectattr(Interpreter& i, const Value& in, Args a) {
  return select_or_reject(i, in, a, false, true);
}

Result<Value> f_attr(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("attr", args, {"name"}, 1));
  const std::string name = python_str(*a[0]);
  if (in.is_dict()) {  // attr() skips dict keys: only real attributes (the methods)
    LS_ASSIGN_OR_RETURN(Value v, get_attribute(in, name));
    if (in.as_dict().find(name) && !v.is_callable())
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    return v;
  }
  return get_attribute(in, name);
}

// ---------------------------------------------------------------- number filters

Result<Value> f_int(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("int", args, {"default", "base"}));
  LS_ASSIGN_OR_RETURN(int64_t base, int_arg("int", a[1], 10));
  const Value fallback = a[0] ? *a[0] : Value::integer(0);
  return python_int_conversion(in, base, fallback);
}

Result<Value> f_float(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("float", args, {"default"}));
  const Value fallback = a[0] ? *a[0] : Value::number(0.0);
  return python_float_conversion(in, fallback);
}

Result<Value> f_abs(Interpreter&, const Value& in, Args args) {
  LS_RETURN_IF_ERROR(bind_args("abs", args, {}).status());
  if (in.is_undefined()) return undefined_error(in);
  if (in.is_float()) return Value::number(std::fabs(in.as_double()));
  if (in.is_integral()) {
    if (in.as_int() == INT64_MIN) return invalid_argument("integer result does not fit in 64 bits");
    return Value::integer(std::llabs(in.as_int()));
  }
  return invalid_argument("bad operand type for abs(): '" + python_type_name(in) + "'");
}

Result<Value> f_round(Interpreter&, const Value& in, Args args) {
  LS_ASSIGN_OR_RETURN(auto a, bind_args("round", args, {"precision", "method"}));
  LS_ASSIGN_OR_RETURN(int64_t precision, int_arg("round", a[0], 0));
  const std::string method = a[1] ? python_str(*a[1]) : "common";
  return python_round(in, precision, method);
}

template <typename Fn>
struct Named {
  std::string_view name;
  Fn fn;
};

constexpr Named<FilterFn> kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_string},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
    // jinja2 has these; templates that reach them get a clear refusal when they run.
    {"batch", refused_filter},
    {"filesizeformat", refused_filter},
    {"format", refused_filter},
    {"groupby", refused_filter},
    {"pprint", refused_filter},
    {"random", refused_filter},
    {"slice", refused_filter},
    {"striptags", refused_filter},
    {"truncate", refused_filter},
    {"urlencode", refused_filter},
    {"urlize", refused_filter},
    {"wordwrap", refused_filter},
    {"xmlattr", refused_filter},
};

}  // namespace

Result<Value> refused_filter(Interpreter&, const Value&, const CallArgs&) {
  return unimplemented("this filter is not supported");
}

FilterFn find_filter(std::string_view name) {
  for (const auto& f : kFilters)
    if (f.name == name) return f.fn;
  return nullptr;
}

}  // namespace ls::jinja
