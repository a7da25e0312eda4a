// CUDA kernels against the CPU backend on random bf16 weights and fp32 activations.
// Built wherever nvcc exists; skips at run time when no GPU is visible.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_ops.h"
#include "base/dtype.h"
#include "base/rng.h"

namespace ls {
namespace {

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device";
    cpu_ = make_cpu_backend();
  }
  template <typename T>
  T* to_device(const std::vector<T>& v) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, v.size() * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    ptrs_.push_back(p);
    return static_cast<T*>(p);
  }
  std::vector<float> from_device(const float* p, size_t n) {
    std::vector<float> out(n);
    EXPECT_EQ(cudaMemcpy(out.data(), p, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  void TearDown() override {
    for (void* p : ptrs_) cudaFree(p);
  }
  static std::vector<float> randn(Rng& rng, size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(rng.normal());
    return v;
  }
  static std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
    return out;
  }
  static double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      num += (a[i] - b[i]) * (a[i] - b[i]);
      den += b[i] * b[i];
    }
    return std::sqrt(num / den);
  }
  std::unique_ptr<Backend> cpu_;
  std::vector<void*> ptrs_;
};

TEST_F(CudaOps, RmsNormAndResidualMatchCpu) {
  Rng rng(1);
  const int64_t n = 37, d = 4096;
  auto x = randn(rng, n * d), delta = randn(rng, n * d), w = randn(rng, d);
  auto wb = to_bf16(w);
  Weight cw = cpu_->make_weight(DType::kBF16, wb.data(), 1, d);
  std::vector<float> ref(n * d), res_ref = x;
  cpu_->add_rms_norm(res_ref.data(), delta.data(), cw, 1e-5f, n, ref.data());
  float* dres = to_device(x);
  float* dout = to_device(std::vector<float>(n * d, NAN));
  CUDA_OK(cuda::add_rms_norm(dres, to_device(delta), to_device(wb), 1e-5f, n, d, dout, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_LT(max_rel_err(from_device(dout, n * d), ref), 1e-5);
  EXPECT_LT(max_rel_err(from_device(dres, n * d), res_ref), 1e-6);
}

TEST_F(CudaOps, SiluMulAndEmbeddingMatchCpu) {
  Rng rng(2);
  const int64_t n = 1000, inter = 11008;
  auto g = randn(rng, n * inter), u = randn(rng, n * inter);
  std::vector<float> ref(n * inter);
  cpu_->silu_mul(g.data(), u.data(), n, inter, ref.data());
  float* dout = to_device(std::vector<float>(n * inter, NAN));
  CUDA_OK(cuda::silu_mul(to_device(g), to_device(u), n * inter, dout, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_LT(max_rel_err(from_device(dout, n * inter), ref), 1e-6);

  const int64_t vocab = 3000, d = 512;
  auto table = to_bf16(randn(rng, vocab * d));
  std::vector<int32_t> ids = {0, 2999, 17, 17, 1234};
  Weight ct = cpu_->make_weight(DType::kBF16, table.data(), vocab, d);
  std::vector<float> eref(ids.size() * d);
  cpu_->embedding(ct, ids.data(), static_cast<int64_t>(ids.size()), eref.data());
  float* eout = to_device(std::vector<float>(ids.size() * d, NAN));
  CUDA_OK(cuda::embedding(to_device(table), to_device(ids), static_cast<int64_t>(ids.size()), d,
                          eout, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(from_device(eout, ids.size() * d), eref);
}

}  // namespace
}  // namespace ls
