// Shared by the chat-template tests: the reference fixtures written by
// tools/make_chat_template_refs.py and the inputs they describe.
#pragma once

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "text/chat_template.h"

namespace ls::test {

inline std::string chat_template_fixture_dir() {
  return fixture_dir() + "/text/chat_templates";
}

inline nlohmann::ordered_json read_chat_fixture(const std::string& file) {
  return nlohmann::ordered_json::parse(read_file(chat_template_fixture_dir() + "/" + file));
}

// The fixed strftime_now date the references were rendered with.
inline std::tm fixture_time(const nlohmann::ordered_json& now) {
  std::tm tm{};
  tm.tm_year = now["year"].get<int>() - 1900;
  tm.tm_mon = now["month"].get<int>() - 1;
  tm.tm_mday = now["day"].get<int>();
  tm.tm_hour = now["hour"].get<int>();
  tm.tm_min = now["minute"].get<int>();
  tm.tm_sec = now["second"].get<int>();
  tm.tm_wday = now["weekday"].get<int>();
  tm.tm_yday = now["yearday"].get<int>();
  tm.tm_isdst = -1;
  return tm;
}

// Fixture files of real templates (all but constructs.json), sorted.
inline std::vector<std::string> real_template_fixtures() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(chat_template_fixture_dir())) {
    const std::string f = e.path().filename().string();
    if (e.path().extension() == ".json" && f != "constructs.json") names.push_back(f);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Names of the construct cases, so each runs as its own test.
inline std::vector<std::string> construct_names() {
  std::vector<std::string> names;
  const nlohmann::ordered_json fixture = read_chat_fixture("constructs.json");
  for (const auto& c : fixture["cases"]) names.push_back(c["name"].get<std::string>());
  return names;
}

// Our failure against the one jinja2 raised: raise_exception's text comes back exactly; a
// runtime error carries jinja2's own message after "template error at line L, column C: "; a
// syntax error names its line. The one deliberate difference: {% include %} and friends are
// refused when parsing (jinja2 fails only when rendering, for want of a loader).
inline ::testing::AssertionResult MatchesJinja2Error(const Status& st,
                                                     const nlohmann::ordered_json& err) {
  const std::string& ours = st.message();
  const std::string type = err["type"].get<std::string>();
  const std::string theirs = err["message"].get<std::string>();
  if (ours.find('\n') != std::string::npos)
    return ::testing::AssertionFailure() << "message is not one line: " << ours;
  bool ok = false;
  if (type == "TemplateError") {
    ok = ours == theirs;
  } else if (type == "TemplateSyntaxError" || type == "TemplateAssertionError") {
    ok = ours.find("template syntax error at line ") != std::string::npos;
  } else {
    ok = (ours.size() >= theirs.size() + 2 &&
          ours.compare(ours.size() - theirs.size() - 2, std::string::npos, ": " + theirs) == 0) ||
         ours.find("cannot read other files") != std::string::npos;
  }
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "jinja2 raised " << type << ": " << theirs << "\n  we said: " << ours;
}

}  // namespace ls::test
