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
    const double worst = test::max_abs_diff(r.prompt_last_logprobs, c.first_logprobs);
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

// The same references with a bf16 page pool (KV cache and adapter rows rounded to bf16, the
// CUDA default). Rounding K, V, A and B to 8 significant bits moves the first-step log-prob
// vectors by at most 0.048 / 0.295 / 0.034 / 0.038 on these four models (measured when this
// test was written); gqa_bf16 is the fixture whose attention is sharpest (its log-probs also
// moved 0.3 when activations were tried in bf16). Each model gets about 1.25x its measured
// worst; greedy tokens must agree while the reference's top-2 margin exceeds twice that.
double bf16_kv_tolerance(const std::string& model) {
  return model == "gqa_bf16" ? 0.37 : 0.06;
}

TEST_P(HfGolden, MatchesTransformersWithBf16KvCache) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const Golden g = read_golden(dir);
  auto m = test::load_model(dir, adapter_dirs(dir));
  ASSERT_TRUE(m.model);
  const double tol = bf16_kv_tolerance(GetParam());
  BatchGeneratorOptions o;
  o.kv_dtype = DType::kBF16;
  BatchGenerator gen(*m.model, m.adapters, o);
  int compared_steps = 0;
  double worst_all = 0, worst_step = 0;
  for (const auto& c : g.cases) {
    SCOPED_TRACE("adapter=" + (c.adapter.empty() ? std::string("<base>") : c.adapter));
    auto res = gen.run({test::golden_request(c)});
    ASSERT_TRUE(res.ok()) << res.status().message();
    const GenerationResult& r = res.value()[0];
    ASSERT_EQ(r.prompt_last_logprobs.size(), c.first_logprobs.size());
    const double worst = test::max_abs_diff(r.prompt_last_logprobs, c.first_logprobs);
    EXPECT_LE(worst, tol) << "first-step log-prob vector differs";
    worst_all = std::max(worst_all, worst);
    for (size_t s = 0; s < c.tokens.size(); ++s) {
      if (c.margins[s] < 2 * tol) break;  // too close to call at this precision
      EXPECT_EQ(r.tokens[s], c.tokens[s]) << "greedy token differs at step " << s;
      if (r.tokens[s] != c.tokens[s]) break;
      EXPECT_NEAR(r.logprobs[s], c.logprobs[s], tol) << "step " << s;
      worst_step = std::max(worst_step, std::fabs(r.logprobs[s] - c.logprobs[s]));
      ++compared_steps;
    }
  }
  EXPECT_GT(compared_steps, 0);
  std::printf(
      "[ golden   ] %s, bf16 KV: %zu cases, %d greedy steps compared, max |dlogprob| first step "
      "%.3g, greedy steps %.3g (tol %.2g)\n",
      GetParam().c_str(), g.cases.size(), compared_steps, worst_all, worst_step, tol);
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
