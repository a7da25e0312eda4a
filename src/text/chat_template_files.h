// Where chat templates come from: a file given by the user (--chat-template) or a model's
// directory, looked up as transformers does.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "text/chat_template.h"

namespace ls {

// FILE: Jinja text, or JSON holding a "chat_template" (a tokenizer_config.json).
Result<ChatTemplate> chat_template_from_file(const std::string& path, const std::string& name = "");

// The model's template: chat_template.jinja beside the tokenizer takes priority over
// tokenizer_config.json's "chat_template" (`cfg`, already read from `dir`).
Result<ChatTemplate> chat_template_from_dir(const std::string& dir,
                                            const nlohmann::ordered_json& cfg,
                                            const std::string& name = "");

}  // namespace ls
