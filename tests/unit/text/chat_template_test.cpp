// Real chat templates (../shared tokenizer configs and chat_templates/) rendered for every
// reference conversation and compared byte for byte with Python jinja2 as transformers runs it
// (fixtures from tools/make_chat_template_refs.py); then ChatTemplate's own API.
#include "text/chat_template.h"

#include <gtest/gtest.h>

#include <thread>

#include "chat_template_fixtures.h"

namespace ls {
namespace {

using Json = nlohmann::ordered_json;

class RealChatTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(RealChatTemplate, RendersLikeTransformers) {
  const Json fixture = test::read_chat_fixture(GetParam());
  const std::string shared = test::shared_dir();
  if (shared.empty())
    GTEST_SKIP() << "../shared is absent: skipping " << GetParam()
                 << " (its template is read from ../shared/"
                 << fixture["shared_path"].get<std::string>() << ")";
  const std::string path = shared + "/" + fixture["shared_path"].get<std::string>();
  const Json file = Json::parse(test::read_file(path));

  const bool is_config = path.find("tokenizer_config.json") != std::string::npos;
  auto tmpl = is_config ? ChatTemplate::from_tokenizer_config(file)
                        : ChatTemplate::from_string(file["chat_template"].get<std::string>());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().message();

  ChatTemplateInputs base;
  const Json& special = fixture["special_tokens"];
  if (is_config) {
    // The config's own tokens, read the way transformers' special_tokens_map reads them.
    ChatTemplate::apply_special_tokens(file, &base);
    EXPECT_EQ(base.bos_token.has_value(), special.contains("bos_token"));
    if (base.bos_token) {
      EXPECT_EQ(*base.bos_token, special["bos_token"].get<std::string>());
    }
    if (base.eos_token) {
      EXPECT_EQ(*base.eos_token, special["eos_token"].get<std::string>());
    }
  } else {
    for (const auto& [key, value] : special.items()) {
      if (key == "bos_token") {
        base.bos_token = value.get<std::string>();
      } else if (key == "eos_token") {
        base.eos_token = value.get<std::string>();
      } else {
        base.extra_context[key] = value;
      }
    }
  }
  const std::tm now = test::fixture_time(fixture["now"]);
  base.local_time = [now] { return now; };

  int compared = 0;
  for (const auto& c : fixture["cases"]) {
    for (const auto& result : c["results"]) {
      ChatTemplateInputs in = base;
      in.messages = c["messages"];
      in.tools = c["tools"];
      for (const auto& [k, v] : c["extra_context"].items()) in.extra_context[k] = v;
      in.add_generation_prompt = result["add_generation_prompt"].get<bool>();
      SCOPED_TRACE(c["name"].get<std::string>() +
                   (in.add_generation_prompt ? " + generation prompt" : ""));
      auto r = tmpl->render(in);
      ++compared;
      if (result.contains("expected")) {
        ASSERT_TRUE(r.ok()) << r.status().message();
        EXPECT_EQ(r.value(), result["expected"].get<std::string>());
        continue;
      }
      const Json& err = result["error"];
      ASSERT_FALSE(r.ok()) << "jinja2 raised " << err["type"] << " (" << err["message"]
                           << ") but we rendered: " << r.value();
      EXPECT_TRUE(test::MatchesJinja2Error(r.status(), err));
    }
  }
  EXPECT_GT(compared, 0);
}

INSTANTIATE_TEST_SUITE_P(Shared, RealChatTemplate,
                         ::testing::ValuesIn(test::real_template_fixtures()), [](const auto& info) {
                           return info.param.substr(0, info.param.size() - 5);  // drop ".json"
                         });

TEST(ChatTemplate, ConfigsWithoutATemplateAreNotFound) {
  auto none = ChatTemplate::from_tokenizer_config(Json{{"bos_token", "<s>"}});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  const std::string shared = test::shared_dir();
  if (shared.empty()) GTEST_SKIP() << "../shared is absent: skipping gemma/smollm configs";
  for (const char* family : {"gemma", "smollm"}) {
    const Json cfg =
        Json::parse(test::read_file(shared + "/tokenizers/" + family + "/tokenizer_config.json"));
    auto t = ChatTemplate::from_tokenizer_config(cfg);
    ASSERT_FALSE(t.ok()) << family;
    EXPECT_EQ(t.status().code(), StatusCode::kNotFound) << family;
  }
}

TEST(ChatTemplate, NamedTemplatesPickLikeTransformers) {
  const Json cfg = {{"chat_template",
                     {{{"name", "default"}, {"template", "D{{ messages|length }}"}},
                      {{"name", "tool_use"}, {"template", "T{{ tools|length }}"}},
                      {{"name", "rag"}, {"template", "R"}}}}};
  auto t = ChatTemplate::from_tokenizer_config(cfg);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ChatTemplateInputs in;
  in.messages = Json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(t->render(in).value(), "D1");
  in.tools = Json::array({Json::object()});
  EXPECT_EQ(t->render(in).value(), "T1");  // tools given: tool_use, as transformers picks
  in.template_name = "default";
  EXPECT_EQ(t->render(in).value(), "D1");

  auto rag = ChatTemplate::from_tokenizer_config(cfg, "rag");
  ASSERT_TRUE(rag.ok());
  in.template_name = "rag";
  EXPECT_EQ(rag->render(in).value(), "R");
  auto missing = ChatTemplate::from_tokenizer_config(cfg, "nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto no_default = ChatTemplate::from_tokenizer_config(
      Json{{"chat_template", {{{"name", "rag"}, {"template", "R"}}}}});
  EXPECT_EQ(no_default.status().code(), StatusCode::kNotFound);
}

TEST(ChatTemplate, SpecialTokensComeFromStringsOrAddedTokens) {
  const Json cfg = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
                    {"eos_token", "</s>"},
                    {"pad_token", nullptr},
                    {"unk_token", ""},
                    {"additional_special_tokens", {"<a>", {{"content", "<b>"}}}},
                    {"chat_template",
                     "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|"
                     "{{ unk_token is defined }}|{{ additional_special_tokens }}"}};
  auto t = ChatTemplate::from_tokenizer_config(cfg);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ChatTemplateInputs in;
  ChatTemplate::apply_special_tokens(cfg, &in);
  auto r = t->render(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value(), "<s>|</s>|False|False|['<a>', '<b>']");
}

TEST(ChatTemplate, RefusesMalformedInputs) {
  auto t = ChatTemplate::from_string("{{ messages }}");
  ASSERT_TRUE(t.ok());
  ChatTemplateInputs in;
  in.messages = Json::object();
  EXPECT_EQ(t->render(in).status().code(), StatusCode::kInvalidArgument);
  in.messages = Json::array();
  in.tools = "not a list";
  EXPECT_EQ(t->render(in).status().code(), StatusCode::kInvalidArgument);
  in.tools = nullptr;
  in.extra_context = {{"messages", 1}};
  EXPECT_NE(t->render(in).status().message().find("may not set 'messages'"), std::string::npos);
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(Json{{"chat_template", 3}}).status().code(),
            StatusCode::kInvalidArgument);
  auto bad = ChatTemplate::from_tokenizer_config(Json{{"chat_template", "{% if %}"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos) << bad.status().message();
}

TEST(ChatTemplate, RendersOpenAiStyleConversations) {
  // Qwen2.5-style tool calls, written by hand: content as text parts, a tool result, Unicode.
  auto t = ChatTemplate::from_string(
      "{% for m in messages %}<{{ m.role }}>{% if m.content is string %}{{ m.content }}"
      "{% elif m.content %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}"
      "{% for c in m.tool_calls or [] %}[{{ c.function.name }} {{ c.function.arguments|tojson }}]"
      "{% endfor %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}");
  ASSERT_TRUE(t.ok()) << t.status().message();
  ChatTemplateInputs in;
  in.messages = Json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "Wetter in "}, {"type": "text", "text": "Köln? 🌦"}]},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
      "function": {"name": "weather", "arguments": {"city": "Köln", "days": 2}}}]},
    {"role": "tool", "content": "12°C"}])");
  in.add_generation_prompt = true;
  auto r = t->render(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value(),
            "<user>Wetter in Köln? 🌦<assistant>[weather {\"city\": \"Köln\", \"days\": 2}]"
            "<tool>12°C<assistant>");
}

TEST(ChatTemplate, OneTemplateRendersOnSeveralThreads) {
  auto t = ChatTemplate::from_string(
      "{% macro m(x) %}<{{ x }}>{% endmacro %}{% set ns = namespace(n=0) %}"
      "{% for msg in messages %}{% set ns.n = ns.n + 1 %}{{ m(msg.content) }}{% endfor %}{{ ns.n "
      "}}");
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      ChatTemplateInputs in;
      for (size_t k = 0; k <= i; ++k) in.messages.push_back({{"role", "user"}, {"content", k}});
      for (int round = 0; round < 200; ++round) {
        auto r = t->render(in);
        results[i] = r.ok() ? r.value() : r.status().message();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(results[0], "<0>1");
  EXPECT_EQ(results[3], "<0><1><2><3>4");
}

}  // namespace
}  // namespace ls
