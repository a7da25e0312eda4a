// JSON pieces of the OpenAI answers and small header lists.
#include "server/openai_json.h"

#include <chrono>

namespace ls::server {

namespace {
constexpr const char* kServerVersion = "0.3.0";
}  // namespace

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string version_body() {
  return dump(Json{{"version", kServerVersion}});
}

Json role_chunk_choice(int32_t index) {
  return Json{{"index", index},
              {"delta", Json{{"role", "assistant"}, {"content", ""}}},
              {"logprobs", nullptr},
              {"finish_reason", nullptr}};
}

Json stream_choice(bool chat, int32_t index, const std::string& pending, bool done, Json logprobs,
                   Json finish_reason) {
  Json one = {{"index", index}};
  if (chat)
    one["delta"] = pending.empty() && done ? Json::object() : Json{{"content", pending}};
  else
    one["text"] = pending;
  one["logprobs"] = std::move(logprobs);
  one["finish_reason"] = std::move(finish_reason);
  return one;
}

Json final_choice(bool chat, int32_t index, const std::string& text, Json logprobs,
                  const std::string& finish_reason) {
  Json one = {{"index", index}};
  if (chat)
    one["message"] = Json{{"role", "assistant"}, {"content", text}};
  else
    one["text"] = text;
  one["logprobs"] = std::move(logprobs);
  one["finish_reason"] = finish_reason;
  return one;
}

Json completion_body(const std::string& id, bool chat, int64_t created, const std::string& model,
                     Json choices, Json usage) {
  return Json{{"id", id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", std::move(choices)},
              {"usage", std::move(usage)}};
}

Json model_entry(const std::string& id, int64_t created, const std::string& root, Json parent,
                 int32_t max_model_len) {
  return Json{{"id", id},
              {"object", "model"},
              {"created", created},
              {"owned_by", "loraserve"},
              {"root", root},
              {"parent", std::move(parent)},
              {"max_model_len", max_model_len}};
}

std::string models_body(Json data) {
  return dump(Json{{"object", "list"}, {"data", std::move(data)}});
}

Headers one_header(const std::string& name, const std::string& value) {
  return Headers{{name, value}};
}

bool is_valid_adapter_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

}  // namespace ls::server
