// A model's chat template (tokenizer_config.json "chat_template") and the prompt it renders for
// a conversation, byte for byte as transformers' apply_chat_template(tokenize=False) does.
#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "text/jinja_template.h"

namespace ls {

struct ChatTemplateInputs {
  // [{"role": "system"|"user"|"assistant"|"tool", "content": "..." or [{"type": "text",
  // "text": "..."}], "tool_calls": [...], ...}], passed to the template as they are.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // JSON-schema tool definitions, or null: the template then sees `tools` as None.
  nlohmann::ordered_json tools;
  bool add_generation_prompt = false;
  // Absent tokens are undefined in the template, as when transformers' special_tokens_map
  // lacks them (Qwen2 has no bos_token).
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // More template variables (unk_token, reasoning_effort, enable_thinking, ...); may override
  // the tokens above but not messages, tools, documents or add_generation_prompt.
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
  // strftime_now()'s clock as local broken-down time; empty means the system's local time.
  // A std::tm rather than a time_t keeps tests independent of the machine's time zone.
  std::function<std::tm()> local_time;
  // Render for a named template (e.g. "tool_use"); empty picks as transformers does:
  // "tool_use" when tools are given and the model has one, else "default".
  std::string template_name;
  jinja::JinjaLimits limits;
};

class ChatTemplate {
 public:
  // Reads cfg["chat_template"]: a string, or a list of {"name", "template"}. NotFound when
  // the config has none (Gemma, SmolLM base) or lacks a requested `name`.
  static Result<ChatTemplate> from_tokenizer_config(const nlohmann::ordered_json& cfg,
                                                    const std::string& name = "");
  // A template from its source, e.g. a chat_template.jinja file.
  static Result<ChatTemplate> from_string(const std::string& source);

  // The prompt, or an error: raise_exception() messages as the template wrote them ("Conversation
  // roles must alternate ..."), other failures with the template line and column. Parsed once;
  // each call has its own state, so one ChatTemplate may render on several threads at once.
  Result<std::string> render(const ChatTemplateInputs& inputs) const;

  // The special tokens transformers passes to templates (bos_token, eos_token, unk_token,
  // pad_token, ...), read from tokenizer_config.json where each is a string or an AddedToken
  // {"content": ...}. bos/eos go to the inputs' fields, the rest to extra_context.
  static void apply_special_tokens(const nlohmann::ordered_json& cfg, ChatTemplateInputs* inputs);

 private:
  std::vector<std::pair<std::string, jinja::JinjaTemplate>> templates_;  // name -> template
};

}  // namespace ls
