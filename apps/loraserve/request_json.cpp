// Field-by-field validation of request lines; every error names the field.
#include "request_json.h"

#include <charconv>
#include <cmath>

namespace ls {

namespace {
Status number_field(const nlohmann::json& j, const char* key, double lo, double hi, double* out) {
  if (!j.contains(key) || j[key].is_null()) return ok_status();
  if (!j[key].is_number()) return invalid_argument(std::string("'") + key + "' must be a number");
  double v = j[key].get<double>();
  if (!(v >= lo && v <= hi))
    return invalid_argument(std::string("'") + key + "' out of range [" + std::to_string(lo) +
                            ", " + std::to_string(hi) + "]");
  *out = v;
  return ok_status();
}
}  // namespace

Result<GenerationRequest> request_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("request is not a JSON object");
  GenerationRequest r;
  if (j.contains("adapter") && !j["adapter"].is_null()) {
    if (!j["adapter"].is_string()) return invalid_argument("'adapter' must be a string or null");
    r.adapter = j["adapter"].get<std::string>();
  }
  if (!j.contains("prompt_ids") || !j["prompt_ids"].is_array())
    return invalid_argument("'prompt_ids' must be a list of token ids");
  for (const auto& v : j["prompt_ids"]) {
    if (!v.is_number_integer()) return invalid_argument("'prompt_ids' entries must be integers");
    int64_t id = v.get<int64_t>();
    if (id < 0 || id > INT32_MAX)
      return invalid_argument("prompt id " + std::to_string(id) + " is out of range");
    r.prompt_ids.push_back(static_cast<int32_t>(id));
  }
  double max_tokens = -1, temperature = 0, top_p = 1, top_k = 0, seed = 0;
  if (!j.contains("max_tokens")) return invalid_argument("missing 'max_tokens'");
  LS_RETURN_IF_ERROR(number_field(j, "max_tokens", 1, 1 << 24, &max_tokens));
  LS_RETURN_IF_ERROR(number_field(j, "temperature", 0, 100, &temperature));
  LS_RETURN_IF_ERROR(number_field(j, "top_p", 1e-9, 1, &top_p));
  LS_RETURN_IF_ERROR(number_field(j, "top_k", 0, 1 << 24, &top_k));
  LS_RETURN_IF_ERROR(number_field(j, "seed", 0, 9007199254740992.0, &seed));
  r.max_tokens = static_cast<int32_t>(max_tokens);
  r.sampling.temperature = static_cast<float>(temperature);
  r.sampling.top_p = static_cast<float>(top_p);
  r.sampling.top_k = static_cast<int32_t>(top_k);
  r.sampling.seed = static_cast<uint64_t>(seed);
  for (const char* key : {"full_logprobs", "stop_at_eos"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_boolean())
      return invalid_argument(std::string("'") + key + "' must be a boolean");
    (std::string(key) == "full_logprobs" ? r.full_logprobs : r.stop_at_eos) = j[key].get<bool>();
  }
  return r;
}

nlohmann::ordered_json result_to_json(const GenerationRequest& req, const GenerationResult& res) {
  nlohmann::ordered_json o;
  o["adapter"] =
      req.adapter.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(req.adapter);
  o["prompt_ids"] = req.prompt_ids;
  o["tokens"] = res.tokens;
  o["logprobs"] = res.logprobs;
  o["finish_reason"] = res.finish_reason;
  if (req.full_logprobs) o["prompt_last_logprobs"] = res.prompt_last_logprobs;
  return o;
}

Result<std::vector<int32_t>> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || v < 0 ||
        v > INT32_MAX)
      return invalid_argument("--prompt-ids: '" + item +
                              "' is not a token id (expected e.g. 1,2,3)");
    ids.push_back(static_cast<int32_t>(v));
    start = end + 1;
  }
  return ids;
}

}  // namespace ls
