// Typed field reads for tokenizer.json components: a missing or mistyped field becomes a Status
// naming the field, never a nlohmann exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace ls::tok {

using Json = nlohmann::json;

// The component's "type" string; `what` names the component in the error ("normalizer").
Result<std::string> json_type(const Json& j, const char* what);
// A boolean field; missing or null gives `fallback`.
Result<bool> json_bool(const Json& j, const char* key, bool fallback);
// A string field; missing or null is an error when `required`, else "".
Result<std::string> json_string(const Json& j, const char* key, bool required);
// A string field where null and missing mean "none".
Result<std::optional<std::string>> json_opt_string(const Json& j, const char* key);
// A non-negative integer field that fits int32.
Result<int64_t> json_uint(const Json& j, const char* key, int64_t fallback);
// A string field holding exactly one character (Metaspace's replacement, Strip's content).
Result<std::string> json_char(const Json& j, const char* key);
// The array field `key`; missing, null or not an array is an error.
Result<const Json*> json_array(const Json& j, const char* key);

// An HF pattern: {"String": "..."} (literal) or {"Regex": "..."}.
struct JsonPattern {
  std::string text;
  bool is_regex = false;
};
Result<JsonPattern> json_pattern(const Json& j, const char* key);

}  // namespace ls::tok
