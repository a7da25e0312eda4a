// BatchGenerator on the demo model (ls::make_demo: base + pirate r8, poet r16, coder r64/32):
// request validation, output shape, a mixed batch equal to each request alone under chunked
// prefill / queueing / paging options, seeded sampling reproducibility, EOS stopping, and
// adapters that visibly change the output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/batch_generator.h"
#include "model/demo_model.h"
#include "support/test_support.h"

namespace ls {
namespace {

constexpr int32_t kEos = 2;  // the demo config's eos_token_id

// A deterministic prompt of ids in [3, 512) (clear of bos 1 and eos 2).
std::vector<int32_t> prompt(int32_t len, int32_t salt) {
  std::vector<int32_t> p;
  for (int32_t i = 0; i < len; ++i) p.push_back(3 + (i * 37 + salt * 101) % 509);
  return p;
}

GenerationRequest req(std::vector<int32_t> ids, std::string adapter, int32_t max_tokens) {
  GenerationRequest r;
  r.prompt_ids = std::move(ids);
  r.adapter = std::move(adapter);
  r.max_tokens = max_tokens;
  return r;
}

BatchGeneratorOptions opts(int32_t max_num_seqs, int32_t per_step, int32_t page_size,
                           int64_t max_kv_bytes = 1ll << 30) {
  BatchGeneratorOptions o;
  o.max_num_seqs = max_num_seqs;
  o.max_tokens_per_step = per_step;
  o.page_size = page_size;
  o.max_kv_bytes = max_kv_bytes;
  return o;
}

class BatchGeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = test::temp_dir("batch_gen");
    auto demo = make_demo(dir);
    ASSERT_TRUE(demo.ok()) << demo.status().message();
    std::map<std::string, std::string> adapters;
    for (const auto& a : demo.value()) adapters[a.name] = a.dir;
    ASSERT_EQ(adapters.size(), 3u);
    model_ = new test::LoadedModel(test::load_model(dir + "/model", adapters));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(model_, nullptr);
    ASSERT_TRUE(model_->model) << "demo model failed to load";
    ASSERT_EQ(model_->adapters.size(), 3u);
  }

  static const LlamaModel& model() { return *model_->model; }
  static const BatchGenerator::AdapterMap& adapters() { return model_->adapters; }

  static std::vector<GenerationResult> run(const std::vector<GenerationRequest>& reqs,
                                           BatchGeneratorOptions opts = {}) {
    BatchGenerator gen(model(), adapters(), opts);
    auto r = gen.run(reqs);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok()) return {};
    EXPECT_EQ(r.value().size(), reqs.size());
    return std::move(r).value();
  }

  static void expect_same(const GenerationResult& got, const GenerationResult& want,
                          const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_EQ(got.finish_reason, want.finish_reason);
    ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
    for (size_t s = 0; s < want.logprobs.size(); ++s)
      EXPECT_NEAR(got.logprobs[s], want.logprobs[s], 1e-4) << "step " << s;
    ASSERT_EQ(got.prompt_last_logprobs.size(), want.prompt_last_logprobs.size());
    for (size_t v = 0; v < want.prompt_last_logprobs.size(); ++v)
      ASSERT_NEAR(got.prompt_last_logprobs[v], want.prompt_last_logprobs[v], 1e-4) << "vocab " << v;
  }

  static test::LoadedModel* model_;
};

test::LoadedModel* BatchGeneratorTest::model_ = nullptr;

TEST_F(BatchGeneratorTest, ValidateRejectsBadRequests) {
  BatchGenerator gen(model(), adapters());
  const int32_t vocab = model().config().vocab_size;
  const int32_t ctx = model().config().max_position_embeddings;
  ASSERT_EQ(vocab, 512);
  ASSERT_EQ(ctx, 1024);
  const GenerationRequest good = req(prompt(5, 1), "poet", 4);
  EXPECT_TRUE(gen.validate(good).ok());
  EXPECT_TRUE(gen.validate(req(prompt(5, 1), "", 4)).ok());

  auto expect_code = [&](GenerationRequest r, StatusCode code, const std::string& what) {
    Status s = gen.validate(r);
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.code(), code) << what << ": " << s.message();
    EXPECT_FALSE(s.message().empty()) << what;
  };
  GenerationRequest r = good;
  r.adapter = "pirat";
  expect_code(r, StatusCode::kNotFound, "unknown adapter");
  r = good;
  r.prompt_ids.clear();
  expect_code(r, StatusCode::kInvalidArgument, "empty prompt");
  for (int32_t bad : {-1, vocab, vocab + 100, std::numeric_limits<int32_t>::min()}) {
    r = good;
    r.prompt_ids[2] = bad;
    expect_code(r, StatusCode::kInvalidArgument, "id " + std::to_string(bad));
  }
  r = good;
  r.prompt_ids[0] = vocab - 1;  // the last id is fine
  EXPECT_TRUE(gen.validate(r).ok());
  for (int32_t mt : {0, -3}) {
    r = good;
    r.max_tokens = mt;
    expect_code(r, StatusCode::kInvalidArgument, "max_tokens " + std::to_string(mt));
  }
  r = req(prompt(1000, 2), "", 24);  // exactly the context
  EXPECT_TRUE(gen.validate(r).ok());
  r.max_tokens = 25;  // one past it
  expect_code(r, StatusCode::kInvalidArgument, "prompt + max_tokens > context");
  r = req(prompt(1025, 2), "", 1);
  expect_code(r, StatusCode::kInvalidArgument, "prompt longer than the context");

  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Bad {
    float temperature, top_p;
    int32_t top_k;
  };
  for (Bad b : {Bad{-0.1f, 1.0f, 0}, Bad{nan, 1.0f, 0}, Bad{1.0f, 0.0f, 0}, Bad{1.0f, -0.5f, 0},
                Bad{1.0f, 1.01f, 0}, Bad{1.0f, nan, 0}, Bad{1.0f, 1.0f, -1}}) {
    r = good;
    r.sampling.temperature = b.temperature;
    r.sampling.top_p = b.top_p;
    r.sampling.top_k = b.top_k;
    expect_code(r, StatusCode::kInvalidArgument,
                "sampling T=" + std::to_string(b.temperature) +
                    " top_p=" + std::to_string(b.top_p) + " top_k=" + std::to_string(b.top_k));
  }
  r = good;
  r.sampling = {0.0f, 1.0f, 0, 9};  // greedy with every knob at its edge is fine
  EXPECT_TRUE(gen.validate(r).ok());
  r.sampling = {3.0f, 1e-6f, 100000, 9};
  EXPECT_TRUE(gen.validate(r).ok());

  // run() refuses the whole list and names the failing request (1-based).
  GenerationRequest bad = good;
  bad.adapter = "nobody";
  auto res = gen.run({good, bad, good});
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(res.status().message().rfind("request 2: ", 0), 0u) << res.status().message();
}

TEST_F(BatchGeneratorTest, OutputShapeAndLogprobs) {
  GenerationRequest r = req(prompt(9, 3), "coder", 7);
  r.full_logprobs = true;
  auto out = run({r});
  ASSERT_EQ(out.size(), 1u);
  const GenerationResult& g = out[0];
  ASSERT_EQ(g.tokens.size(), 7u);
  ASSERT_EQ(g.logprobs.size(), 7u);
  EXPECT_EQ(g.finish_reason, "length");
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    EXPECT_GE(g.tokens[i], 0);
    EXPECT_LT(g.tokens[i], 512);
    EXPECT_LE(g.logprobs[i], 0.0f);
    EXPECT_TRUE(std::isfinite(g.logprobs[i]));
  }
  ASSERT_EQ(g.prompt_last_logprobs.size(), 512u);
  double mass = 0;
  for (float lp : g.prompt_last_logprobs) mass += std::exp(double(lp));
  EXPECT_NEAR(mass, 1.0, 1e-4);
  // Greedy: the first token is the argmax of the prompt's last distribution, and its log-prob.
  const auto& v = g.prompt_last_logprobs;
  EXPECT_EQ(g.tokens[0], std::max_element(v.begin(), v.end()) - v.begin());
  EXPECT_NEAR(g.logprobs[0], v[static_cast<size_t>(g.tokens[0])], 1e-5);
  // Without full_logprobs nothing is returned for the prompt.
  r.full_logprobs = false;
  EXPECT_TRUE(run({r})[0].prompt_last_logprobs.empty());
  // max_tokens = 1
  EXPECT_EQ(run({req(prompt(3, 3), "", 1)})[0].tokens.size(), 1u);
}

TEST_F(BatchGeneratorTest, EmptyListAndFullContext) {
  EXPECT_TRUE(run({}).empty());
  // prompt + max_tokens == max_position_embeddings: the last token fed sits at position 1023.
  GenerationRequest r = req(prompt(1000, 5), "pirate", 24);
  const auto whole = run({r});
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].tokens.size(), 24u);
  EXPECT_EQ(whole[0].finish_reason, "length");
  for (float lp : whole[0].logprobs) EXPECT_TRUE(std::isfinite(lp));
}

TEST_F(BatchGeneratorTest, AdaptersChangeTheOutput) {
  const std::vector<int32_t> p = prompt(12, 4);
  std::vector<GenerationRequest> reqs;
  for (const char* a : {"", "pirate", "poet", "coder"}) {
    reqs.push_back(req(p, a, 8));
    reqs.back().full_logprobs = true;
  }
  auto out = run(reqs);
  ASSERT_EQ(out.size(), 4u);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_NE(out[i].tokens, out[0].tokens) << reqs[i].adapter << " gives the base's tokens";
    double diff = 0;
    for (size_t v = 0; v < 512; ++v)
      diff = std::max(
          diff, double(std::fabs(out[i].prompt_last_logprobs[v] - out[0].prompt_last_logprobs[v])));
    EXPECT_GT(diff, 0.05) << reqs[i].adapter;
    for (size_t j = 1; j < i; ++j)
      EXPECT_NE(out[i].tokens, out[j].tokens) << reqs[i].adapter << " vs " << reqs[j].adapter;
  }
}

// Base + 3 adapters (one twice) with different prompt lengths and max_tokens.
std::vector<GenerationRequest> mixed_requests() {
  const std::vector<std::pair<const char*, std::pair<int32_t, int32_t>>> spec = {
      {"coder", {17, 6}}, {"", {4, 9}},  {"pirate", {11, 5}},
      {"poet", {1, 7}},   {"", {23, 4}}, {"pirate", {6, 8}}};
  std::vector<GenerationRequest> reqs;
  int32_t salt = 10;
  for (const auto& [adapter, lens] : spec) {
    GenerationRequest r;
    r.prompt_ids = prompt(lens.first, salt++);
    r.adapter = adapter;
    r.max_tokens = lens.second;
    r.full_logprobs = true;
    reqs.push_back(r);
  }
  return reqs;
}

struct OptCase {
  const char* name;
  BatchGeneratorOptions opts;
};

void PrintTo(const OptCase& c, std::ostream* os) {
  *os << c.name;
}

class MixedBatch : public BatchGeneratorTest, public ::testing::WithParamInterface<OptCase> {};

TEST_P(MixedBatch, EqualsEachRequestAlone) {
  const auto reqs = mixed_requests();
  // Each request alone, with default options (computed once; the demo model is deterministic).
  static const std::vector<GenerationResult> alone = [&] {
    std::vector<GenerationResult> out;
    for (const auto& r : reqs) out.push_back(run({r})[0]);
    return out;
  }();
  ASSERT_EQ(alone.size(), reqs.size());
  const auto batch = run(reqs, GetParam().opts);
  ASSERT_EQ(batch.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(batch[i].tokens.size(), static_cast<size_t>(reqs[i].max_tokens));
    expect_same(batch[i], alone[i],
                "request " + std::to_string(i) + " adapter '" + reqs[i].adapter + "'");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Options, MixedBatch,
    ::testing::Values(OptCase{"defaults", {}}, OptCase{"chunked_prefill_5", opts(64, 5, 1)},
                      OptCase{"two_seqs_at_a_time", opts(2, 2048, 1)},
                      OptCase{"chunked_queued_paged", opts(2, 5, 4)},
                      OptCase{"page_size_3", opts(64, 2048, 3)},
                      OptCase{"page_size_64", opts(64, 2048, 64)},
                      OptCase{"budget_1", opts(3, 1, 2)},
                      // A KV cap below one request: the pool holds only the largest request, so
                      // requests queue for pages rather than for sequence slots.
                      OptCase{"kv_cap_queues", opts(64, 2048, 1, 1)}),
    [](const auto& info) { return std::string(info.param.name); });

SamplingConfig seeded(uint64_t seed) {
  return {0.8f, 0.9f, 50, seed};
}

TEST_F(BatchGeneratorTest, SeededSamplingIsReproducibleAndBatchIndependent) {
  GenerationRequest s = req(prompt(8, 21), "poet", 12);
  s.sampling = seeded(1234);
  const auto first = run({s});
  const auto again = run({s});
  expect_same(again[0], first[0], "same seed, run twice");

  // In a batch next to greedy and other seeded requests, under chunked prefill and queueing.
  std::vector<GenerationRequest> batch = mixed_requests();
  GenerationRequest other = req(prompt(5, 22), "coder", 10);
  other.sampling = seeded(99);
  batch.insert(batch.begin() + 2, s);
  batch.push_back(other);
  for (const auto& o : {BatchGeneratorOptions{}, opts(3, 5, 2)}) {
    const auto out = run(batch, o);
    ASSERT_EQ(out.size(), batch.size());
    expect_same(out[2], first[0], "seeded request inside a batch");
    expect_same(out.back(), run({other})[0], "second seeded request inside a batch");
  }

  // A different seed gives a different output; sampling differs from greedy.
  GenerationRequest s2 = s;
  s2.sampling.seed = 4321;
  EXPECT_NE(run({s2})[0].tokens, first[0].tokens);
  GenerationRequest g = s;
  g.sampling = {};
  EXPECT_NE(run({g})[0].tokens, first[0].tokens);
  // Two identical seeded requests in one batch get identical outputs (per-request RNG).
  const auto twins = run({s, s});
  EXPECT_EQ(twins[0].tokens, first[0].tokens);
  EXPECT_EQ(twins[1].tokens, first[0].tokens);
}

TEST_F(BatchGeneratorTest, StopsAtEos) {
  // Find a prompt whose greedy continuation produces the EOS id: 3-token prompts over a
  // deterministic spread, all in one batch.
  std::vector<GenerationRequest> probes;
  // (With the demo's seed 42, x = 247 makes EOS its second token; the range stops soon after.)
  for (int32_t x = 3; x < 280; ++x) probes.push_back(req({1, x, (x * 7) % 509 + 3}, "", 6));
  const auto out = run(probes);
  ASSERT_EQ(out.size(), probes.size());
  size_t found = out.size(), eos_at = 0;
  for (size_t i = 0; i < out.size() && found == out.size(); ++i) {
    auto it = std::find(out[i].tokens.begin(), out[i].tokens.end(), kEos);
    if (it != out[i].tokens.end())
      found = i, eos_at = static_cast<size_t>(it - out[i].tokens.begin());
  }
  if (found == out.size()) GTEST_SKIP() << "no probe prompt makes the demo model emit EOS greedily";
  std::printf("[ eos      ] probe %zu emits EOS at step %zu\n", found, eos_at);
  // Without stop_at_eos the EOS is just another token.
  EXPECT_EQ(out[found].finish_reason, "length");
  EXPECT_EQ(out[found].tokens.size(), 6u);

  // Case 1: the probe's prompt (EOS after eos_at other tokens, if eos_at > 0). Case 2: the
  // probe's prompt plus the tokens it generated before EOS, so EOS is the very first token.
  GenerationRequest mid = probes[found];
  GenerationRequest first = probes[found];
  first.prompt_ids.insert(first.prompt_ids.end(), out[found].tokens.begin(),
                          out[found].tokens.begin() + static_cast<int64_t>(eos_at));
  const std::vector<int32_t> mid_want(out[found].tokens.begin(),
                                      out[found].tokens.begin() + static_cast<int64_t>(eos_at) + 1);
  for (auto [r, want] : {std::pair{&mid, mid_want}, {&first, std::vector<int32_t>{kEos}}}) {
    SCOPED_TRACE(r == &mid ? "EOS after " + std::to_string(eos_at) + " tokens" : "EOS first");
    r->stop_at_eos = true;
    r->max_tokens = 20;
    const auto alone = run({*r});
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].tokens, want) << "generation must stop right after EOS";
    EXPECT_EQ(alone[0].finish_reason, "stop");
    EXPECT_EQ(alone[0].logprobs.size(), alone[0].tokens.size());

    // In a batch under queueing and chunked prefill, the stopped sequence frees its slot and
    // pages, and every other request runs to its length unchanged.
    std::vector<GenerationRequest> batch = mixed_requests();
    batch.insert(batch.begin() + 1, *r);
    const auto mixed = run(batch, opts(2, 6, 2));
    ASSERT_EQ(mixed.size(), batch.size());
    expect_same(mixed[1], alone[0], "stopped request inside a batch");
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i == 1) continue;
      EXPECT_EQ(mixed[i].finish_reason, "length") << i;
      EXPECT_EQ(mixed[i].tokens.size(), static_cast<size_t>(batch[i].max_tokens)) << i;
    }
  }
}

}  // namespace
}  // namespace ls
