// jinja2's built-in filters and tests as chat templates use them, plus transformers' tojson
// (json.dumps with ensure_ascii=False, indent, separators, sort_keys).
#pragma once

#include <string_view>

#include "text/jinja_ast.h"

namespace ls::jinja {

// The filter or test with that name; null when jinja2 has none. Filters jinja2 has but we do
// not implement (format, groupby, ...) resolve to refused_filter, which fails when run.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
Result<Value> refused_filter(Interpreter& interp, const Value& input, const CallArgs& args);

}  // namespace ls::jinja
