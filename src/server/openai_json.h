// JSON pieces of the OpenAI answers (choices, bodies, model entries) and header lists. They are
// built in plain functions, outside coroutines: GCC 12 miscompiles initializer lists of string
// literals inside coroutine frames.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "server/http_exchange.h"

namespace ls::server {

using Json = nlohmann::ordered_json;

std::string dump(const Json& j);  // compact, invalid UTF-8 replaced
int64_t unix_now();
std::string version_body();
// The first chat chunk of a choice: the assistant role and empty content.
Json role_chunk_choice(int32_t index);
Json stream_choice(bool chat, int32_t index, const std::string& pending, bool done, Json logprobs,
                   Json finish_reason);
Json final_choice(bool chat, int32_t index, const std::string& text, Json logprobs,
                  const std::string& finish_reason);
Json completion_body(const std::string& id, bool chat, int64_t created, const std::string& model,
                     Json choices, Json usage);
Json model_entry(const std::string& id, int64_t created, const std::string& root, Json parent,
                 int32_t max_model_len);
std::string models_body(Json data);
Headers one_header(const std::string& name, const std::string& value);
// An adapter name usable as a directory name under --lora-root: no separators, not . or ..
bool is_valid_adapter_name(const std::string& name);

}  // namespace ls::server
