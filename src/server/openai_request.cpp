// Parsing and range checks of OpenAI generation requests. Field names and bounds follow
// OpenAI's API reference, with vLLM's extensions (top_k, min_p, repetition_penalty, ignore_eos,
// stop_token_ids, skip_special_tokens, chat_template_kwargs).
#include "server/openai_request.h"

#include <cmath>
#include <set>

namespace ls::server {

namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string>& known_fields(bool chat) {
  static const std::set<std::string> common = {"model",
                                               "max_tokens",
                                               "temperature",
                                               "top_p",
                                               "top_k",
                                               "min_p",
                                               "seed",
                                               "n",
                                               "stop",
                                               "stop_token_ids",
                                               "stream",
                                               "stream_options",
                                               "logprobs",
                                               "top_logprobs",
                                               "presence_penalty",
                                               "frequency_penalty",
                                               "repetition_penalty",
                                               "ignore_eos",
                                               "skip_special_tokens",
                                               "user"};
  static const std::set<std::string> completions = [] {
    auto s = common;
    s.insert({"prompt", "echo"});
    return s;
  }();
  static const std::set<std::string> chats = [] {
    auto s = common;
    s.insert({"messages", "max_completion_tokens", "tools", "add_generation_prompt",
              "chat_template_kwargs"});
    return s;
  }();
  return chat ? chats : completions;
}

struct Reader {
  const Json& j;
  std::optional<ApiError> error;

  const Json* get(const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return nullptr;
    return &*it;
  }
  void fail(std::string message, const char* param) {
    if (!error) error = bad_request(std::move(message), param);
  }
  void number(const char* key, double lo, double hi, float* out) {
    const Json* v = get(key);
    if (!v || error) return;
    if (!v->is_number()) return fail(std::string("'") + key + "' must be a number", key);
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi))
      return fail(std::string("'") + key + "' must be between " + fmt(lo) + " and " + fmt(hi) +
                      ", got " + fmt(d),
                  key);
    *out = static_cast<float>(d);
  }
  void integer(const char* key, int64_t lo, int64_t hi, int64_t* out) {
    const Json* v = get(key);
    if (!v || error) return;
    if (!v->is_number_integer() &&
        !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
          std::fabs(v->get<double>()) < 9e15))
      return fail(std::string("'") + key + "' must be an integer", key);
    const int64_t i =
        v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(v->get<double>());
    if (i < lo || i > hi)
      return fail(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
                      std::to_string(hi) + ", got " + std::to_string(i),
                  key);
    *out = i;
  }
  void boolean(const char* key, bool* out) {
    const Json* v = get(key);
    if (!v || error) return;
    if (!v->is_boolean()) return fail(std::string("'") + key + "' must be a boolean", key);
    *out = v->get<bool>();
  }
  static std::string fmt(double d) {
    std::string s = std::to_string(d);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
};

bool token_id_list(const Json& v, std::vector<int32_t>* out) {
  if (!v.is_array() || v.empty()) return false;
  for (const Json& x : v) {
    if (!x.is_number_integer()) return false;
    const int64_t id = x.get<int64_t>();
    if (id < 0 || id > INT32_MAX) return false;
    out->push_back(static_cast<int32_t>(id));
  }
  return true;
}

std::optional<ApiError> parse_prompt(const Json& j, const RequestLimits& limits,
                                     GenerationParams* out) {
  auto it = j.find("prompt");
  if (it == j.end() || it->is_null()) return bad_request("'prompt' is required", "prompt");
  const Json& p = *it;
  const std::string shape =
      "'prompt' must be a string, a list of strings, a list of token ids or a list of lists of "
      "token ids";
  if (p.is_string()) {
    out->text_prompts.push_back(p.get<std::string>());
  } else if (p.is_array() && !p.empty() && p[0].is_string()) {
    for (const Json& s : p) {
      if (!s.is_string()) return bad_request(shape, "prompt");
      out->text_prompts.push_back(s.get<std::string>());
    }
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    out->prompt_is_ids = true;
    out->id_prompts.emplace_back();
    if (!token_id_list(p, &out->id_prompts.back())) return bad_request(shape, "prompt");
  } else if (p.is_array() && !p.empty() && p[0].is_array()) {
    out->prompt_is_ids = true;
    for (const Json& ids : p) {
      out->id_prompts.emplace_back();
      if (!token_id_list(ids, &out->id_prompts.back())) return bad_request(shape, "prompt");
    }
  } else {
    return bad_request(p.is_array() && p.empty() ? "'prompt' must not be empty" : shape, "prompt");
  }
  const size_t count = out->prompt_is_ids ? out->id_prompts.size() : out->text_prompts.size();
  if (count > static_cast<size_t>(limits.max_prompts))
    return bad_request("'prompt' may hold at most " + std::to_string(limits.max_prompts) +
                           " prompts, got " + std::to_string(count),
                       "prompt");
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const Json& j, GenerationParams* out) {
  auto it = j.find("messages");
  if (it == j.end() || !it->is_array() || it->empty())
    return bad_request("'messages' must be a non-empty list of messages", "messages");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& m = (*it)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad_request(at + " must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return bad_request(at + ".role must be a string", "messages");
    auto content = m.find("content");
    if (content != m.end() && !content->is_null() && !content->is_string() && !content->is_array())
      return bad_request(at + ".content must be a string or a list of content parts", "messages");
    if (content != m.end() && content->is_array())
      for (const Json& part : *content)
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          return bad_request(at + ".content: only parts {\"type\": \"text\", \"text\": ...} are "
                                  "supported by this text-only model",
                             "messages");
  }
  out->messages = *it;
  if (auto t = j.find("tools"); t != j.end() && !t->is_null()) {
    if (!t->is_array()) return bad_request("'tools' must be a list", "tools");
    out->tools = *t;
  }
  if (auto k = j.find("chat_template_kwargs"); k != j.end() && !k->is_null()) {
    if (!k->is_object())
      return bad_request("'chat_template_kwargs' must be an object", "chat_template_kwargs");
    out->chat_template_kwargs = *k;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_generation_request(const std::string& body, bool chat,
                                                 const RequestLimits& limits,
                                                 GenerationParams* out) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded()) return bad_request("the request body is not valid JSON");
  if (!j.is_object()) return bad_request("the request body must be a JSON object");
  out->chat = chat;
  for (const auto& [key, value] : j.items())
    if (!known_fields(chat).count(key)) out->unknown_fields.push_back(key);
  Reader r{j, std::nullopt};
  if (const Json* m = r.get("model")) {
    if (!m->is_string()) return bad_request("'model' must be a string", "model");
    out->model = m->get<std::string>();
  }
  if (auto e = chat ? parse_messages(j, out) : parse_prompt(j, limits, out)) return e;
  int64_t v = 0;
  const char* max_key =
      chat && r.get("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (r.get(max_key)) {
    r.integer(max_key, 1, INT32_MAX, &v);
    out->max_tokens = static_cast<int32_t>(v);
  }
  SamplingConfig& s = out->sampling;
  s.temperature = 1.0f;  // OpenAI's default
  r.number("temperature", 0.0, 2.0, &s.temperature);
  r.number("top_p", 1e-9, 1.0, &s.top_p);
  v = 0;
  r.integer("top_k", -1, INT32_MAX, &v);
  s.top_k = v < 0 ? 0 : static_cast<int32_t>(v);
  r.number("min_p", 0.0, 1.0, &s.min_p);
  r.number("presence_penalty", -2.0, 2.0, &s.presence_penalty);
  r.number("frequency_penalty", -2.0, 2.0, &s.frequency_penalty);
  r.number("repetition_penalty", 1e-6, 10.0, &s.repetition_penalty);
  if (r.get("seed")) {
    r.integer("seed", INT64_MIN, INT64_MAX, &v);
    s.seed = static_cast<uint64_t>(v);
    out->seed_given = true;
  }
  v = 1;
  r.integer("n", 1, limits.max_n, &v);
  out->n = static_cast<int32_t>(v);
  r.boolean("stream", &out->stream);
  r.boolean("ignore_eos", &out->ignore_eos);
  r.boolean("skip_special_tokens", &out->skip_special_tokens);
  if (!chat) r.boolean("echo", &out->echo);
  if (r.error) return r.error;
  if (const Json* so = r.get("stream_options")) {
    if (!so->is_object())
      return bad_request("'stream_options' must be an object", "stream_options");
    if (auto iu = so->find("include_usage"); iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean())
        return bad_request("'stream_options.include_usage' must be a boolean", "stream_options");
      out->include_usage = iu->get<bool>();
    }
    if (!out->stream)
      return bad_request("'stream_options' is only allowed when 'stream' is true",
                         "stream_options");
  }
  if (chat) {
    r.boolean("logprobs", &out->logprobs);
    v = 0;
    r.integer("top_logprobs", 0, 20, &v);
    out->top_logprobs = static_cast<int32_t>(v);
    if (!r.error && out->top_logprobs > 0 && !out->logprobs)
      return bad_request("'top_logprobs' needs 'logprobs' set to true", "top_logprobs");
    r.boolean("add_generation_prompt", &out->add_generation_prompt);
  } else if (r.get("logprobs")) {
    v = 0;
    r.integer("logprobs", 0, limits.max_completion_logprobs, &v);
    out->logprobs = true;
    out->top_logprobs = static_cast<int32_t>(v);
  }
  if (r.error) return r.error;
  if (const Json* st = r.get("stop")) {
    if (st->is_string()) {
      out->stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      for (const Json& x : *st) {
        if (!x.is_string())
          return bad_request("'stop' must be a string or a list of strings", "stop");
        out->stop.push_back(x.get<std::string>());
      }
    } else {
      return bad_request("'stop' must be a string or a list of strings", "stop");
    }
    if (out->stop.size() > static_cast<size_t>(limits.max_stop))
      return bad_request("'stop' may hold at most " + std::to_string(limits.max_stop) + " strings",
                         "stop");
    for (const std::string& x : out->stop)
      if (x.size() > limits.max_stop_bytes)
        return bad_request(
            "each 'stop' string may be at most " + std::to_string(limits.max_stop_bytes) + " bytes",
            "stop");
  }
  if (const Json* ids = r.get("stop_token_ids")) {
    if (!token_id_list(*ids, &out->stop_token_ids) && !(ids->is_array() && ids->empty()))
      return bad_request("'stop_token_ids' must be a list of token ids", "stop_token_ids");
    if (out->stop_token_ids.size() > static_cast<size_t>(limits.max_stop_token_ids))
      return bad_request(
          "'stop_token_ids' may hold at most " + std::to_string(limits.max_stop_token_ids) + " ids",
          "stop_token_ids");
  }
  if (const Json* u = r.get("user")) {
    if (!u->is_string()) return bad_request("'user' must be a string", "user");
    out->user = u->get<std::string>();
  }
  if (out->echo) return bad_request("'echo' is not supported", "echo");
  return std::nullopt;
}

}  // namespace ls::server
