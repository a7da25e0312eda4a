// transformers' chat-template rendering (utils/chat_template_utils.py): template selection,
// the variables it passes, and its raise_exception / strftime_now globals.
#include "text/chat_template.h"

#include <array>

#include "text/jinja_access.h"
#include "text/jinja_format.h"

namespace ls {

namespace {

using Json = nlohmann::ordered_json;
using jinja::CallArgs;
using jinja::Interpreter;
using jinja::Value;

// raise_exception(message): transformers raises jinja2's TemplateError with the message.
class RaiseException : public jinja::Callable {
 public:
  Result<Value> call(Interpreter& interp, CallArgs args) const override {
    LS_ASSIGN_OR_RETURN(auto a, jinja::bind_args("raise_exception", args, {"message"}, 1));
    return interp.raise(jinja::python_str(*a[0]));
  }
  std::string repr() const override { return "<function raise_exception>"; }
};

// strftime_now(format): datetime.now().strftime(format). The datetime is naive, so %z and %Z
// are empty; %f is the (zero) microseconds.
class StrftimeNow : public jinja::Callable {
 public:
  explicit StrftimeNow(std::function<std::tm()> clock) : clock_(std::move(clock)) {}

  Result<Value> call(Interpreter& /*interp*/, CallArgs args) const override {
    LS_ASSIGN_OR_RETURN(auto a, jinja::bind_args("strftime_now", args, {"format"}, 1));
    if (!a[0]->is_string())
      return invalid_argument("strftime() argument 1 must be str, not " +
                              jinja::python_type_name(*a[0]));
    std::string fmt;
    const std::string& in = a[0]->as_string();
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '%' && i + 1 < in.size()) {
        const char c = in[i + 1];
        if (c == 'z' || c == 'Z') {
          ++i;
          continue;
        }
        if (c == 'f') {
          fmt += "000000";
          ++i;
          continue;
        }
        fmt += in.substr(i, 2);
        ++i;
        continue;
      }
      fmt.push_back(in[i]);
    }
    const std::tm tm = clock_ ? clock_() : system_local_time();
    // A trailing marker tells an empty result from a too-small buffer (both return 0).
    fmt.push_back('\x01');
    std::string out(fmt.size() * 8 + 64, '\0');
    const size_t n = std::strftime(out.data(), out.size(), fmt.c_str(), &tm);
    if (n == 0) return invalid_argument("strftime_now: formatted date is too long");
    out.resize(n - 1);
    return Value::string(std::move(out));
  }
  std::string repr() const override { return "<function strftime_now>"; }

 private:
  static std::tm system_local_time() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    return tm;
  }
  std::function<std::tm()> clock_;
};

// tokenizer_config.json writes a special token as a string or an AddedToken object.
std::optional<std::string> token_content(const Json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return std::nullopt;
}

Result<jinja::JinjaTemplate> parse_named(const std::string& source, const std::string& name) {
  auto t = jinja::JinjaTemplate::parse(source);
  if (!t.ok()) return t.status().with_context("chat template '" + name + "'");
  return t;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_string(const std::string& source) {
  ChatTemplate ct;
  LS_ASSIGN_OR_RETURN(auto t, parse_named(source, "default"));
  ct.templates_.emplace_back("default", std::move(t));
  return ct;
}

Result<ChatTemplate> ChatTemplate::from_tokenizer_config(const Json& cfg, const std::string& name) {
  if (!cfg.is_object() || !cfg.contains("chat_template") || cfg["chat_template"].is_null())
    return not_found("tokenizer_config.json has no chat_template");
  const Json& ct = cfg["chat_template"];
  if (ct.is_string()) {
    if (!name.empty() && name != "default")
      return not_found("the model has one chat template; there is none named '" + name + "'");
    return from_string(ct.get<std::string>());
  }
  if (!ct.is_array()) return invalid_argument("chat_template must be a string or a list");
  ChatTemplate out;
  for (const Json& entry : ct) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        !entry.contains("template") || !entry["template"].is_string())
      return invalid_argument(
          "chat_template list entries must be {\"name\": ..., \"template\": ...}");
    const std::string n = entry["name"].get<std::string>();
    // Parse only what render can pick: the requested one, or default and tool_use.
    const bool wanted = name.empty() ? (n == "default" || n == "tool_use") : n == name;
    if (!wanted) continue;
    LS_ASSIGN_OR_RETURN(auto t, parse_named(entry["template"].get<std::string>(), n));
    out.templates_.emplace_back(n, std::move(t));
  }
  if (out.templates_.empty())
    return not_found(name.empty() ? "the model's chat templates include no 'default'"
                                  : "the model has no chat template named '" + name + "'");
  return out;
}

void ChatTemplate::apply_special_tokens(const Json& cfg, ChatTemplateInputs* inputs) {
  if (!cfg.is_object()) return;
  static constexpr std::array<const char*, 6> kOthers = {"unk_token",  "sep_token",
                                                         "pad_token",  "cls_token",
                                                         "mask_token", "additional_special_tokens"};
  // transformers' special_tokens_map leaves out unset and empty tokens.
  for (auto [key, slot] :
       {std::pair{"bos_token", &inputs->bos_token}, std::pair{"eos_token", &inputs->eos_token}}) {
    if (!cfg.contains(key)) continue;
    auto c = token_content(cfg[key]);
    if (c && !c->empty()) *slot = std::move(c);
  }
  if (!inputs->extra_context.is_object()) inputs->extra_context = Json::object();
  for (const char* key : kOthers) {
    if (!cfg.contains(key)) continue;
    const Json& v = cfg[key];
    if (v.is_array()) {  // additional_special_tokens: a list of strings or AddedTokens
      Json list = Json::array();
      for (const Json& t : v)
        if (auto c = token_content(t)) list.push_back(*c);
      if (!list.empty()) inputs->extra_context[key] = list;
    } else if (auto c = token_content(v); c && !c->empty()) {
      inputs->extra_context[key] = *c;
    }
  }
}

Result<std::string> ChatTemplate::render(const ChatTemplateInputs& inputs) const {
  const jinja::JinjaTemplate* tmpl = nullptr;
  auto find = [&](const std::string& n) -> const jinja::JinjaTemplate* {
    for (const auto& [name, t] : templates_)
      if (name == n) return &t;
    return nullptr;
  };
  if (!inputs.template_name.empty()) {
    tmpl = find(inputs.template_name);
    if (!tmpl) return not_found("no chat template named '" + inputs.template_name + "'");
  } else {
    if (!inputs.tools.is_null()) tmpl = find("tool_use");
    if (!tmpl) tmpl = find("default");
    if (!tmpl) return not_found("the model's chat templates include no 'default'");
  }
  if (!inputs.messages.is_array()) return invalid_argument("messages must be a JSON array");
  if (!inputs.tools.is_null() && !inputs.tools.is_array())
    return invalid_argument("tools must be a JSON array or null");
  if (!inputs.extra_context.is_null() && !inputs.extra_context.is_object())
    return invalid_argument("extra_context must be a JSON object");

  std::vector<std::pair<std::string, Value>> vars;
  if (inputs.bos_token) vars.emplace_back("bos_token", Value::string(*inputs.bos_token));
  if (inputs.eos_token) vars.emplace_back("eos_token", Value::string(*inputs.eos_token));
  if (inputs.extra_context.is_object()) {
    for (const auto& [key, value] : inputs.extra_context.items()) {
      if (key == "messages" || key == "tools" || key == "documents" ||
          key == "add_generation_prompt")
        return invalid_argument("extra_context may not set '" + key + "'");
      LS_ASSIGN_OR_RETURN(Value v, jinja::value_from_json(value));
      vars.emplace_back(key, std::move(v));
    }
  }
  vars.emplace_back("raise_exception", Value::callable(std::make_shared<RaiseException>()));
  vars.emplace_back("strftime_now",
                    Value::callable(std::make_shared<StrftimeNow>(inputs.local_time)));
  LS_ASSIGN_OR_RETURN(Value messages, jinja::value_from_json(inputs.messages));
  vars.emplace_back("messages", std::move(messages));
  LS_ASSIGN_OR_RETURN(Value tools, jinja::value_from_json(inputs.tools));
  vars.emplace_back("tools", std::move(tools));
  vars.emplace_back("documents", Value::none());
  vars.emplace_back("add_generation_prompt", Value::boolean(inputs.add_generation_prompt));
  return tmpl->render(vars, inputs.limits);
}

}  // namespace ls
