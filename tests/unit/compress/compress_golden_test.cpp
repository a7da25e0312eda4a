// Lossless compression on the golden fixture models: with K at least the sum of the adapters'
// ranks, generation through the materialised bundle adapters matches the Hugging Face
// references (and our uncompressed adapters) within the golden tolerances, alone and in a
// batch that mixes compressed and ordinary adapters; both as materialised LoRA factors and as
// resident compressed adapters served by the shared-basis op (serve_bundle).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "compress/bundle_adapters.h"
#include "compress/bundle_serving.h"
#include "compress/compressor.h"
#include "engine/batch_generator.h"
#include "support/test_support.h"

namespace ls {
namespace {

struct Case {
  std::string adapter;
  std::vector<int32_t> prompt, tokens;
  std::vector<double> margins, first_logprobs;
};

// Generates every case with its original adapter and with "c_<adapter>" (compressed), alone
// and all in one batch: the compressed one matches HF and the original within `tol`.
void check_bundle_generation(BatchGenerator& gen, const std::vector<Case>& cases, double tol,
                             const std::string& model, int32_t k, bool shared) {
  std::vector<GenerationRequest> batch;
  double worst_ref = 0, worst_orig = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.adapter);
    GenerationRequest r;
    r.prompt_ids = c.prompt;
    r.max_tokens = static_cast<int32_t>(c.tokens.size());
    r.full_logprobs = true;
    r.adapter = c.adapter;
    GenerationRequest rc = r;
    rc.adapter = "c_" + c.adapter;
    batch.push_back(r);
    batch.push_back(rc);
    auto res = gen.run({r, rc});
    ASSERT_TRUE(res.ok()) << res.status().message();
    const auto& orig = res.value()[0];
    const auto& comp = res.value()[1];
    ASSERT_EQ(comp.prompt_last_logprobs.size(), c.first_logprobs.size());
    for (size_t v = 0; v < c.first_logprobs.size(); ++v) {
      const double got = comp.prompt_last_logprobs[v];
      worst_ref = std::max(worst_ref, std::fabs(got - c.first_logprobs[v]));
      worst_orig = std::max(worst_orig, std::fabs(got - orig.prompt_last_logprobs[v]));
    }
    for (size_t s = 0; s < c.tokens.size(); ++s) {
      ASSERT_EQ(comp.tokens[s], c.tokens[s]) << "greedy token differs at step " << s;
      EXPECT_NEAR(comp.logprobs[s], orig.logprobs[s], tol);
      if (c.margins[s] < 1e-3) break;
    }
  }
  EXPECT_LE(worst_ref, tol);
  EXPECT_LE(worst_orig, tol);
  // All compressed and ordinary requests in one batch equal each run alone.
  auto mixed = gen.run(batch);
  ASSERT_TRUE(mixed.ok());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto alone = gen.run({batch[i]});
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(mixed.value()[i].tokens, alone.value()[0].tokens) << batch[i].adapter;
  }
  std::printf(
      "[ compress ] %s (%s): K=%d lossless, max |dlogprob| vs HF %.3g, vs uncompressed "
      "%.3g\n",
      model.c_str(), shared ? "shared-basis op" : "materialised", k, worst_ref, worst_orig);
}

class CompressGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CompressGolden, LosslessBundleMatchesUncompressed) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  auto j = nlohmann::json::parse(test::read_file(dir + "/golden.json"));
  const double tol = j["tolerance"].get<double>();
  std::vector<Case> cases;
  for (const auto& c : j["cases"]) {
    if (c["adapter"].is_null()) continue;
    cases.push_back(
        {c["adapter"], c["prompt_ids"], c["tokens"], c["margins"], c["first_logprobs"]});
  }
  std::map<std::string, std::string> dirs;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/adapters"))
    dirs[e.path().filename().string()] = e.path().string();
  auto m = test::load_model(dir, dirs);
  ASSERT_TRUE(m.model);
  std::vector<std::shared_ptr<const LoraAdapter>> list;
  int32_t sum_ranks = 0;
  for (const auto& [name, a] : m.adapters) {
    list.push_back(a);
    sum_ranks += a->max_rank;
  }
  compress::CompressOptions o;
  o.rank = sum_ranks;
  auto bundle = compress::compress_adapters(m.model->config(), list, o);
  ASSERT_TRUE(bundle.ok()) << bundle.status().message();
  EXPECT_LT(compress::error_report(bundle.value())["max_rel_error"].get<double>(), 1e-10);
  const std::string bdir = test::temp_dir("golden_bundle") + "/bundle";
  ASSERT_TRUE(compress::write_bundle(bdir, bundle.value()).ok());
  for (const bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "served with the shared-basis op" : "materialised as LoRA factors");
    // Compressed adapters under "c_<name>" next to the ordinary ones.
    BatchGenerator::AdapterMap both = m.adapters;
    std::vector<std::shared_ptr<const ResidentAdapter>> served;
    if (shared) {
      auto b = compress::read_bundle(bdir);
      ASSERT_TRUE(b.ok()) << b.status().message();
      for (auto& a : b.value().adapters) a.name = "c_" + a.name;
      auto s = serve_bundle(b.value(), m.model->config(), m.model->backend());
      ASSERT_TRUE(s.ok()) << s.status().message();
      served = s.value().adapters;
      EXPECT_GT(s.value().device_bytes, 0);
    } else {
      auto loaded = load_bundle_adapters(bdir, m.model->config());
      ASSERT_TRUE(loaded.ok()) << loaded.status().message();
      for (auto& a : loaded.value()) {
        a.name = "c_" + a.name;
        both[a.name] = std::make_shared<const LoraAdapter>(a);
      }
    }
    BatchGenerator gen(*m.model, both);
    for (const auto& a : served) ASSERT_TRUE(gen.engine().adapters().register_resident(a).ok());
    check_bundle_generation(gen, cases, tol, GetParam(), sum_ranks, shared);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CompressGolden,
                         ::testing::Values("mha_f32", "gqa_bf16", "qwen2_f16", "mistral_f32"));

}  // namespace
}  // namespace ls
