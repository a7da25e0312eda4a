// `loraserve tokenize`: JSONL in, {"ids", "decoded"} lines out, equal to the HF references with
// and without --no-special; bad lines fail with one error line. Skips until the binary has the
// command registered.
#include <gtest/gtest.h>

#include <sstream>

#include "tokenizer_fixtures.h"

namespace ls {
namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool has_tokenize_command() {
  auto r = test::run_loraserve("tokenize --help");
  return r.exit_code == 0 && r.out.find("--no-special") != std::string::npos;
}

std::vector<nlohmann::json> parse_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(TokenizeCommand, MatchesReferencesWithAndWithoutSpecialTokens) {
  if (!has_tokenize_command()) GTEST_SKIP() << "loraserve has no tokenize command registered yet";
  const std::string dir = test::tokenizer_fixture_dir();
  const auto& texts = test::corpus();
  auto refs = test::read_jsonl(dir + "/refs/spbpe.jsonl");
  // Every ninth corpus string: all of them have ids_no_special (every third one does).
  std::string input = test::temp_dir("tokenize") + "/in.jsonl", lines;
  std::vector<const nlohmann::json*> want;
  for (const auto& r : refs) {
    if (!r.contains("i") || r["i"].get<size_t>() % 9 != 0) continue;
    lines += nlohmann::json({{"text", texts[r["i"].get<size_t>()]}}).dump() + "\n";
    want.push_back(&r);
  }
  test::write_file(input, lines);
  std::string base = "tokenize --tokenizer " + shell_quote(dir + "/trained/spbpe") + " --input " +
                     shell_quote(input);
  auto with = test::run_loraserve(base);
  auto without = test::run_loraserve(base + " --no-special");
  ASSERT_EQ(with.exit_code, 0) << with.err;
  ASSERT_EQ(without.exit_code, 0) << without.err;
  auto a = parse_lines(with.out), b = parse_lines(without.out);
  ASSERT_EQ(a.size(), want.size());
  ASSERT_EQ(b.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    const auto& r = *want[k];
    const std::string& text = texts[r["i"].get<size_t>()];
    EXPECT_EQ(a[k]["ids"], r["ids"]) << text;
    EXPECT_EQ(a[k]["decoded"], r.contains("decoded") ? r["decoded"] : nlohmann::json(text));
    EXPECT_EQ(b[k]["ids"], r["ids_no_special"]) << text;
  }
}

TEST(TokenizeCommand, BadInputFailsWithOneLine) {
  if (!has_tokenize_command()) GTEST_SKIP() << "loraserve has no tokenize command registered yet";
  std::string tmp = test::temp_dir("tokenize_bad");
  test::write_file(tmp + "/in.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n");
  std::string tok = shell_quote(test::tokenizer_fixture_dir() + "/trained/bytelevel");
  auto r = test::run_loraserve("tokenize --tokenizer " + tok + " --input " + tmp + "/in.jsonl");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("in.jsonl:2"), std::string::npos) << r.err;
  r = test::run_loraserve("tokenize --tokenizer " + tmp + " --input " + tmp + "/in.jsonl");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no tokenizer.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ls
