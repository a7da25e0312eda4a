// range/dict/namespace as jinja2 3.1 defines them, with the sandbox's range limit.
#include "text/jinja_globals.h"

#include <algorithm>
#include <functional>

#include "text/jinja_access.h"
#include "text/jinja_format.h"

namespace ls::jinja {

namespace {

// jinja2.sandbox.MAX_RANGE.
constexpr int64_t kMaxRange = 100000;

// dict(*args, **kwargs): a mapping or an iterable of pairs, then keyword arguments.
Result<std::vector<std::pair<Value, Value>>> dict_items(std::string_view fn, const CallArgs& args) {
  if (args.positional.size() > 1)
    return invalid_argument(std::string(fn) + " expected at most 1 argument, got " +
                            std::to_string(args.positional.size()));
  std::vector<std::pair<Value, Value>> items;
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      items = src.as_dict().items();
    } else {
      LS_ASSIGN_OR_RETURN(std::vector<Value> pairs, iterate(src));
      for (const Value& p : pairs) {
        LS_ASSIGN_OR_RETURN(std::vector<Value> kv, iterate(p));
        if (kv.size() != 2)
          return invalid_argument("dictionary update sequence element has length " +
                                  std::to_string(kv.size()) + "; 2 is required");
        if (!is_hashable(kv[0]))
          return invalid_argument("unhashable type: '" + python_type_name(kv[0]) + "'");
        items.emplace_back(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) items.emplace_back(Value::string(k), v);
  return items;
}

Result<Value> call_range(const CallArgs& args) {
  if (!args.keyword.empty()) return invalid_argument("range() takes no keyword arguments");
  const size_t n = args.positional.size();
  if (n < 1 || n > 3)
    return invalid_argument("range expected 1 to 3 arguments, got " + std::to_string(n));
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < n; ++i) {
    LS_ASSIGN_OR_RETURN(v[i], int_arg("range", &args.positional[i], 0));
  }
  int64_t start = n == 1 ? 0 : v[0];
  int64_t stop = n == 1 ? v[0] : v[1];
  int64_t step = n == 3 ? v[2] : 1;
  if (step == 0) return invalid_argument("range() arg 3 must not be zero");
  // Length computed in long double: no overflow for any int64 bounds.
  long double len = 0;
  if (step > 0 && start < stop) len = ((long double)stop - start + step - 1) / step;
  if (step < 0 && start > stop) len = ((long double)start - stop - step - 1) / -step;
  const auto count = static_cast<int64_t>(len);
  if (count > kMaxRange)
    return invalid_argument(
        "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(Value::integer(start + i * step));
  return Value::list(std::move(out));
}

Result<Value> call_namespace(const CallArgs& args) {
  LS_ASSIGN_OR_RETURN(auto items, dict_items("namespace", args));
  std::vector<std::pair<std::string, Value>> attrs;
  for (auto& [k, v] : items) {
    if (!k.is_string()) return invalid_argument("namespace() attribute names must be strings");
    auto it = std::find_if(attrs.begin(), attrs.end(),
                           [&](const auto& a) { return a.first == k.as_string(); });
    if (it != attrs.end()) {
      it->second = std::move(v);
    } else {
      attrs.emplace_back(k.as_string(), std::move(v));
    }
  }
  auto ns = std::make_shared<Namespace>(std::move(attrs));
  if (ns->depth() > kMaxValueDepth)
    return invalid_argument("value nests deeper than " + std::to_string(kMaxValueDepth) +
                            " levels");
  return Value::object(std::move(ns));
}

class Builtin : public Callable {
 public:
  using Fn = std::function<Result<Value>(const CallArgs&)>;
  Builtin(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  Result<Value> call(Interpreter& interp, CallArgs args) const override {
    // One step per call keeps loops of range()/dict() calls inside the step budget.
    LS_RETURN_IF_ERROR(interp.charge_steps(1));
    return fn_(args);
  }
  std::string repr() const override { return "<built-in function " + name_ + ">"; }

 private:
  std::string name_;
  Fn fn_;
};

}  // namespace

Namespace::Namespace(std::vector<std::pair<std::string, Value>> attrs) : attrs_(std::move(attrs)) {
  for (const auto& [k, v] : attrs_) depth_ = std::max(depth_, v.depth() + 1);
}

Value Namespace::attribute(std::string_view name) const {
  for (const auto& [k, v] : attrs_)
    if (k == name) return v;
  return Value::undefined("'jinja2.utils.Namespace object' has no attribute '" + std::string(name) +
                          "'");
}

std::string Namespace::repr() const {
  std::vector<std::pair<Value, Value>> items;
  for (const auto& [k, v] : attrs_) items.emplace_back(Value::string(k), v);
  return "<Namespace " + python_repr(Value::dict(Dict(std::move(items)))) + ">";
}

Status Namespace::set(std::string_view name, Value value) {
  if (value.holds_objects())
    return unimplemented(
        "storing a namespace, macro or function inside a namespace is not supported");
  if (value.depth() + 1 > kMaxValueDepth)
    return invalid_argument("value nests deeper than " + std::to_string(kMaxValueDepth) +
                            " levels");
  depth_ = std::max(depth_, value.depth() + 1);
  for (auto& [k, v] : attrs_)
    if (k == name) {
      v = std::move(value);
      return ok_status();
    }
  attrs_.emplace_back(std::string(name), std::move(value));
  return ok_status();
}

void add_default_globals(Scope* scope) {
  auto add = [&](const char* name, Builtin::Fn fn) {
    scope->set(name, Value::callable(std::make_shared<Builtin>(name, std::move(fn))));
  };
  add("range", call_range);
  add("namespace", call_namespace);
  add("dict", [](const CallArgs& args) -> Result<Value> {
    LS_ASSIGN_OR_RETURN(auto items, dict_items("dict", args));
    Dict d(std::move(items));
    if (d.depth() > kMaxValueDepth)
      return invalid_argument("value nests deeper than " + std::to_string(kMaxValueDepth) +
                              " levels");
    return Value::dict(std::move(d));
  });
  for (const char* name : {"lipsum", "cycler", "joiner"}) {
    const std::string message = std::string("the global '") + name + "' is not supported";
    add(name, [message](const CallArgs&) -> Result<Value> { return unimplemented(message); });
  }
}

}  // namespace ls::jinja
