// The workload generator against S-LoRA's own generator: tests/fixtures/bench/slora_trace_*.jsonl
// were written by tools/slora_trace_reference.py (S-LoRA's generate_requests on numpy's legacy
// RandomState); every request must match, lengths and adapters exactly, arrival times to the
// last few bits. Also numpy's distributions on their own and the spec checks.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "numpy_random.h"
#include "support/test_support.h"
#include "workload.h"

namespace ls::bench {
namespace {

void expect_matches_reference(const WorkloadSpec& spec, const std::string& fixture) {
  std::ifstream in(test::fixture_dir() + "/bench/" + fixture);
  ASSERT_TRUE(in) << fixture;
  const auto got = generate_workload(spec);
  size_t i = 0;
  for (std::string line; std::getline(in, line); ++i) {
    ASSERT_LT(i, got.size()) << fixture << ": we made fewer requests";
    const auto ref = nlohmann::json::parse(line);
    EXPECT_EQ(got[i].adapter, ref["adapter"].get<int32_t>()) << fixture << " request " << i;
    EXPECT_EQ(got[i].input_len, ref["input_len"].get<int32_t>()) << fixture << " request " << i;
    EXPECT_EQ(got[i].output_len, ref["output_len"].get<int32_t>()) << fixture << " request " << i;
    const double t = ref["timestamp"].get<double>();
    EXPECT_NEAR(got[i].arrival_s, t, 1e-12 * std::max(1.0, t)) << fixture << " request " << i;
  }
  EXPECT_EQ(i, got.size()) << fixture << ": request counts differ";
}

TEST(Workload, MatchesSLoraTable3Setting) {
  WorkloadSpec s;  // tools/slora_trace_reference.py 2000 1 10 1 12 8 512 8 512
  s.num_adapters = 2000;
  s.alpha = 1;
  s.rate = 10;
  s.cv = 1;
  s.duration_s = 12;
  expect_matches_reference(s, "slora_trace_table3.jsonl");
}

TEST(Workload, MatchesSLoraSkewedBurstySetting) {
  WorkloadSpec s;  // tools/slora_trace_reference.py 200 0.3 2.5 4 20 8 64 4 16 7
  s.num_adapters = 200;
  s.alpha = 0.3;  // power law: small indices popular
  s.rate = 2.5;
  s.cv = 4;  // Gamma shape 1/16: the shape < 1 branch
  s.duration_s = 20;
  s.input_lo = 8;
  s.input_hi = 64;
  s.output_lo = 4;
  s.output_hi = 16;
  s.seed = 7;
  expect_matches_reference(s, "slora_trace_skewed.jsonl");
}

TEST(Workload, CountTruncatesLikePythonInt) {
  WorkloadSpec s;
  s.rate = 3.3;
  s.duration_s = 2.0;  // 6.6 -> 6, as int(req_rate * duration)
  EXPECT_EQ(generate_workload(s).size(), 6u);
}

TEST(Workload, AdapterNamesCycleThroughRanks) {
  WorkloadSpec s;  // S-LoRA's S2: [rank-64-0, rank-32-0, rank-16-0, rank-8-0, rank-64-1, ...]
  s.ranks = {64, 32, 16, 8};
  EXPECT_EQ(adapter_rank(s, 0), 64);
  EXPECT_EQ(adapter_rank(s, 5), 32);
  EXPECT_EQ(adapter_rank(s, 7), 8);
  EXPECT_EQ(adapter_name(s, 0), "lora-r64-0");
  EXPECT_EQ(adapter_name(s, 3), "lora-r8-0");
  EXPECT_EQ(adapter_name(s, 5), "lora-r32-1");
  WorkloadSpec one;  // S1: ranks {8}; its lora-r8-0 is S2's too
  one.ranks = {8};
  EXPECT_EQ(adapter_name(one, 0), "lora-r8-0");
  EXPECT_EQ(adapter_name(one, 1999), "lora-r8-1999");
}

TEST(Workload, ChecksTheSpec) {
  WorkloadSpec s;
  EXPECT_EQ(check_workload(s), "");
  s.input_hi = s.input_lo;
  EXPECT_NE(check_workload(s).find("input range"), std::string::npos);
  s = WorkloadSpec();
  s.ranks.clear();
  EXPECT_NE(check_workload(s).find("rank"), std::string::npos);
  s = WorkloadSpec();
  s.cv = 0;
  EXPECT_NE(check_workload(s).find("cv"), std::string::npos);
}

TEST(NumpyLegacyRandom, MatchesNumpyDraws) {
  // python3 -c "import numpy as np; np.random.seed(42); print(list(np.random.power(1.0, 2)),
  //   np.random.randint(8, 512, 3), list(np.random.gamma(1.0, 0.1, 1)))"
  NumpyLegacyRandom r(42);
  EXPECT_DOUBLE_EQ(r.power(1.0), 0.3745401188473625);
  EXPECT_DOUBLE_EQ(r.power(1.0), 0.9507143064099162);
  EXPECT_EQ(r.randint(8, 512), 114);
  EXPECT_EQ(r.randint(8, 512), 79);
  EXPECT_EQ(r.randint(8, 512), 196);
  EXPECT_DOUBLE_EQ(r.gamma(1.0, 0.1), 0.09084469696321254);
  NumpyLegacyRandom one(7);
  EXPECT_EQ(one.randint(8, 9), 8);  // a range of one value draws nothing
  EXPECT_EQ(one.next_u32(), NumpyLegacyRandom(7).next_u32());
}

}  // namespace
}  // namespace ls::bench
