// The fields of /v1/completions and /v1/chat/completions requests, parsed and range-checked
// (JSON shape and parameter ranges: the first validation steps, before tokenizing anything).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/generation.h"
#include "server/api_error.h"

namespace ls::server {

// Upper bounds for what one request may ask (documented in docs/SERVER.md).
struct RequestLimits {
  int32_t max_n = 16;
  int32_t max_prompts = 64;  // entries of a completions prompt list
  int32_t max_stop = 16;
  size_t max_stop_bytes = 256;
  int32_t max_stop_token_ids = 64;
  int32_t max_completion_logprobs = 20;  // completions' integer `logprobs`
};

struct GenerationParams {
  bool chat = false;
  std::string model;  // empty: the base model
  // completions: each prompt is text or token ids
  std::vector<std::string> text_prompts;
  std::vector<std::vector<int32_t>> id_prompts;
  bool prompt_is_ids = false;
  // chat
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;  // null when absent
  bool add_generation_prompt = true;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();

  std::optional<int32_t> max_tokens;
  SamplingConfig sampling;
  bool seed_given = false;
  int32_t n = 1;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;     // return log-probs of the chosen tokens
  int32_t top_logprobs = 0;  // alternatives per token
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  bool echo = false;
  std::string user;
  std::vector<std::string> unknown_fields;
};

// Parses a request body. Errors are 400s naming the offending field.
std::optional<ApiError> parse_generation_request(const std::string& body, bool chat,
                                                 const RequestLimits& limits,
                                                 GenerationParams* out);

}  // namespace ls::server
