// CUDA graphs for decode steps (src/model/decode_graphs.h) against the same model without
// graphs on the same GPU: equal greedy tokens and log-probs within tolerance while the batch
// shrinks across buckets and its adapters change from step to step, graphs captured once and
// replayed many times, and no fallback to eager. Skipped without a GPU.
//
// Tolerance 1e-4 (5e-4 for gqa_bf16), the mixed-vs-alone budget of cuda_golden_test: a padded
// batch only changes which cuBLAS kernel runs (summation order), as a different batch does.
#include <gtest/gtest.h>

#include "backend/cuda/cuda_backend.h"
#include "support/test_support.h"

namespace ls {
namespace {

class CudaGraphs : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CudaGraphs, ReplaysEqualEagerWhileAdaptersChange) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  CudaBackendOptions on, off;
  off.graphs = false;
  auto a = make_cuda_backend(on);
  auto b = make_cuda_backend(off);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a.value()->supports_graphs());
  ASSERT_FALSE(b.value()->supports_graphs());
  test::LoadedModel graphs = test::load_fixture(std::move(a).value(), dir);
  test::LoadedModel plain = test::load_fixture(std::move(b).value(), dir);
  ASSERT_TRUE(graphs.model && plain.model);
  const double tol = GetParam() == "gqa_bf16" ? 5e-4 : 1e-4;
  const double worst = test::expect_graphs_match_plain(graphs, plain, tol);
  const GraphStats s = graphs.model->graph_stats();
  std::printf("[ graphs   ] cuda %s: max |dlogprob| %.3g (tol %.0e); %lld captures, %lld replays\n",
              GetParam().c_str(), worst, tol, static_cast<long long>(s.captures),
              static_cast<long long>(s.replays));
}

INSTANTIATE_TEST_SUITE_P(Models, CudaGraphs,
                         ::testing::Values("mha_f32", "gqa_bf16", "qwen2_f16", "mistral_f32"));

}  // namespace
}  // namespace ls
