// CPU sampling: greedy argmax (ties to the lowest id), the reported log-prob is the raw
// log-softmax whatever the sampling knobs, top_k = 1 and tiny top_p reduce to greedy, a fixed
// uniform is deterministic, and over many uniforms from ls::Rng the picks follow
// softmax(logits / T) restricted to the top-k / min-p / top-p set (chi-square check), never
// leaving it. Penalties and top log-probs against hand-computed values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/backend.h"
#include "base/rng.h"

namespace ls {
namespace {

std::vector<float> random_logits(Rng& rng, int64_t vocab, double scale) {
  std::vector<float> v(static_cast<size_t>(vocab));
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale + 0.25);
  return v;
}

double ref_logprob(const std::vector<float>& x, int32_t tok) {
  double mx = *std::max_element(x.begin(), x.end()), sum = 0;
  for (float f : x) sum += std::exp(f - mx);
  return x[static_cast<size_t>(tok)] - mx - std::log(sum);
}

// The distribution sampling should follow: softmax(x / T), keep the top_k most likely
// (ties to lower ids), drop those below min_p times the top probability, renormalise, keep the
// smallest prefix whose mass reaches top_p.
std::vector<double> ref_distribution(const std::vector<float>& x, float t, int32_t top_k,
                                     float top_p, float min_p = 0.0f) {
  const size_t v = x.size();
  std::vector<int32_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  size_t keep = top_k > 0 ? std::min(v, static_cast<size_t>(top_k)) : v;
  const double mx = x[order[0]];
  while (keep > 1 && std::exp((x[order[keep - 1]] - mx) / t) < min_p) --keep;
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += std::exp((x[order[i]] - mx) / t);
  double cum = 0;
  size_t cut = keep;
  for (size_t i = 0; i < keep; ++i) {
    cum += std::exp((x[order[i]] - mx) / t) / total;
    if (cum >= top_p) {
      cut = i + 1;
      break;
    }
  }
  std::vector<double> p(v, 0.0);
  double kept = 0;
  for (size_t i = 0; i < cut; ++i) kept += std::exp((x[order[i]] - mx) / t);
  for (size_t i = 0; i < cut; ++i) p[order[i]] = std::exp((x[order[i]] - mx) / t) / kept;
  return p;
}

class CpuSampling : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend();
  Rng rng{77};

  // One row per params entry, all over the same logits.
  void sample_rows(const std::vector<float>& logits, const std::vector<SampleParams>& params,
                   std::vector<int32_t>* tokens, std::vector<float>* logprobs) {
    const int64_t vocab = static_cast<int64_t>(logits.size());
    std::vector<float> rows;
    rows.reserve(params.size() * logits.size());
    for (size_t r = 0; r < params.size(); ++r)
      rows.insert(rows.end(), logits.begin(), logits.end());
    tokens->assign(params.size(), -1);
    logprobs->assign(params.size(), NAN);
    be->sample(rows.data(), static_cast<int64_t>(params.size()), vocab, params.data(),
               tokens->data(), logprobs->data());
  }
  int32_t sample_one(const std::vector<float>& logits, SampleParams p) {
    std::vector<int32_t> t;
    std::vector<float> lp;
    sample_rows(logits, {p}, &t, &lp);
    return t[0];
  }
};

TEST_F(CpuSampling, GreedyPicksArgmaxPerRow) {
  const int64_t vocab = 300, rows = 4;
  std::vector<float> logits;
  std::vector<int32_t> want;
  for (int64_t r = 0; r < rows; ++r) {
    auto row = random_logits(rng, vocab, 3.0);
    want.push_back(static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
    logits.insert(logits.end(), row.begin(), row.end());
  }
  std::vector<SampleParams> params(rows);  // temperature 0: greedy, uniform ignored
  params[1].uniform = 0.99;
  params[2].top_k = 7;
  params[3].top_p = 0.1f;
  std::vector<int32_t> tokens(rows, -1);
  std::vector<float> lps(rows, NAN);
  be->sample(logits.data(), rows, vocab, params.data(), tokens.data(), lps.data());
  EXPECT_EQ(tokens, want);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> row(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    EXPECT_NEAR(lps[r], ref_logprob(row, tokens[r]), 1e-5) << "row " << r;
  }
}

TEST_F(CpuSampling, GreedyTiesGoToLowestId) {
  auto logits = random_logits(rng, 64, 1.0);
  for (int32_t i : {40, 17, 5, 63}) logits[i] = 10.0f;
  EXPECT_EQ(sample_one(logits, {}), 5);
  std::vector<float> flat(32, -1.5f);
  EXPECT_EQ(sample_one(flat, {}), 0);
  // top_k = 1 with a tie also keeps the lowest id, whatever the uniform.
  for (double u : {0.0, 0.5, 0.999999}) EXPECT_EQ(sample_one(logits, {1.3f, 1.0f, 1, u}), 5) << u;
}

TEST_F(CpuSampling, LogprobIsRawLogSoftmaxWhateverTheKnobs) {
  const int64_t vocab = 200;
  auto logits = random_logits(rng, vocab, 2.5);
  std::vector<SampleParams> params = {
      {0.0f, 1.0f, 0, 0.0},   {0.5f, 1.0f, 3, 0.7},   {2.0f, 0.5f, 0, 0.3},
      {1.0f, 1.0f, 0, 0.999}, {0.8f, 0.9f, 50, 0.42}, {5.0f, 1.0f, 0, 0.9999},
      {0.05f, 0.2f, 10, 0.5}, {1.0f, 1.0f, 1, 0.6},
  };
  std::vector<int32_t> tokens;
  std::vector<float> lps;
  sample_rows(logits, params, &tokens, &lps);
  for (size_t r = 0; r < params.size(); ++r) {
    ASSERT_GE(tokens[r], 0);
    ASSERT_LT(tokens[r], vocab);
    EXPECT_NEAR(lps[r], ref_logprob(logits, tokens[r]), 1e-5)
        << "row " << r << " (temperature " << params[r].temperature << ")";
  }
  // A high temperature with a uniform near 1 must reach beyond the argmax; its log-prob is
  // still the unmodified one (not the tempered one).
  EXPECT_NE(tokens[5], sample_one(logits, {}));
}

TEST_F(CpuSampling, TopK1AndTinyTopPEqualGreedy) {
  for (int trial = 0; trial < 20; ++trial) {
    auto logits = random_logits(rng, 128, 0.7);
    const int32_t greedy = sample_one(logits, {});
    for (double u : {0.0, 0.25, 0.5, 0.75, 0.999999, rng.uniform()}) {
      for (float t : {0.3f, 1.0f, 4.0f}) {
        EXPECT_EQ(sample_one(logits, {t, 1.0f, 1, u}), greedy) << "top_k=1 T=" << t << " u=" << u;
        EXPECT_EQ(sample_one(logits, {t, 1e-6f, 0, u}), greedy)
            << "top_p tiny T=" << t << " u=" << u;
      }
    }
  }
}

TEST_F(CpuSampling, FixedUniformIsDeterministicAndFollowsTheCdf) {
  auto logits = random_logits(rng, 100, 1.0);
  for (double u : {0.0, 0.1, 0.37, 0.5, 0.9, 0.999}) {
    SampleParams p{0.8f, 0.9f, 50, u};
    const int32_t first = sample_one(logits, p);
    for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(sample_one(logits, p), first) << u;
  }
  // The uniform is mapped through the CDF of the kept tokens in descending order, so every
  // backend that follows the CPU reference picks alike: u = 0 gives the most likely token,
  // u -> 1 the least likely kept one, and larger u never gives a more likely token.
  const int32_t greedy = sample_one(logits, {});
  EXPECT_EQ(sample_one(logits, {1.0f, 1.0f, 0, 0.0}), greedy);
  std::vector<int32_t> order(100);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  EXPECT_EQ(sample_one(logits, {1.0f, 1.0f, 7, 0.9999999}), order[6]);
  std::vector<int32_t> rank_of(100);
  for (int32_t i = 0; i < 100; ++i) rank_of[order[i]] = i;
  int32_t last_rank = 0;
  for (int i = 0; i <= 100; ++i) {
    const int32_t tok = sample_one(logits, {1.2f, 1.0f, 0, std::min(i / 100.0, 0.9999999)});
    EXPECT_GE(rank_of[tok], last_rank) << "u=" << i / 100.0;
    last_rank = rank_of[tok];
  }
}

struct DistCase {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p = 0.0f;
};

void PrintTo(const DistCase& c, std::ostream* os) {
  *os << c.name;
}

class SamplingDistribution : public CpuSampling, public ::testing::WithParamInterface<DistCase> {};

TEST_P(SamplingDistribution, EmpiricalFrequenciesMatchTheRestrictedSoftmax) {
  const DistCase& c = GetParam();
  const int64_t vocab = 16;
  const int n = 20000;
  Rng lrng(5);
  auto logits = random_logits(lrng, vocab, 1.2);
  const std::vector<double> p = ref_distribution(logits, c.temperature, c.top_k, c.top_p, c.min_p);
  std::vector<SampleParams> params(n);
  Rng urng(1234);
  for (auto& sp : params) sp = {c.temperature, c.top_p, c.top_k, urng.uniform(), c.min_p};
  std::vector<int32_t> tokens;
  std::vector<float> lps;
  sample_rows(logits, params, &tokens, &lps);
  std::vector<int> counts(vocab, 0);
  for (int32_t t : tokens) {
    ASSERT_GE(t, 0);
    ASSERT_LT(t, vocab);
    ++counts[t];
  }
  int kept = 0;
  double chi2 = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the top-k/top-p set";
      continue;
    }
    ++kept;
    const double expected = p[i] * n;
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  // Loose: the 1e-6 quantile of chi-square with <= 15 degrees of freedom is below 55;
  // a wrong temperature or a missed renormalisation gives thousands.
  EXPECT_LT(chi2, 55.0) << kept << " kept tokens";
  if (c.top_k > 0) {
    EXPECT_LE(kept, c.top_k);
  }
  for (int i = 0; i < n; i += 997) ASSERT_NEAR(lps[i], ref_logprob(logits, tokens[i]), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, SamplingDistribution,
                         ::testing::Values(DistCase{"plain_T1", 1.0f, 0, 1.0f},
                                           DistCase{"cold_T0_6", 0.6f, 0, 1.0f},
                                           DistCase{"hot_T2_5", 2.5f, 0, 1.0f},
                                           DistCase{"top_k5", 0.8f, 5, 1.0f},
                                           DistCase{"top_p0_7", 1.0f, 0, 0.7f},
                                           DistCase{"top_k8_top_p0_8", 1.3f, 8, 0.8f},
                                           DistCase{"min_p0_1", 1.0f, 0, 1.0f, 0.1f},
                                           DistCase{"min_p0_3_top_p0_9", 0.7f, 0, 0.9f, 0.3f}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(CpuSampling, MinPOfOneIsGreedyAndMinPKeepsOnlyCloseTokens) {
  Rng lrng(3);
  auto logits = random_logits(lrng, 50, 1.5);
  const int32_t greedy = sample_one(logits, {});
  for (double u : {0.0, 0.5, 0.999})
    EXPECT_EQ(sample_one(logits, {1.0f, 1.0f, 0, u, 1.0f}), greedy);
  // Two tokens far above the rest: min_p 0.5 keeps exactly those two.
  std::vector<float> two(10, 0.0f);
  two[3] = 10.0f;
  two[7] = 9.9f;
  std::vector<int> seen(10, 0);
  for (int i = 0; i < 200; ++i) ++seen[sample_one(two, {1.0f, 1.0f, 0, i / 200.0, 0.5f})];
  EXPECT_GT(seen[3], 0);
  EXPECT_GT(seen[7], 0);
  EXPECT_EQ(seen[3] + seen[7], 200);
}

TEST_F(CpuSampling, PenaltiesFollowTheOpenAIAndHfRules) {
  // Row 0: repetition 2 on ids 1 (positive logit, prompt only) and 2 (negative, generated
  // twice) plus frequency 0.5 and presence 0.25 on id 2. Row 1: no entries, untouched.
  std::vector<float> logits = {1.0f, 4.0f, -2.0f, 3.0f, 1.0f, 4.0f, -2.0f, 3.0f};
  std::vector<int32_t> indptr = {0, 2, 2}, ids = {1, 2}, counts = {0, 2};
  std::vector<float> presence = {0.25f, 1.0f}, frequency = {0.5f, 1.0f}, repetition = {2.0f, 3.0f};
  PenaltyBatch pb;
  pb.rows = 2;
  pb.indptr = indptr.data();
  pb.ids = ids.data();
  pb.output_counts = counts.data();
  pb.presence = presence.data();
  pb.frequency = frequency.data();
  pb.repetition = repetition.data();
  be->apply_penalties(logits.data(), 4, pb);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], 2.0f);                  // 4 / 2
  EXPECT_FLOAT_EQ(logits[2], -4.0f - 1.0f - 0.25f);  // -2 * 2 - 0.5 * 2 - 0.25
  EXPECT_FLOAT_EQ(logits[3], 3.0f);
  for (int i = 4; i < 8; ++i) EXPECT_FLOAT_EQ(logits[i], (std::vector<float>{1, 4, -2, 3})[i - 4]);
}

TEST_F(CpuSampling, TopLogprobsAreSortedWithTiesToTheLowerId) {
  std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<int32_t> ids(6);
  std::vector<float> lps(6);
  be->top_logprobs(logits.data(), 2, 5, 3, ids.data(), lps.data());
  EXPECT_EQ(ids[0], 4);
  EXPECT_EQ(ids[1], 1);
  EXPECT_EQ(ids[2], 2);
  EXPECT_NEAR(lps[0], ref_logprob({0.5f, 2.0f, 2.0f, -1.0f, 3.0f}, 4), 1e-6);
  EXPECT_NEAR(lps[1], lps[2], 1e-7);
  EXPECT_EQ(ids[3], 0);  // all equal: the lowest ids first
  EXPECT_EQ(ids[4], 1);
  EXPECT_EQ(ids[5], 2);
  EXPECT_NEAR(lps[3], -std::log(5.0), 1e-6);
}

}  // namespace
}  // namespace ls
