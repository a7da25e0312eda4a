// The Engine end to end on the CPU with the demo model: thousands of adapters registered cold
// and served through the tiered cache (disk -> host LRU -> device pages) with power-law
// popularity, outputs identical to each request alone; host-budget evictions and reloads;
// load-failure isolation; a metadata-only registry of 10,000 adapters; cancellation and
// concurrent submitters from several threads; pages back to baseline after every scenario;
// top log-probs and presence/frequency penalties checked against the unpenalised model.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include "base/rng.h"
#include "engine/batch_generator.h"
#include "engine/engine.h"
#include "model/demo_model.h"
#include "support/test_support.h"

namespace ls {
namespace {

struct Collected {
  std::vector<int32_t> tokens;
  std::string reason, error;
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("engine"));
    auto demo = make_demo(*dir_);
    ASSERT_TRUE(demo.ok()) << demo.status().message();
    model_ = new test::LoadedModel(test::load_model(*dir_ + "/model", {}));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  const LlamaModel& model() { return *model_->model; }

  // Writes `n` adapters (ranks cycling 8,16,32,64 on q_proj and v_proj) under one directory.
  static std::vector<std::pair<std::string, std::string>> write_adapters(int n,
                                                                         const std::string& tag) {
    std::vector<std::pair<std::string, std::string>> out;
    const std::string root = test::temp_dir(tag);
    const int32_t ranks[] = {8, 16, 32, 64};
    for (int i = 0; i < n; ++i) {
      RandomAdapterSpec spec;
      spec.name = "a" + std::to_string(i);
      spec.r = ranks[i % 4];
      spec.alpha = 2.0 * spec.r;
      spec.targets = {LoraTarget::kQ, LoraTarget::kV};
      spec.dtype = DType::kF16;
      const std::string dir = root + "/" + spec.name;
      EXPECT_TRUE(write_random_adapter(dir, model_->model->config(), spec, 1000 + i).ok());
      out.emplace_back(spec.name, dir);
    }
    return out;
  }

  // Submits and waits; returns per-request tokens, finish reasons and errors in order.
  static std::vector<Collected> run_all(Engine& engine, const std::vector<EngineRequest>& reqs) {
    std::vector<Collected> out(reqs.size());
    std::mutex mu;
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto id = engine.submit(reqs[i], [&, i](const TokenEvent& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (e.token >= 0) out[i].tokens.push_back(e.token);
        if (e.finished) out[i].reason = e.finish_reason, out[i].error = e.error;
      });
      EXPECT_TRUE(id.ok()) << id.status().message();
    }
    engine.wait_idle();
    return out;
  }

  static EngineRequest request(const std::string& adapter, int seed, int32_t max_tokens = 4) {
    EngineRequest r;
    r.adapter = adapter;
    r.max_tokens = max_tokens;
    for (int i = 0; i < 3 + seed % 5; ++i) r.prompt_ids.push_back(3 + (seed * 31 + i * 17) % 500);
    return r;
  }

  static void expect_pages_back(Engine& e) {
    EngineStats s = e.stats();
    EXPECT_EQ(s.pages_kv, 0) << "KV pages leaked";
    EXPECT_EQ(s.running + s.waiting, 0);
    EXPECT_EQ(s.pages_free + s.pages_adapter, s.pages_total);
  }

  static std::string* dir_;
  static test::LoadedModel* model_;
};
std::string* EngineTest::dir_ = nullptr;
test::LoadedModel* EngineTest::model_ = nullptr;

TEST_F(EngineTest, TwoThousandAdaptersPowerLawThroughEveryTier) {
  const int kAdapters = 2000;
  auto adapters = write_adapters(kAdapters, "adapters2k");
  EngineOptions opts;
  opts.max_num_seqs = 32;
  opts.num_pages = 6000;                      // room for about 20 rank-64 adapters plus KV
  opts.adapters.host_budget_bytes = 8 << 20;  // far below the whole set: host evictions
  Engine engine(model(), opts);
  for (const auto& [name, dir] : adapters)
    ASSERT_TRUE(engine.adapters().register_source(name, dir).ok());
  // S-LoRA's popularity: adapter floor(N * X) with X ~ power(alpha), density alpha x^(alpha-1).
  Rng rng(42);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 600; ++i) {
    const double x = std::pow(rng.uniform(), 1.0 / 0.3);
    reqs.push_back(request("a" + std::to_string(static_cast<int>(kAdapters * x)), i));
  }
  // Two waves: the second finds popular adapters still on the device or in host memory.
  std::vector<EngineRequest> first(reqs.begin(), reqs.begin() + 300),
      second(reqs.begin() + 300, reqs.end());
  auto out = run_all(engine, first);
  auto out2 = run_all(engine, second);
  out.insert(out.end(), out2.begin(), out2.end());
  std::set<std::string> distinct;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_EQ(out[i].reason, "length") << out[i].error;
    distinct.insert(reqs[i].adapter);
  }
  const EngineStats s = engine.stats();
  EXPECT_GT(distinct.size(), 100u);
  EXPECT_GT(s.adapters.host_evictions, 0);
  EXPECT_GT(s.adapters.device_evictions, 0);
  EXPECT_GE(s.adapters.disk_loads, static_cast<int64_t>(distinct.size()));
  EXPECT_GT(s.adapters.device_hits + s.adapters.host_hits, 0);
  EXPECT_EQ(s.adapters.load_failures, 0);
  std::printf(
      "[ adapters ] %zu distinct of %d: disk loads %lld, device hits %lld, host hits %lld, "
      "device evictions %lld, host evictions %lld, fragmentation %.4f\n",
      distinct.size(), kAdapters, (long long)s.adapters.disk_loads,
      (long long)s.adapters.device_hits, (long long)s.adapters.host_hits,
      (long long)s.adapters.device_evictions, (long long)s.adapters.host_evictions,
      s.adapter_fragmentation());
  expect_pages_back(engine);
  // Every 15th request again alone (a fresh engine, adapter loaded directly): same tokens.
  for (size_t i = 0; i < reqs.size(); i += 15) {
    auto a = load_lora_adapter(adapters[std::stoul(reqs[i].adapter.substr(1))].second,
                               reqs[i].adapter, model().config());
    ASSERT_TRUE(a.ok());
    BatchGenerator alone(
        model(), {{reqs[i].adapter, std::make_shared<const LoraAdapter>(std::move(a).value())}});
    GenerationRequest g;
    g.prompt_ids = reqs[i].prompt_ids;
    g.adapter = reqs[i].adapter;
    g.max_tokens = reqs[i].max_tokens;
    auto r = alone.run({g});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value()[0].tokens, out[i].tokens)
        << "request " << i << " adapter " << reqs[i].adapter;
  }
}

TEST_F(EngineTest, HostBudgetEvictionsAndReloadsKeepResultsUnchanged) {
  auto adapters = write_adapters(12, "adapters12");
  std::vector<EngineRequest> reqs;
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 12; ++i) reqs.push_back(request("a" + std::to_string(i), i));
  auto run_with = [&](int64_t host_budget, int32_t pages) {
    EngineOptions opts;
    opts.max_num_seqs = 4;
    opts.num_pages = pages;
    opts.adapters.host_budget_bytes = host_budget;
    Engine engine(model(), opts);
    for (const auto& [name, dir] : adapters)
      EXPECT_TRUE(engine.adapters().register_source(name, dir).ok());
    auto out = run_all(engine, reqs);
    expect_pages_back(engine);
    return std::make_pair(out, engine.stats());
  };
  auto [roomy, roomy_stats] = run_with(1ll << 30, 20000);
  auto [tight, tight_stats] = run_with(1, 1200);  // host keeps nothing; device holds a few
  EXPECT_EQ(roomy_stats.adapters.disk_loads, 12);
  EXPECT_GT(tight_stats.adapters.disk_loads, 12);  // evicted from both tiers, read again
  EXPECT_GT(tight_stats.adapters.host_evictions, 0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(roomy[i].tokens, tight[i].tokens) << i;
    EXPECT_EQ(tight[i].reason, "length");
  }
}

TEST_F(EngineTest, AdapterLoadFailuresFailOnlyTheirRequests) {
  auto adapters = write_adapters(2, "adapters_fail");
  const std::string root = test::temp_dir("broken");
  // A truncated weights file, and a directory that vanished after registration.
  std::filesystem::copy(adapters[0].second, root + "/truncated");
  std::filesystem::resize_file(root + "/truncated/adapter_model.safetensors", 100);
  std::filesystem::copy(adapters[1].second, root + "/vanished");
  Engine engine(model(), EngineOptions{});
  ASSERT_TRUE(engine.adapters().register_source("good", adapters[0].second).ok());
  ASSERT_TRUE(engine.adapters().register_source("truncated", root + "/truncated").ok());
  ASSERT_TRUE(engine.adapters().register_source("vanished", root + "/vanished").ok());
  std::filesystem::remove_all(root + "/vanished");
  std::vector<EngineRequest> reqs = {request("good", 1),      request("truncated", 2),
                                     request("", 3),          request("vanished", 4),
                                     request("truncated", 5), request("good", 6)};
  auto out = run_all(engine, reqs);
  EXPECT_EQ(out[0].reason, "length");
  EXPECT_EQ(out[2].reason, "length");
  EXPECT_EQ(out[5].reason, "length");
  for (int i : {1, 3, 4}) {
    EXPECT_EQ(out[i].reason, "error") << i;
    EXPECT_TRUE(out[i].tokens.empty());
  }
  EXPECT_NE(out[1].error.find("truncated"), std::string::npos) << out[1].error;
  EXPECT_NE(out[3].error.find("vanished"), std::string::npos) << out[3].error;
  // The engine keeps serving: a new request for the good adapter still runs.
  auto again = run_all(engine, {request("good", 1)});
  EXPECT_EQ(again[0].tokens, out[0].tokens);
  // Both requests for "truncated" waited on one load, so two loads failed.
  EXPECT_EQ(engine.stats().adapters.load_failures, 2);
  expect_pages_back(engine);
}

TEST_F(EngineTest, TenThousandRegisteredAdaptersCostOnlyMetadata) {
  Engine engine(model(), EngineOptions{});
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i)
    ASSERT_TRUE(engine.adapters()
                    .register_source("x" + std::to_string(i), "/nonexistent/x" + std::to_string(i))
                    .ok());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.adapters.registered, 10000);
  EXPECT_EQ(s.adapters.in_host, 0);
  EXPECT_EQ(s.adapters.host_bytes, 0);
  EXPECT_EQ(s.adapters.resident, 0);
  EXPECT_EQ(s.adapters.disk_loads, 0);
  EXPECT_LT(secs, 5.0);
  EXPECT_FALSE(engine.adapters().register_source("x5", "/elsewhere").ok());  // names are unique
  EXPECT_TRUE(engine.adapters().unregister("x5").ok());
  EXPECT_EQ(engine.stats().adapters.registered, 9999);
}

TEST_F(EngineTest, CancelMidStreamFreesPagesAndConcurrentSubmittersAreSafe) {
  auto adapters = write_adapters(3, "adapters_mt");
  EngineOptions opts;
  opts.max_num_seqs = 8;
  Engine engine(model(), opts);
  for (const auto& [name, dir] : adapters)
    ASSERT_TRUE(engine.adapters().register_source(name, dir).ok());
  // A long request cancelled after its first token.
  std::promise<RequestId> first_token;
  std::atomic<bool> signalled{false};
  std::atomic<int> events{0};
  std::string reason;
  std::mutex mu;
  auto id = engine.submit(request("a0", 7, 500), [&](const TokenEvent& e) {
    ++events;
    if (e.token >= 0 && !signalled.exchange(true)) first_token.set_value(e.id);
    if (e.finished) {
      std::lock_guard<std::mutex> lock(mu);
      reason = e.finish_reason;
    }
  });
  ASSERT_TRUE(id.ok());
  first_token.get_future().wait();
  engine.cancel(id.value());
  engine.wait_idle();
  EXPECT_EQ(reason, "cancelled");
  EXPECT_LT(events.load(), 500);
  expect_pages_back(engine);
  // Four threads submit at once; results must equal the same requests run alone.
  std::vector<std::vector<Collected>> per_thread(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<EngineRequest> reqs;
      for (int i = 0; i < 6; ++i)
        reqs.push_back(request(i % 4 == 3 ? "" : "a" + std::to_string(i % 3), t * 10 + i));
      per_thread[t] = run_all(engine, reqs);
    });
  for (auto& th : threads) th.join();
  engine.wait_idle();
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 6; ++i) {
      auto alone =
          run_all(engine, {request(i % 4 == 3 ? "" : "a" + std::to_string(i % 3), t * 10 + i)});
      EXPECT_EQ(per_thread[t][static_cast<size_t>(i)].tokens, alone[0].tokens);
    }
  expect_pages_back(engine);
}

TEST_F(EngineTest, RejectsBadRequestsAndAFullQueue) {
  EngineOptions opts;
  opts.max_queue = 2;
  opts.max_num_seqs = 1;
  Engine engine(model(), opts);
  EXPECT_EQ(engine.submit(request("nope", 1), nullptr).status().code(), StatusCode::kNotFound);
  EngineRequest too_long = request("", 1, 1024);
  EXPECT_EQ(engine.submit(too_long, nullptr).status().code(), StatusCode::kInvalidArgument);
  EngineRequest bad_id = request("", 1);
  bad_id.prompt_ids.push_back(512);
  EXPECT_EQ(engine.submit(bad_id, nullptr).status().code(), StatusCode::kInvalidArgument);
  int rejected = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = engine.submit(request("", i, 50), nullptr);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  engine.wait_idle();
  expect_pages_back(engine);
}

// Every token with its top alternatives, collected synchronously.
std::vector<TokenEvent> run_one(Engine& engine, const EngineRequest& req) {
  std::vector<TokenEvent> events;
  std::mutex mu;
  auto id = engine.submit(req, [&](const TokenEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (e.token >= 0) events.push_back(e);
  });
  EXPECT_TRUE(id.ok()) << id.status().message();
  engine.wait_idle();
  return events;
}

TEST_F(EngineTest, TopLogprobsAndPenaltiesMatchTheUnpenalisedModel) {
  Engine engine(model(), {});
  EngineRequest base = request("", 7, 10);
  base.top_logprobs = kMaxTopLogprobs;
  // Greedy: the token is the first alternative, alternatives descend.
  for (const TokenEvent& e : run_one(engine, base)) {
    ASSERT_EQ(e.top.size(), static_cast<size_t>(kMaxTopLogprobs));
    EXPECT_EQ(e.top[0].first, e.token);
    EXPECT_NEAR(e.top[0].second, e.logprob, 1e-6);
    for (size_t j = 1; j < e.top.size(); ++j) EXPECT_LE(e.top[j].second, e.top[j - 1].second);
  }
  // Penalised greedy run: each step's pick must be the argmax of the unpenalised log-probs for
  // the same prefix minus frequency * count + presence (a shift in log-prob space is exact).
  EngineRequest pen = base;
  pen.sampling.frequency_penalty = 1.5f;
  pen.sampling.presence_penalty = 0.5f;
  const std::vector<TokenEvent> got = run_one(engine, pen);
  ASSERT_EQ(got.size(), 10u);
  std::map<int32_t, int32_t> counts;
  std::vector<int32_t> prefix = pen.prompt_ids;
  int checked = 0;
  for (const TokenEvent& e : got) {
    EngineRequest probe = base;
    probe.prompt_ids = prefix;
    probe.max_tokens = 1;
    const auto raw = run_one(engine, probe);
    ASSERT_EQ(raw.size(), 1u);
    auto penalised = [&](int32_t id, float lp) {
      auto it = counts.find(id);
      return it == counts.end() ? lp : lp - 1.5f * static_cast<float>(it->second) - 0.5f;
    };
    float best = -1e30f, picked = -1e30f;
    for (const auto& [id, lp] : raw[0].top) {
      best = std::max(best, penalised(id, lp));
      if (id == e.token) picked = penalised(id, lp);
    }
    if (picked > -1e30f) {
      EXPECT_NEAR(picked, best, 1e-4) << "step " << checked;
      ++checked;
    }
    ++counts[e.token];
    prefix.push_back(e.token);
  }
  EXPECT_GE(checked, 5);
  EXPECT_LE(counts.size(), 10u);
  // Penalties change what a greedy run repeats: the penalised run repeats less.
  std::map<int32_t, int32_t> base_counts;
  EngineRequest longer = base;
  longer.max_tokens = 40;
  for (const TokenEvent& e : run_one(engine, longer)) ++base_counts[e.token];
  pen.max_tokens = 40;
  std::map<int32_t, int32_t> pen_counts;
  for (const TokenEvent& e : run_one(engine, pen)) ++pen_counts[e.token];
  EXPECT_GT(pen_counts.size(), base_counts.size());
  // Out-of-range knobs are refused.
  EngineRequest bad = base;
  bad.top_logprobs = kMaxTopLogprobs + 1;
  EXPECT_EQ(engine.submit(bad, nullptr).status().code(), StatusCode::kInvalidArgument);
  bad = base;
  bad.sampling.repetition_penalty = 0.0f;
  EXPECT_EQ(engine.submit(bad, nullptr).status().code(), StatusCode::kInvalidArgument);
  bad = base;
  bad.sampling.min_p = 1.5f;
  EXPECT_EQ(engine.submit(bad, nullptr).status().code(), StatusCode::kInvalidArgument);
  expect_pages_back(engine);
}

}  // namespace
}  // namespace ls
