// CPU reference of the shared-basis LoRA op: per group, gather its tokens, T = X V_g as one
// GEMM, T'_t = S_t T_t per token (a small GEMV, or a scaling for diagonal S), then Y = T' U_g^T
// as one GEMM, added back into the tokens' rows of y.
#include <cblas.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace ls {

bool CpuBackend::compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& b,
                                 float* y) {
  const int64_t in = b.in_dim, out = b.out_dim;
  std::vector<int64_t> rows;
  std::vector<float> xg, t, t2, yg;
  for (int32_t g = 0; g < b.num_groups; ++g) {
    rows.clear();
    for (int64_t i = 0; i < n; ++i)
      if (b.token_group[i] == g) rows.push_back(i);
    if (rows.empty()) continue;
    const auto m = static_cast<int64_t>(rows.size());
    const int64_t ku = b.ku[g], kv = b.kv[g];
    xg.resize(static_cast<size_t>(m * in));
    for (int64_t r = 0; r < m; ++r)
      std::copy(x + rows[r] * in, x + rows[r] * in + in, xg.begin() + r * in);
    t.assign(static_cast<size_t>(m * kv), 0.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                static_cast<blasint>(kv), static_cast<blasint>(in), 1.0f, xg.data(),
                static_cast<blasint>(in), b.vt[g], static_cast<blasint>(in), 0.0f, t.data(),
                static_cast<blasint>(kv));
    t2.assign(static_cast<size_t>(m * ku), 0.0f);
    for (int64_t r = 0; r < m; ++r) {
      const float* s = b.token_s[rows[r]];
      const float* tr = t.data() + r * kv;
      float* dst = t2.data() + r * ku;
      if (b.diag) {
        for (int64_t k = 0; k < ku; ++k) dst[k] = s[k] * tr[k];
      } else {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(ku), static_cast<blasint>(kv),
                    1.0f, s, static_cast<blasint>(kv), tr, 1, 0.0f, dst, 1);
      }
    }
    yg.assign(static_cast<size_t>(m * out), 0.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m),
                static_cast<blasint>(out), static_cast<blasint>(ku), 1.0f, t2.data(),
                static_cast<blasint>(ku), b.ut[g], static_cast<blasint>(out), 0.0f, yg.data(),
                static_cast<blasint>(out));
    for (int64_t r = 0; r < m; ++r) {
      float* dst = y + rows[r] * out;
      const float* src = yg.data() + r * out;
      for (int64_t o = 0; o < out; ++o) dst[o] += src[o];
    }
  }
  return true;
}

}  // namespace ls
