// Reading values the way jinja2's sandboxed environment does: attributes (x.name), items
// (x[key]), slices, iteration, len(), the str/dict/list methods templates call, and binding call
// arguments to parameters as Python does.
#pragma once

#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "text/jinja_value.h"

namespace ls::jinja {

// x.name: a method of str/dict/list (bound), a dict key, a namespace or loop attribute, or
// Undefined. Fails only when `obj` is itself Undefined (jinja2's UndefinedError).
Result<Value> get_attribute(const Value& obj, std::string_view name);
// x[key]: a dict key, a list/str index (negative from the end), falling back to a method for
// string keys, or Undefined. Fails only when `obj` is Undefined.
Result<Value> get_item(const Value& obj, const Value& key);
// x[start:stop:step] on str, list or tuple; Undefined for other types, as jinja2 returns.
Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python's iter(): list/tuple items, dict keys, str code points, nothing for Undefined.
Result<std::vector<Value>> iterate(const Value& v);
// Python's len(); fails for numbers, None and iterators (generators have no len()).
Result<int64_t> python_len(const Value& v);
// "'str object'" as jinja2 names a value's type in undefined-attribute messages.
std::string object_type_repr(const Value& v);
// The message an operation on an Undefined value fails with.
Status undefined_error(const Value& undefined);

// Binds positional and keyword arguments to `params` like a Python signature; each result is
// the bound argument or null. The first `required` parameters must be given.
Result<std::vector<const Value*>> bind_args(std::string_view function, const CallArgs& args,
                                            std::initializer_list<std::string_view> params,
                                            size_t required = 0);
// A bound argument as an integer (bool counts, as in Python), or `fallback` when absent/None.
Result<int64_t> int_arg(std::string_view function, const Value* v, int64_t fallback);
Result<std::optional<std::string>> string_arg(std::string_view function, const Value* v);

}  // namespace ls::jinja
