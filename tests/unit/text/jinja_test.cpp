// The Jinja subset, construct by construct, against Python jinja2 3.1.2 set up as transformers
// sets it up (constructs.json from tools/make_chat_template_refs.py; no ../shared needed), plus
// what references cannot show: error positions, limits on hostile templates, the injected clock.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "chat_template_fixtures.h"
#include "text/chat_template.h"
#include "text/jinja_format.h"
#include "text/jinja_template.h"

namespace ls {
namespace {

using Json = nlohmann::ordered_json;

Result<std::string> render_source(const std::string& source, const Json& context = Json::object(),
                                  jinja::JinjaLimits limits = {}) {
  auto t = ChatTemplate::from_string(source);
  if (!t.ok()) return t.status();
  ChatTemplateInputs in;
  in.extra_context = context;
  in.limits = limits;
  return t->render(in);
}

::testing::AssertionResult FailsWith(const Result<std::string>& r, const std::string& words) {
  if (r.ok())
    return ::testing::AssertionFailure() << "expected a failure, got \"" << r.value() << "\"";
  if (r.status().message().find(words) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message lacks '" << words << "': " << r.status().message();
  if (r.status().message().find('\n') != std::string::npos)
    return ::testing::AssertionFailure() << "message is not one line: " << r.status().message();
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- jinja2 references

class JinjaConstruct : public ::testing::TestWithParam<std::string> {};

TEST_P(JinjaConstruct, RendersLikeJinja2) {
  static const Json fixture = test::read_chat_fixture("constructs.json");
  const Json* c = nullptr;
  for (const auto& x : fixture["cases"])
    if (x["name"] == GetParam()) c = &x;
  ASSERT_NE(c, nullptr);
  SCOPED_TRACE((*c)["template"].get<std::string>());
  auto t = ChatTemplate::from_string((*c)["template"].get<std::string>());
  Result<std::string> r = t.ok() ? Result<std::string>(internal_error("unset")) : t.status();
  if (t.ok()) {
    ChatTemplateInputs in;
    for (const auto& [k, v] : (*c)["context"].items()) {
      if (k == "messages") {
        in.messages = v;
      } else if (k == "tools") {
        in.tools = v;
      } else {
        in.extra_context[k] = v;
      }
    }
    const std::tm now = test::fixture_time(fixture["now"]);
    in.local_time = [now] { return now; };
    r = t->render(in);
  }
  if (c->contains("expected")) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r.value(), (*c)["expected"].get<std::string>());
    return;
  }
  const Json& err = (*c)["error"];
  ASSERT_FALSE(r.ok()) << "jinja2 raised " << err["type"] << " (" << err["message"]
                       << ") but we rendered: " << r.value();
  EXPECT_TRUE(test::MatchesJinja2Error(r.status(), err));
}

INSTANTIATE_TEST_SUITE_P(Jinja2, JinjaConstruct, ::testing::ValuesIn(test::construct_names()),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------- errors and positions

TEST(JinjaErrors, SyntaxErrorNamesLineAndColumn) {
  auto r = render_source("line one\n  {{ 1 + }}");
  EXPECT_TRUE(FailsWith(r, "line 2, column 10"));
  EXPECT_TRUE(FailsWith(render_source("{% if x %}\n{% for %}"), "line 2"));
  EXPECT_TRUE(FailsWith(render_source("{{ 'unterminated }}"), "line 1, column 4"));
  EXPECT_TRUE(FailsWith(render_source("ok\n{# never closed"), "missing end of comment"));
  EXPECT_TRUE(
      FailsWith(render_source("{% for x in y %}{% endif %}"), "expected 'endfor' or 'else'"));
}

TEST(JinjaErrors, RuntimeErrorNamesTheFailingExpression) {
  auto r =
      render_source("{% for m in ms %}\n  {{ m.x.y }}{% endfor %}", {{"ms", {Json::object()}}});
  EXPECT_TRUE(FailsWith(r, "line 2, column 9: 'dict object' has no attribute 'x'"));
  EXPECT_TRUE(
      FailsWith(render_source("{% macro f() %}\n\n{{ 1 // 0 }}{% endmacro %}{{ f() }}"), "line 3"));
}

TEST(JinjaErrors, RaiseExceptionKeepsTheMessageVerbatim) {
  auto r = render_source("{{ raise_exception('Roles must alternate: ' ~ n) }}", {{"n", 3}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "Roles must alternate: 3");
}

TEST(JinjaErrors, RefusesFileAccessAndUnsupportedTags) {
  for (const char* tag : {"include 'x'", "import 'x' as y", "from 'x' import y", "extends 'x'"})
    EXPECT_TRUE(
        FailsWith(render_source(std::string("{% ") + tag + " %}"), "cannot read other files"));
  EXPECT_TRUE(FailsWith(render_source("{% for x in [1] recursive %}{% endfor %}"), "recursive"));
  EXPECT_TRUE(FailsWith(render_source("{% break %}"), "outside of a loop"));
  EXPECT_TRUE(FailsWith(render_source("{{ 'a'|format }}"), "'format' filter is not supported"));
  EXPECT_TRUE(FailsWith(render_source("{{ lipsum() }}"), "not supported"));
}

// ---------------------------------------------------------------- limits

TEST(JinjaLimits, LoopsStopAtTheStepBudget) {
  jinja::JinjaLimits limits;
  limits.max_steps = 10000;
  auto r =
      render_source("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
                    Json::object(), limits);
  EXPECT_TRUE(FailsWith(r, "steps"));
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // Exponential macro recursion is cut by the same budget.
  EXPECT_TRUE(
      FailsWith(render_source("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
                              "{% endmacro %}{{ f(40) }}",
                              Json::object(), limits),
                "steps"));
}

TEST(JinjaLimits, RecursionDepthIsBounded) {
  EXPECT_TRUE(FailsWith(render_source("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
                        "nest deeper than 100"));
}

TEST(JinjaLimits, OutputAndStringSizesAreBounded) {
  jinja::JinjaLimits limits;
  limits.max_output_bytes = 1 << 20;
  EXPECT_TRUE(FailsWith(render_source("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
                                      Json::object(), limits),
                        "exceeds 1048576 bytes"));
  // A huge repetition is refused before it is built.
  EXPECT_TRUE(FailsWith(render_source("{{ 'x' * 10 ** 12 }}"), "bytes of text"));
  EXPECT_TRUE(FailsWith(render_source("{{ range(100001)|length }}"), "MAX_RANGE"));
}

TEST(JinjaLimits, DeepSyntaxAndDeepValuesAreRefused) {
  const std::string deep = "{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
  EXPECT_TRUE(FailsWith(render_source(deep), "nests deeper"));
  EXPECT_TRUE(FailsWith(render_source("{{ " + std::string(500, '-') + "1 }}"), "nests deeper"));
  std::string ifs;
  for (int i = 0; i < 300; ++i) ifs += "{% if true %}";
  EXPECT_TRUE(FailsWith(render_source(ifs), "nests deeper"));
  EXPECT_TRUE(FailsWith(render_source("{% set ns = namespace(x=[]) %}{% for i in range(300) %}"
                                      "{% set ns.x = [ns.x] %}{% endfor %}"),
                        "nests deeper than 200"));
  // JSON input nested too deeply is refused when converted.
  Json nested = Json::array();
  for (int i = 0; i < 300; ++i) nested = Json::array({nested});
  EXPECT_TRUE(FailsWith(render_source("{{ v|length }}", {{"v", nested}}), "nests deeper"));
}

TEST(JinjaLimits, NamespacesCannotHoldThemselves) {
  EXPECT_TRUE(FailsWith(render_source("{% set ns = namespace() %}{% set ns.me = ns %}"),
                        "inside a namespace is not supported"));
  EXPECT_TRUE(FailsWith(render_source("{% set ns = namespace() %}{% set ns.l = [ns] %}"),
                        "inside a namespace is not supported"));
}

// Random token soup must come back as a render or an error, never a crash (ASan/UBSan build).
TEST(JinjaLimits, RandomTemplatesNeverCrash) {
  static const char* kPieces[] = {
      "{{",       "}}",         "{%",    "%}",      "{#",         "#}",       "{%-",
      "-%}",      " if ",       " for ", " in ",    " else ",     " endif ",  " endfor ",
      " set ",    "x",          "ns",    "=",       "(",          ")",        "[",
      "]",        "{",          "}",     "'s'",     "\"",         "1",        "-",
      "+",        "*",          "//",    "|",       "trim",       "tojson",   "length",
      ".",        ",",          ":",     " is ",    " not ",      "defined",  "macro",
      "endmacro", "loop.index", "\n",    " ",       "namespace(", "range(3)", "~",
      "raw",      "endraw",     "\\",    "é",       "😀",          "messages", "[::-1]",
      "**",       "%",          "break", "continue"};
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> pick(0, std::size(kPieces) - 1);
  std::uniform_int_distribution<int> len(1, 40);
  int rendered = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string src;
    for (int n = len(rng); n > 0; --n) src += kPieces[pick(rng)];
    auto r = render_source(src, {{"x", Json::array({1, "a", nullptr})}});
    rendered += r.ok();
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty()) << src;
    }
  }
  EXPECT_GT(rendered, 0);
}

// ---------------------------------------------------------------- Python formatting

TEST(JinjaFormat, FloatsPrintAsPythonRepr) {
  using jinja::python_float_repr;
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(python_float_repr(2.5e-7), "2.5e-07");
  EXPECT_EQ(python_float_repr(1e300 * 1e10), "inf");
}

TEST(JinjaFormat, StringsReprLikePython) {
  using jinja::python_string_repr;
  EXPECT_EQ(python_string_repr("it's"), "\"it's\"");
  EXPECT_EQ(python_string_repr("a'b\"c"), "'a\\'b\"c'");
  EXPECT_EQ(python_string_repr("\x01\x7f\u00a0\u200f\U0001F600\u00e9"),
            "'\\x01\\x7f\\xa0\\u200f\U0001F600\u00e9'");
  // A byte that is not UTF-8 survives as Python's surrogate escape would show it.
  EXPECT_EQ(python_string_repr("\xe9"), "'\\udce9'");
}

// ---------------------------------------------------------------- the clock

TEST(ChatTemplateClock, StrftimeNowUsesTheInjectedLocalTime) {
  auto t = ChatTemplate::from_string(
      "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%H:%M%z%Z') }}|{{ strftime_now('') }}");
  ASSERT_TRUE(t.ok()) << t.status().message();
  ChatTemplateInputs in;
  std::tm tm{};
  tm.tm_year = 2025 - 1900, tm.tm_mon = 0, tm.tm_mday = 2, tm.tm_hour = 9, tm.tm_min = 5;
  in.local_time = [tm] { return tm; };
  auto r = t->render(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value(), "02 Jan 2025|09:05|");
  // Without an injected clock the system clock answers (today's year has four digits).
  in.local_time = nullptr;
  auto now = t->render(in);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now.value().size(), r.value().size());
}

}  // namespace
}  // namespace ls
