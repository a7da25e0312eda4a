// JSONL traces: a written trace reads back equal; every kind of bad line is refused with its
// line number and what is wrong; prompts drawn from lengths are deterministic and in range.
#include <gtest/gtest.h>

#include <sstream>

#include "support/test_support.h"
#include "trace.h"

namespace ls::bench {
namespace {

Result<std::vector<TraceRequest>> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_trace(in, "t.jsonl");
}

TEST(Trace, WriteThenReadIsIdentity) {
  std::vector<TraceRequest> reqs(3);
  reqs[0] = {0.125, "lora-3", {5, 6, 7}, "", 3, 16};
  reqs[1] = {0.25, "", {}, "Hello Hello ", 0, 4};
  reqs[2] = {1.0 / 3.0, "poet", {}, "", 9, 2};  // length only
  const std::string path = test::temp_dir("trace") + "/t.jsonl";
  ASSERT_TRUE(write_trace(path, reqs).ok());
  auto back = read_trace(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*back)[i].timestamp_s, reqs[i].timestamp_s);  // doubles round-trip exactly
    EXPECT_EQ((*back)[i].adapter, reqs[i].adapter);
    EXPECT_EQ((*back)[i].prompt_ids, reqs[i].prompt_ids);
    EXPECT_EQ((*back)[i].prompt_text, reqs[i].prompt_text);
    EXPECT_EQ((*back)[i].input_len, reqs[i].input_len);
    EXPECT_EQ((*back)[i].output_len, reqs[i].output_len);
  }
  EXPECT_EQ(trace_adapters(*back), (std::vector<std::string>{"lora-3", "poet"}));
}

TEST(Trace, BlankLinesAndNullAdapterAreFine) {
  auto r =
      parse("\n{\"timestamp\": 0, \"adapter\": null, \"input_len\": 4, \"output_len\": 2}\n\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 1u);
  EXPECT_TRUE((*r)[0].adapter.empty());
}

TEST(Trace, BadLinesNameTheLineAndTheProblem) {
  const std::string ok = R"({"timestamp": 1, "adapter": "a", "input_len": 4, "output_len": 2})";
  struct Case {
    std::string line;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"{not json", {"line 2", "not valid JSON"}},
      {"[1, 2]", {"line 2", "JSON object"}},
      {R"({"adapter": "a", "input_len": 4, "output_len": 2})", {"line 2", "missing 'timestamp'"}},
      {R"({"timestamp": -1, "input_len": 4, "output_len": 2})", {"line 2", "'timestamp'", ">= 0"}},
      {R"({"timestamp": 0.5, "input_len": 4, "output_len": 2})", {"line 2", "earlier", "sort"}},
      {R"({"timestamp": 2, "adapter": 7, "input_len": 4, "output_len": 2})",
       {"line 2", "'adapter'"}},
      {R"({"timestamp": 2, "output_len": 2})", {"line 2", "missing 'prompt'", "input_len"}},
      {R"({"timestamp": 2, "prompt": [1], "input_len": 1, "output_len": 2})",
       {"line 2", "either 'prompt' or 'input_len'"}},
      {R"({"timestamp": 2, "prompt": [1, -4], "output_len": 2})", {"line 2", "token 1", "-4"}},
      {R"({"timestamp": 2, "prompt": [], "output_len": 2})", {"line 2", "must not be empty"}},
      {R"({"timestamp": 2, "prompt": {"a": 1}, "output_len": 2})", {"line 2", "string or a list"}},
      {R"({"timestamp": 2, "input_len": 0, "output_len": 2})",
       {"line 2", "'input_len'", "between 1"}},
      {R"({"timestamp": 2, "input_len": 2.5, "output_len": 2})",
       {"line 2", "'input_len'", "integer"}},
      {R"({"timestamp": 2, "input_len": 3})", {"line 2", "missing 'output_len'"}},
      {R"({"timestamp": 2, "input_len": 3, "output_length": 9})",
       {"line 2", "unknown field 'output_length'"}},
  };
  for (const Case& c : cases) {
    auto r = parse(ok + "\n" + c.line + "\n");
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_TRUE(test::FailsWith(r.status(), {"t.jsonl"})) << c.line;
    for (const auto& w : c.words)
      EXPECT_NE(r.status().message().find(w), std::string::npos)
          << c.line << " -> " << r.status().message() << " (lacks '" << w << "')";
  }
}

TEST(Trace, EmptyAndMissingFiles) {
  EXPECT_FALSE(parse("").ok());
  EXPECT_NE(parse("\n\n").status().message().find("no requests"), std::string::npos);
  auto r = read_trace("/nonexistent/trace.jsonl");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/trace.jsonl"), std::string::npos);
}

TEST(Trace, FillPromptsDrawsIdsOrTextDeterministically) {
  std::vector<TraceRequest> a(2);
  a[0].input_len = 50;
  a[1].prompt_ids = {9, 9};  // kept
  a[1].input_len = 2;
  auto b = a;
  ASSERT_TRUE(fill_prompts(&a, PromptFormat::kTokenIds, 40, 43).ok());
  ASSERT_TRUE(fill_prompts(&b, PromptFormat::kTokenIds, 40, 43).ok());
  EXPECT_EQ(a[0].prompt_ids, b[0].prompt_ids);
  ASSERT_EQ(a[0].prompt_ids.size(), 50u);
  for (int32_t id : a[0].prompt_ids) {
    EXPECT_GE(id, kFirstPromptId);
    EXPECT_LT(id, 40);
  }
  EXPECT_EQ(a[1].prompt_ids, (std::vector<int32_t>{9, 9}));
  std::vector<TraceRequest> t(1);
  t[0].input_len = 3;
  ASSERT_TRUE(fill_prompts(&t, PromptFormat::kText, 0, 1).ok());
  EXPECT_EQ(t[0].prompt_text, "Hello Hello Hello ");  // S-LoRA's dummy_prompt
  std::vector<TraceRequest> bad(1);
  bad[0].input_len = 3;
  EXPECT_FALSE(fill_prompts(&bad, PromptFormat::kTokenIds, 0, 1).ok());
}

TEST(Trace, FromWorkload) {
  std::vector<WorkloadRequest> w = {{0.5, 3, 10, 20}};
  WorkloadSpec spec;
  spec.ranks = {16, 8};
  auto t = to_trace(spec, w);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].adapter, "lora-r8-1");
  EXPECT_EQ(t[0].input_len, 10);
  EXPECT_EQ(t[0].output_len, 20);
  EXPECT_FALSE(t[0].has_prompt());
}

}  // namespace
}  // namespace ls::bench
