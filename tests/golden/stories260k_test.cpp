// The real tiny Llama (stories260K) and its three real LoRA adapters from ../shared: greedy ids
// from BOS must equal transformers + PEFT (golden_greedy.json), alone and in one mixed batch.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/batch_generator.h"
#include "support/test_support.h"

namespace ls {
namespace {

class Stories260k : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_ = test::shared_dir();
    if (shared_.empty())
      GTEST_SKIP() << "../shared not found beside the project root: skipping the stories260k test";
    golden_ = nlohmann::json::parse(
        test::read_file(shared_ + "/models/stories260k-adapters/golden_greedy.json"));
  }
  GenerationRequest request(const std::string& adapter) const {
    GenerationRequest r;
    r.prompt_ids = {1};
    r.adapter = adapter;
    r.max_tokens = 60;
    return r;
  }
  std::vector<int32_t> expected(const std::string& key, size_t* prefix) const {
    const auto& e = golden_[key];
    *prefix = e["safe_prefix_len"].get<size_t>();
    return e["greedy_ids"].get<std::vector<int32_t>>();
  }
  std::string shared_;
  nlohmann::json golden_;
};

TEST_F(Stories260k, GreedyIdsMatchPeftAloneAndMixed) {
  const std::string ad = shared_ + "/models/stories260k-adapters/";
  auto m = test::load_model(
      shared_ + "/models/stories260k",
      {{"boy_dog", ad + "boy_dog"}, {"princess", ad + "princess"}, {"the_end", ad + "the_end"}});
  ASSERT_TRUE(m.model);
  BatchGenerator gen(*m.model, m.adapters);
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"base", ""}, {"boy_dog", "boy_dog"}, {"princess", "princess"}, {"the_end", "the_end"}};
  std::vector<GenerationRequest> all;
  for (const auto& [key, adapter] : keys) all.push_back(request(adapter));
  auto mixed = gen.run(all);
  ASSERT_TRUE(mixed.ok()) << mixed.status().message();
  for (size_t i = 0; i < keys.size(); ++i) {
    size_t prefix = 0;
    auto want = expected(keys[i].first, &prefix);
    ASSERT_GT(prefix, 10u);
    auto alone = gen.run({all[i]});
    ASSERT_TRUE(alone.ok());
    for (const auto* got : {&alone.value()[0].tokens, &mixed.value()[i].tokens}) {
      std::vector<int32_t> a(got->begin(), got->begin() + static_cast<int64_t>(prefix));
      std::vector<int32_t> b(want.begin(), want.begin() + static_cast<int64_t>(prefix));
      EXPECT_EQ(a, b) << keys[i].first;
    }
  }
}

}  // namespace
}  // namespace ls
