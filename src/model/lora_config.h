// LoraConfig: the parts of PEFT's adapter_config.json that decide which modules get LoRA and
// with what rank and scale, matched the way PEFT matches module keys.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace ls {

struct LoraConfig {
  int32_t r = 8;
  double lora_alpha = 8.0;
  bool use_rslora = false;
  bool target_all_linear = false;
  std::vector<std::string> target_list;    // list form of target_modules (suffix match)
  std::optional<std::regex> target_regex;  // string form (full match)
  std::vector<std::string> exclude_list;
  std::optional<std::regex> exclude_regex;
  std::optional<std::vector<int32_t>> layers_to_transform;
  std::vector<std::pair<std::string, int32_t>> rank_pattern;  // in file order
  std::vector<std::pair<std::string, double>> alpha_pattern;

  static Result<LoraConfig> from_json(const nlohmann::ordered_json& j);

  // Whether PEFT would wrap module `key` ("model.layers.3.self_attn.q_proj") of layer `layer`.
  bool targets(const std::string& key, int32_t layer) const;
  int32_t rank_for(const std::string& key) const;
  double alpha_for(const std::string& key) const;
  float scale_for(const std::string& key) const;
};

}  // namespace ls
