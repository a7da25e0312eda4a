// CPU reference of the shared-basis LoRA op: per group, gather its tokens, T = X V_g as one
// GEMM, T'_t = S_t T_t per token (a small GEMV, or a scaling for diagonal S), then Y = T' U_g^T
// as one GEMM, added back into the tokens' rows of y. The tile table is for the GPU kernels;
// here the groups are found from the slots. A slot whose S is null adds nothing.
#include <cblas.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace ls {

void CpuBackend::compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& b,
                                 float* y) {
  const int64_t in = b.in_dim, out = b.out_dim;
  std::vector<int64_t> rows;
  std::vector<float> xg, t, t2, yg;
  auto group_of = [&](int64_t i) {
    const int32_t s = b.token_slot[i];
    return s >= 0 && s < b.num_slots ? b.slot_group[s] : -1;
  };
  for (int32_t g = 0; g < b.num_groups; ++g) {
    const int64_t ku = b.dims[3 * g], kv = b.dims[3 * g + 1];
    const bool diag = b.dims[3 * g + 2] != 0;
    if (ku == 0 || kv == 0) continue;
    rows.clear();
    for (int64_t i = 0; i < n; ++i)
      if (group_of(i) == g) rows.push_back(i);
    if (rows.empty()) continue;
    const auto m = static_cast<int64_t>(rows.size());
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
      const float* s = b.slot_s[b.token_slot[rows[r]]];
      const float* tr = t.data() + r * kv;
      float* dst = t2.data() + r * ku;
      if (s == nullptr) continue;  // this adapter leaves the module alone: stays 0
      if (diag) {
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
}

}  // namespace ls
