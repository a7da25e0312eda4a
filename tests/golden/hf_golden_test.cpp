// Golden tests: our CPU forward against Hugging Face transformers + PEFT references written by
// tools/make_golden.py (float64 on the stored weights). Full first-step log-prob vectors within
// the fixture's tolerance (1e-3 f32, 2e-3 f16/bf16), greedy tokens equal up to the first step
// whose reference top-2 margin is below 1e-3, and a mixed batch equal to each request alone.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/batch_generator.h"
#include "support/test_support.h"

namespace ls {
namespace {

using test::Golden;
using test::GoldenCase;
using test::read_golden;

std::map<std::string, std::string> adapter_dirs(const std::string& model_dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(model_dir + "/adapters"))
    out[e.path().filename().string()] = e.path().string();
  return out;
}

class HfGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(HfGolden, MatchesTransformersAndPeft) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const Golden g = read_golden(dir);
  auto m = test::load_model(dir, adapter_dirs(dir));
  ASSERT_TRUE(m.model);
  BatchGenerator gen(*m.model, m.adapters);
  int compared_steps = 0;
  double worst_all = 0;
  for (const auto& c : g.cases) {
    SCOPED_TRACE("adapter=" + (c.adapter.empty() ? std::string("<base>") : c.adapter));
    auto res = gen.run({test::golden_request(c)});
    ASSERT_TRUE(res.ok()) << res.status().message();
    const GenerationResult& r = res.value()[0];
    ASSERT_EQ(r.prompt_last_logprobs.size(), c.first_logprobs.size());
    double worst = 0;
    for (size_t i = 0; i < c.first_logprobs.size(); ++i)
      worst = std::max(worst, std::fabs(r.prompt_last_logprobs[i] - c.first_logprobs[i]));
    EXPECT_LE(worst, g.tolerance) << "first-step log-prob vector differs";
    worst_all = std::max(worst_all, worst);
    for (size_t s = 0; s < c.tokens.size(); ++s) {
      EXPECT_EQ(r.tokens[s], c.tokens[s]) << "greedy token differs at step " << s;
      if (r.tokens[s] != c.tokens[s]) break;
      EXPECT_NEAR(r.logprobs[s], c.logprobs[s], g.tolerance) << "step " << s;
      ++compared_steps;
      if (c.margins[s] < 1e-3) break;  // a near tie: later tokens may legitimately differ
    }
  }
  EXPECT_GT(compared_steps, static_cast<int>(g.cases.size()));
  std::printf(
      "[ golden   ] %s: %zu cases, %d greedy steps compared, max |dlogprob| %.3g (tol %.0e)\n",
      GetParam().c_str(), g.cases.size(), compared_steps, worst_all, g.tolerance);
}

TEST_P(HfGolden, MixedBatchEqualsEachAlone) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const Golden g = read_golden(dir);
  auto m = test::load_model(dir, adapter_dirs(dir));
  ASSERT_TRUE(m.model);
  std::vector<GenerationRequest> all;
  for (const auto& c : g.cases) all.push_back(test::golden_request(c));
  test::expect_mixed_equals_alone(m, all, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Models, HfGolden,
                         ::testing::Values("mha_f32", "gqa_bf16", "qwen2_f16", "mistral_f32"));

}  // namespace
}  // namespace ls
