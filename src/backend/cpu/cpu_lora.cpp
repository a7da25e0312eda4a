// CPU LoRA shrink/expand over runs of tokens that share an adapter slot: the slot's paged rows
// are gathered into a contiguous matrix, then one GEMM per run (prefill runs are long, decode
// runs one token); heterogeneous ranks in one call. bf16 rows (a bf16 page store) are widened
// to fp32 as they are read.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/check.h"

namespace ls {

namespace {
// Calls fn(first_token, num_tokens, slot) for each maximal run of equal token_slot.
template <typename Fn>
void for_each_run(const int32_t* token_slot, int64_t n, Fn fn) {
  int64_t start = 0;
  while (start < n) {
    int64_t end = start + 1;
    while (end < n && token_slot[end] == token_slot[start]) ++end;
    if (token_slot[start] >= 0) fn(start, end - start, token_slot[start]);
    start = end;
  }
}

// Element i of chunk c, widened to fp32.
inline float chunk_elem(const LoraModuleBatch& l, const void* c, int64_t i) {
  return l.dtype == DType::kF32 ? static_cast<const float*>(c)[i]
                                : bf16_to_f32(static_cast<const uint16_t*>(c)[i]);
}

// Copies `rank` paged rows of width `dim` into a contiguous fp32 [rank, dim] matrix.
void gather_rows(const LoraModuleBatch& l, int64_t first, int32_t rank, int64_t dim,
                 std::vector<float>* out) {
  const int64_t cf = l.chunk_elems;
  const int64_t per_row = (dim + cf - 1) / cf;
  out->resize(static_cast<size_t>(rank * dim));
  for (int32_t j = 0; j < rank; ++j)
    for (int64_t k = 0; k < per_row; ++k) {
      const int64_t len = std::min(cf, dim - k * cf);
      const void* c = l.chunks[first + j * per_row + k];
      float* dst = out->data() + j * dim + k * cf;
      if (l.dtype == DType::kF32)
        std::memcpy(dst, c, sizeof(float) * static_cast<size_t>(len));
      else
        convert_to_f32(DType::kBF16, c, dst, static_cast<size_t>(len));
    }
}

}  // namespace

// Short runs (decode) read the paged rows in place: a gather would copy more bytes than the
// dot products read. Long runs (prefill) gather once and use one GEMM.
constexpr int64_t kGatherMinRows = 4;

void CpuBackend::lora_shrink(const float* x, int64_t n, const LoraModuleBatch& l, float* v) {
  LS_CHECK_MSG(kv_dtype_supported(l.dtype), "lora_shrink: adapter rows are fp32 or bf16");
  std::vector<float> a;
  for_each_run(l.token_slot, n, [&](int64_t t0, int64_t rows, int32_t s) {
    LS_CHECK(s < l.num_slots);
    const int32_t r = l.rank[s];
    if (r == 0) return;
    LS_CHECK(r <= l.max_rank);
    if (rows < kGatherMinRows) {
      const int64_t cf = l.chunk_elems, per_row = (l.in_dim + cf - 1) / cf;
      for (int64_t t = t0; t < t0 + rows; ++t)
        for (int32_t j = 0; j < r; ++j) {
          float acc = 0.0f;
          for (int64_t k = 0; k < per_row; ++k) {
            const void* c = l.chunks[l.a_first[s] + j * per_row + k];
            const float* xt = x + t * l.in_dim + k * cf;
            const int64_t len = std::min(cf, l.in_dim - k * cf);
            for (int64_t i = 0; i < len; ++i) acc += xt[i] * chunk_elem(l, c, i);
          }
          v[t * l.max_rank + j] = acc;
        }
      return;
    }
    gather_rows(l, l.a_first[s], r, l.in_dim, &a);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), r,
                static_cast<int>(l.in_dim), 1.0f, x + t0 * l.in_dim, static_cast<int>(l.in_dim),
                a.data(), static_cast<int>(l.in_dim), 0.0f, v + t0 * l.max_rank, l.max_rank);
  });
}

void CpuBackend::lora_expand(const float* v, int64_t n, const LoraModuleBatch& l, float* y) {
  LS_CHECK_MSG(kv_dtype_supported(l.dtype), "lora_expand: adapter rows are fp32 or bf16");
  std::vector<float> bt;
  for_each_run(l.token_slot, n, [&](int64_t t0, int64_t rows, int32_t s) {
    LS_CHECK(s < l.num_slots);
    const int32_t r = l.rank[s];
    if (r == 0) return;
    LS_CHECK(r <= l.max_rank);
    if (rows < kGatherMinRows) {
      const int64_t cf = l.chunk_elems, per_row = (l.out_dim + cf - 1) / cf;
      for (int64_t t = t0; t < t0 + rows; ++t)
        for (int32_t j = 0; j < r; ++j) {
          const float w = l.scale[s] * v[t * l.max_rank + j];
          for (int64_t k = 0; k < per_row; ++k) {
            const void* c = l.chunks[l.bt_first[s] + j * per_row + k];
            float* yt = y + t * l.out_dim + k * cf;
            const int64_t len = std::min(cf, l.out_dim - k * cf);
            for (int64_t i = 0; i < len; ++i) yt[i] += w * chunk_elem(l, c, i);
          }
        }
      return;
    }
    gather_rows(l, l.bt_first[s], r, l.out_dim, &bt);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(l.out_dim), r, l.scale[s], v + t0 * l.max_rank, l.max_rank,
                bt.data(), static_cast<int>(l.out_dim), 1.0f, y + t0 * l.out_dim,
                static_cast<int>(l.out_dim));
  });
}

}  // namespace ls
