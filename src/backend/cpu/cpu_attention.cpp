// CPU paged attention: each token attends causally to its sequence's keys, found through the
// CSR page table (kv_indptr / kv_indices). One pass per (token, head); softmax with the max
// subtracted and sums in double.
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/check.h"
#include "base/thread_pool.h"

namespace ls {

void CpuBackend::kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                          const LayerKv& kv) {
  const size_t row = sizeof(float) * static_cast<size_t>(kv.kv_width);
  for (int64_t t = 0; t < n; ++t) {
    if (slot_mapping[t] < 0) continue;  // padding row (decode graphs): not stored
    std::memcpy(kv.k + slot_mapping[t] * kv.kv_width, k + t * kv.kv_width, row);
    std::memcpy(kv.v + slot_mapping[t] * kv.kv_width, v + t * kv.kv_width, row);
  }
}

void CpuBackend::attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out) {
  const int32_t hd = b.head_dim;
  const int32_t group = b.num_q_heads / b.num_kv_heads;
  LS_CHECK(group * b.num_kv_heads == b.num_q_heads);
  const int64_t work = b.num_tokens * b.num_q_heads;
  // Work items are (token, head) pairs; long sequences make them uneven, so chunks are small.
  ThreadPool::shared().parallel_for(work, [&](int64_t w_begin, int64_t w_end) {
    std::vector<float> scores;
    std::vector<double> acc(static_cast<size_t>(hd));
    for (int64_t w = w_begin; w < w_end; ++w) {
      const int64_t t = w / b.num_q_heads;
      const int32_t h = static_cast<int32_t>(w % b.num_q_heads);
      const int32_t s = b.token_seq[t];
      const int32_t pos = b.token_pos[t];
      const int32_t first_page = b.kv_indptr[s];
      const int32_t num_pages = b.kv_indptr[s + 1] - first_page;
      float* oh = out + (t * b.num_q_heads + h) * hd;
      if (num_pages == 0) {  // a padding row of a decode graph: no keys
        std::fill(oh, oh + hd, 0.0f);
        continue;
      }
      LS_CHECK(pos < num_pages * kv.page_size);
      const int32_t start = b.sliding_window > 0 ? std::max(0, pos - b.sliding_window + 1) : 0;
      const float* qh = q + (t * b.num_q_heads + h) * hd;
      const int64_t head_off = static_cast<int64_t>(h / group) * hd;
      auto slot_of = [&](int32_t j) -> int64_t {
        int64_t page = b.kv_indices[first_page + j / kv.page_size];
        return page * kv.page_size + j % kv.page_size;
      };
      scores.resize(static_cast<size_t>(pos - start + 1));
      float mx = -INFINITY;
      for (int32_t j = start; j <= pos; ++j) {
        const float* kh = kv.k + slot_of(j) * kv.kv_width + head_off;
        float dot = 0.0f;
        for (int32_t i = 0; i < hd; ++i) dot += qh[i] * kh[i];
        dot *= b.scale;
        scores[static_cast<size_t>(j - start)] = dot;
        mx = std::max(mx, dot);
      }
      double sum = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int32_t j = start; j <= pos; ++j) {
        double p = std::exp(static_cast<double>(scores[static_cast<size_t>(j - start)] - mx));
        sum += p;
        const float* vh = kv.v + slot_of(j) * kv.kv_width + head_off;
        for (int32_t i = 0; i < hd; ++i) acc[static_cast<size_t>(i)] += p * vh[i];
      }
      for (int32_t i = 0; i < hd; ++i)
        oh[i] = static_cast<float>(acc[static_cast<size_t>(i)] / sum);
    }
  });
}

}  // namespace ls
