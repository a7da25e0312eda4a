// Chat templates from files and model directories.
#include "text/chat_template_files.h"

#include "base/file_util.h"

namespace ls {

using Json = nlohmann::ordered_json;

Result<ChatTemplate> chat_template_from_file(const std::string& path, const std::string& name) {
  const bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  if (!is_json) {
    LS_ASSIGN_OR_RETURN(std::string source, read_text_file(path));
    auto t = ChatTemplate::from_string(source);
    if (!t.ok()) return t.status().with_context(path);
    return t;
  }
  LS_ASSIGN_OR_RETURN(Json j, read_json_file(path));
  auto t = ChatTemplate::from_tokenizer_config(j, name);
  if (!t.ok()) return t.status().with_context(path);
  return t;
}

Result<ChatTemplate> chat_template_from_dir(const std::string& dir, const Json& cfg,
                                            const std::string& name) {
  const std::string jinja_path = dir + "/chat_template.jinja";
  if (file_exists(jinja_path)) return chat_template_from_file(jinja_path, name);
  auto t = ChatTemplate::from_tokenizer_config(cfg, name);
  if (t.status().code() == StatusCode::kNotFound && name.empty())
    return not_found(dir +
                     ": no chat_template in tokenizer_config.json and no chat_template.jinja"
                     " (give one with --chat-template)");
  if (!t.ok()) return t.status().with_context(dir + "/tokenizer_config.json");
  return t;
}

}  // namespace ls
