// adapter_config.json parsing and PEFT's module matching rules:
//  - target_modules as a list: key == t or key ends with "." + t; as a string: re.fullmatch;
//  - rank_pattern / alpha_pattern: the first key k with re.match("(.*\.)?(k)$", key);
//  - layers_to_transform: the layer index in the key must be listed.
#include "model/lora_config.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace ls {

namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string> kKnownModules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};

bool is_truthy(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return false;
  const Json& v = j[key];
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

std::string last_component(const std::string& s) {
  auto dot = s.rfind('.');
  return dot == std::string::npos ? s : s.substr(dot + 1);
}

Status check_target_name(const std::string& t) {
  std::string last = last_component(t);
  if (last == "embed_tokens" || last == "lm_head")
    return unimplemented("LoRA on '" + last + "' (embedding/lm_head) is not supported");
  if (!kKnownModules.count(last))
    return invalid_argument("unknown target module '" + t +
                            "' (supported: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                            "down_proj)");
  return ok_status();
}

// libstdc++'s std::regex compiles and matches recursively: a long or deeply nested pattern
// from a user's adapter_config.json could overflow the stack. Bound both before compiling.
Status check_regex_bounds(const std::string& field, const std::string& re) {
  constexpr size_t kMaxLength = 2048;
  constexpr int kMaxDepth = 16;
  if (re.size() > kMaxLength)
    return invalid_argument(field + " regex is longer than " + std::to_string(kMaxLength) +
                            " characters");
  int depth = 0, deepest = 0;
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '\\') {
      ++i;
    } else if (re[i] == '(' || re[i] == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (re[i] == ')' || re[i] == ']') {
      --depth;
    }
  }
  if (deepest > kMaxDepth)
    return invalid_argument(field + " regex nests deeper than " + std::to_string(kMaxDepth) +
                            " groups");
  return ok_status();
}

Status parse_modules(const Json& v, const char* field, std::vector<std::string>* list,
                     std::optional<std::regex>* re, bool* all_linear) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (all_linear && s == "all-linear") {
      *all_linear = true;
      return ok_status();
    }
    const bool is_target = all_linear != nullptr;  // exclude_modules may name anything
    if (is_target &&
        (s.find("embed_tokens") != std::string::npos || s.find("lm_head") != std::string::npos))
      return unimplemented(std::string(field) + " regex names embed_tokens/lm_head: not supported");
    LS_RETURN_IF_ERROR(check_regex_bounds(field, s));
    try {
      *re = std::regex(s, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return invalid_argument(std::string(field) + " regex '" + s + "' is invalid: " + e.what());
    }
    return ok_status();
  }
  if (!v.is_array()) return invalid_argument(std::string(field) + " must be a list or a string");
  for (const auto& t : v) {
    if (!t.is_string()) return invalid_argument(std::string(field) + " entries must be strings");
    list->push_back(t.get<std::string>());
  }
  return ok_status();
}

bool list_matches(const std::vector<std::string>& list, const std::string& key) {
  for (const auto& t : list) {
    if (key == t) return true;
    if (key.size() > t.size() && key.compare(key.size() - t.size(), t.size(), t) == 0 &&
        key[key.size() - t.size() - 1] == '.')
      return true;
  }
  return false;
}

bool pattern_matches(const std::string& pattern, const std::string& key) {
  try {
    return std::regex_match(key, std::regex("(.*\\.)?(" + pattern + ")"));
  } catch (const std::regex_error&) {
    return false;
  }
}

}  // namespace

Result<LoraConfig> LoraConfig::from_json(const Json& j) {
  if (!j.is_object()) return invalid_argument("adapter config is not a JSON object");
  LoraConfig c;
  if (j.contains("peft_type") && j["peft_type"].is_string() && j["peft_type"] != "LORA")
    return unimplemented("peft_type '" + j["peft_type"].get<std::string>() + "' is not LoRA");
  if (is_truthy(j, "use_dora")) return unimplemented("DoRA adapters (use_dora) are not supported");
  if (is_truthy(j, "modules_to_save"))
    return unimplemented("modules_to_save (fully trained extra modules) is not supported");
  if (j.contains("bias") && j["bias"].is_string() && j["bias"] != "none")
    return unimplemented("LoRA bias '" + j["bias"].get<std::string>() + "' is not supported");
  if (is_truthy(j, "lora_bias")) return unimplemented("lora_bias is not supported");
  for (const char* k : {"trainable_token_indices", "target_parameters", "layer_replication",
                        "alora_invocation_tokens", "use_qalora", "use_bdlora"})
    if (is_truthy(j, k)) return unimplemented(std::string("'") + k + "' is not supported");

  if (!j.contains("r") || !j["r"].is_number_integer())
    return invalid_argument("missing integer 'r'");
  int64_t r = j["r"].get<int64_t>();
  if (r <= 0) return invalid_argument("rank r must be positive, got " + std::to_string(r));
  if (r > 65536) return invalid_argument("rank r too large: " + std::to_string(r));
  c.r = static_cast<int32_t>(r);
  c.lora_alpha = 8.0;  // PEFT's default
  if (j.contains("lora_alpha")) {
    if (!j["lora_alpha"].is_number()) return invalid_argument("lora_alpha must be a number");
    c.lora_alpha = j["lora_alpha"].get<double>();
  }
  if (j.contains("use_rslora") && j["use_rslora"].is_boolean()) c.use_rslora = j["use_rslora"];
  if (!j.contains("target_modules") || j["target_modules"].is_null())
    return invalid_argument("missing target_modules");
  LS_RETURN_IF_ERROR(parse_modules(j["target_modules"], "target_modules", &c.target_list,
                                   &c.target_regex, &c.target_all_linear));
  for (const auto& t : c.target_list) LS_RETURN_IF_ERROR(check_target_name(t));
  if (j.contains("exclude_modules") && !j["exclude_modules"].is_null())
    LS_RETURN_IF_ERROR(parse_modules(j["exclude_modules"], "exclude_modules", &c.exclude_list,
                                     &c.exclude_regex, nullptr));
  if (j.contains("layers_to_transform") && !j["layers_to_transform"].is_null()) {
    const Json& l = j["layers_to_transform"];
    std::vector<int32_t> layers;
    if (l.is_number_integer()) {
      layers.push_back(l.get<int32_t>());
    } else if (l.is_array()) {
      for (const auto& v : l) {
        if (!v.is_number_integer())
          return invalid_argument("layers_to_transform entries must be integers");
        layers.push_back(v.get<int32_t>());
      }
    } else {
      return invalid_argument("layers_to_transform must be an integer or a list");
    }
    c.layers_to_transform = layers;
  }
  for (const char* field : {"rank_pattern", "alpha_pattern"}) {
    if (!j.contains(field) || j[field].is_null()) continue;
    if (!j[field].is_object()) return invalid_argument(std::string(field) + " must be an object");
    for (auto it = j[field].begin(); it != j[field].end(); ++it) {
      if (!it.value().is_number())
        return invalid_argument(std::string(field) + " values must be numbers");
      try {
        LS_RETURN_IF_ERROR(check_regex_bounds(std::string(field) + " key", it.key()));
        std::regex probe("(.*\\.)?(" + it.key() + ")");
      } catch (const std::regex_error& e) {
        return invalid_argument(std::string(field) + " key '" + it.key() +
                                "' is not a valid regex");
      }
      if (std::string(field) == "rank_pattern") {
        if (!it.value().is_number_integer())
          return invalid_argument("rank_pattern rank for '" + it.key() + "' must be an integer");
        int64_t pr = it.value().get<int64_t>();
        if (pr <= 0)
          return invalid_argument("rank_pattern rank must be positive for '" + it.key() + "'");
        c.rank_pattern.emplace_back(it.key(), static_cast<int32_t>(pr));
      } else {
        c.alpha_pattern.emplace_back(it.key(), it.value().get<double>());
      }
    }
  }
  return c;
}

bool LoraConfig::targets(const std::string& key, int32_t layer) const {
  bool hit = target_all_linear ? kKnownModules.count(last_component(key)) > 0
             : target_regex    ? std::regex_match(key, *target_regex)
                               : list_matches(target_list, key);
  if (!hit) return false;
  if (exclude_regex && std::regex_match(key, *exclude_regex)) return false;
  if (list_matches(exclude_list, key)) return false;
  if (layers_to_transform) {
    bool listed = false;
    for (int32_t l : *layers_to_transform) listed |= (l == layer);
    if (!listed) return false;
  }
  return true;
}

int32_t LoraConfig::rank_for(const std::string& key) const {
  for (const auto& [pattern, rank] : rank_pattern)
    if (pattern_matches(pattern, key)) return rank;
  return r;
}

double LoraConfig::alpha_for(const std::string& key) const {
  for (const auto& [pattern, alpha] : alpha_pattern)
    if (pattern_matches(pattern, key)) return alpha;
  return lora_alpha;
}

float LoraConfig::scale_for(const std::string& key) const {
  double rank = rank_for(key);
  double alpha = alpha_for(key);
  return static_cast<float>(use_rslora ? alpha / std::sqrt(rank) : alpha / rank);
}

}  // namespace ls
