// Random real-shape models without files: the shape configs, a tiny random model on the CPU
// through the engine with random adapters (an adapter changes the output; the same seed gives
// the same model), and the error for an unknown shape.
#include <gtest/gtest.h>

#include "engine/batch_generator.h"
#include "model/random_model.h"
#include "support/test_support.h"

namespace ls {
namespace {

TEST(RandomModel, ShapesMatchThePublishedConfigs) {
  auto l2 = model_shape_config("llama2-7b");
  ASSERT_TRUE(l2.ok());
  EXPECT_EQ(l2.value().intermediate_size, 11008);
  EXPECT_EQ(l2.value().num_kv_heads, 32);
  EXPECT_EQ(l2.value().vocab_size, 32000);
  auto l3 = model_shape_config("llama3-8b");
  ASSERT_TRUE(l3.ok());
  EXPECT_EQ(l3.value().intermediate_size, 14336);
  EXPECT_EQ(l3.value().num_kv_heads, 8);
  EXPECT_EQ(l3.value().vocab_size, 128256);
  EXPECT_TRUE(test::FailsWith(model_shape_config("llama9").status(), {"llama9", "unknown"}));
}

TEST(RandomModel, TinyModelGeneratesAndAdaptersChangeIt) {
  auto c = model_shape_config("tiny");
  ASSERT_TRUE(c.ok());
  auto be = make_cpu_backend();
  auto run = [&](uint64_t seed, const std::string& adapter) {
    auto m = make_random_model(c.value(), *be, DType::kBF16, seed, host_random_weights(*be));
    EXPECT_TRUE(m.ok());
    BatchGenerator::AdapterMap adapters;
    adapters.emplace(
        "r8", std::make_shared<const LoraAdapter>(make_random_adapter(c.value(), "r8", 8, 5)));
    adapters.emplace(
        "r64", std::make_shared<const LoraAdapter>(make_random_adapter(c.value(), "r64", 64, 6)));
    BatchGenerator gen(*m.value(), adapters);
    GenerationRequest r;
    r.prompt_ids = {1, 2, 3, 4, 5};
    r.adapter = adapter;
    r.max_tokens = 6;
    auto res = gen.run({r});
    EXPECT_TRUE(res.ok());
    return res.value()[0];
  };
  auto base = run(1, ""), again = run(1, ""), r64 = run(1, "r64");
  EXPECT_EQ(base.tokens, again.tokens);
  EXPECT_EQ(base.logprobs, again.logprobs);
  EXPECT_NE(base.logprobs, r64.logprobs);
  for (int32_t t : r64.tokens) EXPECT_TRUE(t >= 0 && t < c.value().vocab_size);
}

}  // namespace
}  // namespace ls
