// CPU dense ops: embedding, RMSNorm (plain and fused with the residual add), GEMM, SiLU-mul, RoPE.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "base/check.h"
#include "base/thread_pool.h"

namespace ls {

namespace {
const float* wf(const Weight& w) {
  LS_CHECK(w.dtype == DType::kF32);
  return static_cast<const float*>(w.data);
}

// HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, in fp32 (we accumulate in double).
void norm_row(const float* x, const float* w, int64_t d, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
  for (int64_t i = 0; i < d; ++i) out[i] = w[i] * (x[i] * inv);
}
}  // namespace

void CpuBackend::embedding(const Weight& table, const int32_t* ids, int64_t n, float* out) {
  const float* t = wf(table);
  for (int64_t i = 0; i < n; ++i) {
    LS_CHECK(ids[i] >= 0 && ids[i] < table.rows);
    std::memcpy(out + i * table.cols, t + static_cast<int64_t>(ids[i]) * table.cols,
                sizeof(float) * static_cast<size_t>(table.cols));
  }
}

void CpuBackend::rms_norm(const float* x, const Weight& w, float eps, int64_t n, float* out) {
  const int64_t d = w.cols;
  ThreadPool::shared().parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) norm_row(x + r * d, wf(w), d, eps, out + r * d);
      },
      16);
}

void CpuBackend::add_rms_norm(float* residual, const float* delta, const Weight& w, float eps,
                              int64_t n, float* out) {
  const int64_t d = w.cols;
  ThreadPool::shared().parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          float* res = residual + r * d;
          for (int64_t i = 0; i < d; ++i) res[i] += delta[r * d + i];
          norm_row(res, wf(w), d, eps, out + r * d);
        }
      },
      16);
}

// OpenBLAS runs single-threaded (see the constructor); large GEMMs are split over the output
// columns (weight rows) across the shared ThreadPool, so one pool of blocking threads serves all.
void CpuBackend::gemm(const float* x, int64_t n, const Weight& w, const Weight* bias, float* out,
                      bool accumulate) {
  if (n == 0) return;
  const int64_t m = w.rows, k = w.cols;
  const float* wp = wf(w);
  // Split output columns so each thread has at least ~128K multiply-adds.
  const int64_t min_cols = std::max<int64_t>(1, (1 << 17) / std::max<int64_t>(1, n * k));
  ThreadPool::shared().parallel_for(
      m,
      [&](int64_t m0, int64_t m1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n),
                    static_cast<int>(m1 - m0), static_cast<int>(k), 1.0f, x, static_cast<int>(k),
                    wp + m0 * k, static_cast<int>(k), accumulate ? 1.0f : 0.0f, out + m0,
                    static_cast<int>(m));
      },
      min_cols);
  if (bias && !bias->empty()) {
    const float* b = wf(*bias);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < m; ++j) out[r * m + j] += b[j];
  }
}

void CpuBackend::silu_mul(const float* gate, const float* up, int64_t n, int64_t inter,
                          float* out) {
  ThreadPool::shared().parallel_for(
      n * inter,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
      },
      32768);
}

void CpuBackend::rope(float* q, float* k, const RopeParams& p, const int32_t* positions,
                      int64_t n) {
  const int32_t half = p.head_dim / 2;
  for (int64_t t = 0; t < n; ++t) {
    // HF: freqs = inv_freq * pos in fp32, then cos/sin of that fp32 angle.
    float cosv[512], sinv[512];
    LS_CHECK(half <= 512);
    for (int32_t i = 0; i < half; ++i) {
      float angle = p.inv_freq[i] * static_cast<float>(positions[t]);
      cosv[i] = std::cos(angle);
      sinv[i] = std::sin(angle);
    }
    auto rotate = [&](float* head) {
      for (int32_t i = 0; i < half; ++i) {
        float x1 = head[i], x2 = head[i + half];
        head[i] = x1 * cosv[i] - x2 * sinv[i];
        head[i + half] = x2 * cosv[i] + x1 * sinv[i];
      }
    };
    for (int32_t h = 0; h < p.num_q_heads; ++h) rotate(q + (t * p.num_q_heads + h) * p.head_dim);
    for (int32_t h = 0; h < p.num_kv_heads; ++h) rotate(k + (t * p.num_kv_heads + h) * p.head_dim);
  }
}

}  // namespace ls
