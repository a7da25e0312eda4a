// How Python writes values: str() (what {{ x }} prints), repr() (items inside a printed list or
// dict), float repr, and json.dumps as transformers' `tojson` filter calls it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "text/jinja_value.h"

namespace ls::jinja {

// Python's str(x): strings as they are, None/True/False, floats as repr, containers as repr.
// Undefined prints as "" (jinja2's default Undefined).
std::string python_str(const Value& v);
// Python's repr(x): strings quoted and escaped ('it\'s' -> "it's"), Undefined as "Undefined".
std::string python_repr(const Value& v);
// float.__repr__: the shortest digits that round-trip, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string python_float_repr(double d);
std::string python_string_repr(std::string_view s);

// The json.dumps arguments transformers' tojson passes through.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // none: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// json.dumps(v, ...). Fails, as Python does, for values JSON cannot hold (Undefined,
// namespaces, generators) and dict keys other than str/int/float/bool/None.
Result<std::string> python_json_dumps(const Value& v, const JsonDumpOptions& options);

// Converts parsed JSON (messages, tools, extra context) into template values; objects keep
// their key order, as Python's json.loads does. Fails beyond kMaxValueDepth or 64-bit ints.
Result<Value> value_from_json(const nlohmann::ordered_json& j);

}  // namespace ls::jinja
