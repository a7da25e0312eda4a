// The HF golden fixtures (tests/fixtures/golden, written by tools/make_golden.py: transformers
// + PEFT in float64 on the stored weights) through the CUDA backend, end to end through the
// engine: first-step log-prob vectors, greedy tokens, the CUDA run against the CPU run, and a
// mixed batch equal to each request alone. Skipped without a GPU.
//
// Tolerances: the fixture's own (1e-3 f32, 2e-3 bf16/f16), as for the CPU backend. The CUDA
// path is fp32 in everything the CPU does in fp32: SGEMM without TF32 for f32 weights, and for
// bf16/f16 weights fp32 activations fed to the tensor cores as hi + lo halves (~16 mantissa
// bits), with fp32 accumulation. Measured against the CPU it lands near 1e-5 (printed), far
// inside the budget. (Rounding activations to bf16 instead moved gqa_bf16's log-probs by up to
// 0.3 and broke batch invariance.) Greedy tokens are compared up to the first step whose
// reference top-2 margin is below 1e-3. Mixed batch vs alone: tokens equal and log-probs
// within 1e-4, 1e-3 for gqa_bf16: the summation order differs (cuBLAS picks kernels by batch
// size, attention splits by row count: ~1e-7 relative), and a single-token forward takes the
// skinny decode GEMM (fp32 activations, exact) where a batch takes the hi + lo split (7.6e-6
// per element); gqa_bf16's 16 narrow layers amplify input perturbations about 50-fold (its
// split-vs-CPU gap was 3.5e-4; exact-vs-split measured 5.7e-4 on an H100).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "backend/cuda/cuda_backend.h"
#include "engine/batch_generator.h"
#include "support/test_support.h"

namespace ls {
namespace {

using Loaded = test::LoadedModel;
using test::load_fixture;

class CudaGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CudaGolden, MatchesTransformersAndCpu) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const test::Golden golden = test::read_golden(dir);
  const auto& cases = golden.cases;
  const double tol = golden.tolerance;
  auto be = make_cuda_backend();
  ASSERT_TRUE(be.ok()) << be.status().message();
  Loaded gpu = load_fixture(std::move(be).value(), dir);
  Loaded cpu = load_fixture(make_cpu_backend(), dir);
  ASSERT_TRUE(gpu.model && cpu.model);
  BatchGenerator gen(*gpu.model, gpu.adapters);
  BatchGenerator cpu_gen(*cpu.model, cpu.adapters);
  int compared = 0;
  double worst_hf = 0, worst_cpu = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE("adapter=" + (c.adapter.empty() ? std::string("<base>") : c.adapter));
    auto res = gen.run({test::golden_request(c)});
    auto cres = cpu_gen.run({test::golden_request(c)});
    ASSERT_TRUE(res.ok() && cres.ok());
    const GenerationResult& r = res.value()[0];
    const GenerationResult& cr = cres.value()[0];
    ASSERT_EQ(r.prompt_last_logprobs.size(), c.first_logprobs.size());
    const double worst = test::max_abs_diff(r.prompt_last_logprobs, c.first_logprobs);
    const double worst_c = test::max_abs_diff(r.prompt_last_logprobs, cr.prompt_last_logprobs);
    EXPECT_LE(worst, tol) << "first-step log-prob vector differs from transformers";
    EXPECT_LE(worst_c, tol) << "first-step log-prob vector differs from the CPU backend";
    worst_hf = std::max(worst_hf, worst);
    worst_cpu = std::max(worst_cpu, worst_c);
    for (size_t s = 0; s < c.tokens.size(); ++s) {
      EXPECT_EQ(r.tokens[s], c.tokens[s]) << "greedy token differs at step " << s;
      if (r.tokens[s] != c.tokens[s]) break;
      EXPECT_NEAR(r.logprobs[s], c.logprobs[s], tol) << "step " << s;
      ++compared;
      if (c.margins[s] < 1e-3) break;  // a near tie: later tokens may legitimately differ
    }
  }
  EXPECT_GT(compared, static_cast<int>(cases.size()));
  std::printf(
      "[ golden   ] cuda %s: %zu cases, %d greedy steps, max |dlogprob| vs HF %.3g, vs CPU %.3g "
      "(tol %.0e)\n",
      GetParam().c_str(), cases.size(), compared, worst_hf, worst_cpu, tol);
}

// With a bf16 page pool (the CUDA default): the CUDA run against the CPU run with the same
// bf16 pool. Both round the same fp32 K, V and adapter rows to nearest even, so they differ
// only where a CUDA-vs-CPU difference of ~1e-6 crosses a bf16 rounding boundary (a 0.4% step
// of that element); the first-step vectors must agree within the fixture's tolerance, except
// gqa_bf16 (0.15): its layers amplify input perturbations ~50-fold (see above), and the
// flipped roundings moved its log-probs by up to 0.082 on an H200 (its bf16-KV run is 0.295
// from transformers on the CPU too, hf_golden_test). Greedy tokens must agree while the
// reference's top-2 margin is clear.
TEST_P(CudaGolden, Bf16KvCacheMatchesCpuBf16KvCache) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const test::Golden golden = test::read_golden(dir);
  const double tol = GetParam() == "gqa_bf16" ? 0.15 : golden.tolerance;
  auto be = make_cuda_backend();
  ASSERT_TRUE(be.ok()) << be.status().message();
  Loaded gpu = load_fixture(std::move(be).value(), dir);
  Loaded cpu = load_fixture(make_cpu_backend(), dir);
  ASSERT_TRUE(gpu.model && cpu.model);
  BatchGeneratorOptions o;
  o.kv_dtype = DType::kBF16;
  BatchGenerator gen(*gpu.model, gpu.adapters, o);
  BatchGenerator cpu_gen(*cpu.model, cpu.adapters, o);
  double worst_all = 0;
  int compared = 0;
  for (const auto& c : golden.cases) {
    SCOPED_TRACE("adapter=" + (c.adapter.empty() ? std::string("<base>") : c.adapter));
    auto res = gen.run({test::golden_request(c)});
    auto cres = cpu_gen.run({test::golden_request(c)});
    ASSERT_TRUE(res.ok() && cres.ok());
    const GenerationResult& r = res.value()[0];
    const GenerationResult& cr = cres.value()[0];
    ASSERT_EQ(r.prompt_last_logprobs.size(), cr.prompt_last_logprobs.size());
    const double worst = test::max_abs_diff(r.prompt_last_logprobs, cr.prompt_last_logprobs);
    EXPECT_LE(worst, tol) << "first-step log-prob vector differs from the CPU's (bf16 KV)";
    worst_all = std::max(worst_all, worst);
    for (size_t s = 0; s < r.tokens.size() && s < cr.tokens.size(); ++s) {
      EXPECT_EQ(r.tokens[s], cr.tokens[s]) << "greedy token differs at step " << s;
      if (r.tokens[s] != cr.tokens[s]) break;
      ++compared;
      if (s < c.margins.size() && c.margins[s] < 0.1) break;  // close to a tie
    }
  }
  EXPECT_GT(compared, 0);
  std::printf(
      "[ golden   ] cuda %s, bf16 KV: %d greedy steps, max |dlogprob| vs CPU %.3g (tol "
      "%.2g)\n",
      GetParam().c_str(), compared, worst_all, tol);
}

// bf16 activations (CudaBackendOptions::bf16_activations: cuBLAS GEMMs of x rounded to bf16,
// the flash kernel for prefill runs) with the bf16 cache, the fast configuration, against the
// fp64 transformers reference. Tolerance per model: about 1.25x the worst first-step
// difference measured on an H100 (mha_f32 0.051-0.071, gqa_bf16 0.278-0.587, qwen2_f16
// 0.033-0.055, mistral_f32 0.038-0.056, the upper figures with the prefill LoRA on the tensor
// cores; gqa_bf16 moves 0.295 with the bf16 cache alone, see hf_golden_test); greedy tokens
// must agree while the reference's top-2 margin exceeds twice that.
double bf16_activations_tolerance(const std::string& model) {
  return model == "gqa_bf16" ? 0.75 : 0.09;
}

TEST_P(CudaGolden, Bf16ActivationsMatchTransformers) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const test::Golden golden = test::read_golden(dir);
  const double tol = bf16_activations_tolerance(GetParam());
  CudaBackendOptions bo;
  bo.bf16_activations = true;
  auto be = make_cuda_backend(bo);
  ASSERT_TRUE(be.ok()) << be.status().message();
  Loaded gpu = load_fixture(std::move(be).value(), dir);
  ASSERT_TRUE(gpu.model);
  BatchGeneratorOptions o;
  o.kv_dtype = DType::kBF16;
  BatchGenerator gen(*gpu.model, gpu.adapters, o);
  double worst_all = 0;
  int compared = 0;
  for (const auto& c : golden.cases) {
    SCOPED_TRACE("adapter=" + (c.adapter.empty() ? std::string("<base>") : c.adapter));
    auto res = gen.run({test::golden_request(c)});
    ASSERT_TRUE(res.ok());
    const GenerationResult& r = res.value()[0];
    ASSERT_EQ(r.prompt_last_logprobs.size(), c.first_logprobs.size());
    const double worst = test::max_abs_diff(r.prompt_last_logprobs, c.first_logprobs);
    EXPECT_LE(worst, tol) << "first-step log-prob vector differs from transformers";
    worst_all = std::max(worst_all, worst);
    for (size_t s = 0; s < c.tokens.size(); ++s) {
      if (c.margins[s] < 2 * tol) break;  // too close to call at this precision
      EXPECT_EQ(r.tokens[s], c.tokens[s]) << "greedy token differs at step " << s;
      if (r.tokens[s] != c.tokens[s]) break;
      EXPECT_NEAR(r.logprobs[s], c.logprobs[s], tol) << "step " << s;
      ++compared;
    }
  }
  std::printf(
      "[ golden   ] cuda %s, bf16 activations + KV: %d greedy steps, max |dlogprob| vs HF %.3g "
      "(tol %.2g)\n",
      GetParam().c_str(), compared, worst_all, tol);
}

TEST_P(CudaGolden, MixedBatchEqualsEachAlone) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  const test::Golden golden = test::read_golden(dir);
  const auto& cases = golden.cases;
  auto be = make_cuda_backend();
  ASSERT_TRUE(be.ok()) << be.status().message();
  Loaded gpu = load_fixture(std::move(be).value(), dir);
  ASSERT_TRUE(gpu.model);
  std::vector<GenerationRequest> all;
  for (const auto& c : cases) all.push_back(test::golden_request(c));
  const double tol = GetParam() == "gqa_bf16" ? 1e-3 : 1e-4;
  const double worst = test::expect_mixed_equals_alone(gpu, all, tol);
  std::printf("[ golden   ] cuda %s: mixed vs alone max |dlogprob| %.3g (tol %.0e)\n",
              GetParam().c_str(), worst, tol);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaGolden,
                         ::testing::Values("mha_f32", "gqa_bf16", "qwen2_f16", "mistral_f32"));

}  // namespace
}  // namespace ls
