// `loraserve chat-template`: renders a conversation with a model's chat template and prints the
// prompt exactly as transformers' apply_chat_template(tokenize=False) returns it.
#include <cstdio>
#include <memory>
#include <string>

#include "base/file_util.h"
#include "commands.h"
#include "text/chat_template.h"
#include "text/chat_template_files.h"

namespace ls {

namespace {

using Json = nlohmann::ordered_json;

struct ChatTemplateFlags {
  std::string tokenizer;
  std::string messages;
  std::string tools;
  std::string chat_template;
  std::string template_name;
  bool add_generation_prompt = false;
};

Result<std::string> render(const ChatTemplateFlags& f) {
  LS_ASSIGN_OR_RETURN(Json cfg, read_json_file(f.tokenizer + "/tokenizer_config.json"));
  ChatTemplateInputs in;
  ChatTemplate::apply_special_tokens(cfg, &in);
  in.add_generation_prompt = f.add_generation_prompt;
  in.template_name = f.template_name;

  // --messages: a JSON list of messages, or a chat request object with "messages" (and
  // "tools", used unless --tools is given).
  LS_ASSIGN_OR_RETURN(Json messages, read_json_file(f.messages));
  if (messages.is_object()) {
    if (!messages.contains("messages"))
      return invalid_argument(f.messages +
                              ": expected a list of messages or {\"messages\": [...]}");
    if (messages.contains("tools")) in.tools = messages["tools"];
    in.messages = messages["messages"];
  } else {
    in.messages = std::move(messages);
  }
  if (!in.messages.is_array()) return invalid_argument(f.messages + ": messages must be a list");
  if (!f.tools.empty()) {
    LS_ASSIGN_OR_RETURN(in.tools, read_json_file(f.tools));
  }

  Result<ChatTemplate> tmpl = f.chat_template.empty()
                                  ? chat_template_from_dir(f.tokenizer, cfg, f.template_name)
                                  : chat_template_from_file(f.chat_template, f.template_name);
  if (!tmpl.ok()) return tmpl.status();
  return tmpl->render(in);
}

}  // namespace

Command add_chat_template_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "chat-template", "Render a conversation with a model's chat template (as transformers does)");
  sub->footer(
      "Prints the prompt exactly, with no trailing newline.\n"
      "Examples:\n"
      "  loraserve chat-template --tokenizer models/Qwen2.5-7B-Instruct --messages chat.json "
      "--add-generation-prompt\n"
      "  loraserve chat-template --tokenizer models/Mistral-7B-Instruct-v0.3 --messages chat.json "
      "--tools tools.json\n"
      "  loraserve chat-template --tokenizer models/gemma-2-2b --chat-template gemma.jinja "
      "--messages chat.json\n"
      "chat.json: [{\"role\": \"user\", \"content\": \"Hello!\"}] or {\"messages\": [...], "
      "\"tools\": [...]}");
  auto flags = std::make_shared<ChatTemplateFlags>();
  sub->add_option("--tokenizer", flags->tokenizer,
                  "Model or tokenizer directory (tokenizer_config.json, chat_template.jinja)")
      ->required();
  sub->add_option("--messages", flags->messages, "JSON file with the conversation")->required();
  sub->add_flag("--add-generation-prompt", flags->add_generation_prompt,
                "End with the header that starts the assistant's reply");
  sub->add_option("--tools", flags->tools, "JSON file with a list of tool (function) schemas");
  sub->add_option("--chat-template", flags->chat_template,
                  "Template file to use instead of the model's (Jinja text, or JSON with "
                  "\"chat_template\")");
  sub->add_option("--template-name", flags->template_name,
                  "Named template of a model with several (e.g. tool_use)");
  return {sub, [flags]() {
            auto r = render(*flags);
            if (!r.ok()) return fail(r.status().message());
            std::fwrite(r.value().data(), 1, r.value().size(), stdout);
            std::fflush(stdout);
            return 0;
          }};
}

}  // namespace ls
