// Python's int(), float() and round() as jinja2's int/float/round filters call them.
#pragma once

#include <cstdint>
#include <string>

#include "text/jinja_value.h"

namespace ls::jinja {

// The int filter: int(x) or int(str, base); "4.2" goes through float; what Python cannot
// convert gives `fallback`. Undefined and inf fail, as they escape jinja2's except clause.
Result<Value> python_int_conversion(const Value& v, int64_t base, const Value& fallback);
// The float filter: float(x), `fallback` when Python cannot convert.
Result<Value> python_float_conversion(const Value& v, const Value& fallback);
// The round filter: method "common" is Python's round() (half to even, on the exact binary
// value), "ceil" and "floor" scale by 10**precision.
Result<Value> python_round(const Value& v, int64_t precision, const std::string& method);

}  // namespace ls::jinja
