// Typed tokenizer.json field reads; each error names the field and what was expected.
#include "text/tokenizer_json.h"

#include <limits>

#include "text/utf8.h"

namespace ls::tok {

namespace {
const Json* field(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}
}  // namespace

Result<std::string> json_type(const Json& j, const char* what) {
  if (!j.is_object()) return invalid_argument(std::string(what) + " must be a JSON object");
  const Json* t = field(j, "type");
  if (!t || !t->is_string()) return invalid_argument(std::string(what) + " has no 'type'");
  return t->get<std::string>();
}

Result<bool> json_bool(const Json& j, const char* key, bool fallback) {
  const Json* v = field(j, key);
  if (!v) return fallback;
  if (!v->is_boolean()) return invalid_argument(std::string("'") + key + "' must be a boolean");
  return v->get<bool>();
}

Result<std::string> json_string(const Json& j, const char* key, bool required) {
  const Json* v = field(j, key);
  if (!v) {
    if (required) return invalid_argument(std::string("missing string field '") + key + "'");
    return std::string();
  }
  if (!v->is_string()) return invalid_argument(std::string("'") + key + "' must be a string");
  return v->get<std::string>();
}

Result<std::optional<std::string>> json_opt_string(const Json& j, const char* key) {
  const Json* v = field(j, key);
  if (!v) return std::optional<std::string>();
  if (!v->is_string()) return invalid_argument(std::string("'") + key + "' must be a string");
  return std::optional<std::string>(v->get<std::string>());
}

Result<int64_t> json_uint(const Json& j, const char* key, int64_t fallback) {
  const Json* v = field(j, key);
  if (!v) return fallback;
  auto bad = [&] {
    return invalid_argument(std::string("'") + key + "' must be a non-negative 32-bit integer");
  };
  if (!v->is_number_integer()) return bad();
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int32_t>::max())) return bad();
    return static_cast<int64_t>(u);
  }
  int64_t x = v->get<int64_t>();
  if (x < 0 || x > std::numeric_limits<int32_t>::max()) return bad();
  return x;
}

Result<std::string> json_char(const Json& j, const char* key) {
  LS_ASSIGN_OR_RETURN(std::string s, json_string(j, key, true));
  if (s.empty() || !is_valid_utf8(s) || valid_sequence_length(s, 0) != s.size())
    return invalid_argument(std::string("'") + key + "' must be exactly one character");
  return s;
}

Result<const Json*> json_array(const Json& j, const char* key) {
  const Json* v = field(j, key);
  if (!v || !v->is_array()) return invalid_argument(std::string("'") + key + "' must be an array");
  return v;
}

Result<JsonPattern> json_pattern(const Json& j, const char* key) {
  const Json* v = field(j, key);
  if (!v || !v->is_object() || v->size() != 1)
    return invalid_argument(std::string("'") + key +
                            "' must be {\"String\": ...} or {\"Regex\": ...}");
  JsonPattern p;
  if (v->contains("String") && (*v)["String"].is_string()) {
    p.text = (*v)["String"].get<std::string>();
  } else if (v->contains("Regex") && (*v)["Regex"].is_string()) {
    p.text = (*v)["Regex"].get<std::string>();
    p.is_regex = true;
  } else {
    return invalid_argument(std::string("'") + key +
                            "' must be {\"String\": ...} or {\"Regex\": ...}");
  }
  return p;
}

}  // namespace ls::tok
