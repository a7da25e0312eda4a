// JSON <-> generation requests and results for `loraserve generate` (stable CLI format).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/generation.h"

namespace ls {

// One line of a --requests file: {"adapter": NAME|null, "prompt_ids": [...], "max_tokens": N,
// optional "temperature", "top_p", "top_k", "seed", "full_logprobs", "stop_at_eos"}.
Result<GenerationRequest> request_from_json(const nlohmann::json& j);

nlohmann::ordered_json result_to_json(const GenerationRequest& req, const GenerationResult& res);

// "1,2,3" -> ids; a clear error for anything else.
Result<std::vector<int32_t>> parse_id_list(const std::string& text);

}  // namespace ls
