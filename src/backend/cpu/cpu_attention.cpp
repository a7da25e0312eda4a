// CPU paged attention: each token attends causally to its sequence's keys, found through the
// CSR page table (kv_indptr / kv_indices). One pass per (token, head); softmax with the max
// subtracted and sums in double. A bf16 cache is written rounded to nearest even and read
// widened to fp32, so the math is the fp32 path's on the stored values.
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/check.h"
#include "base/thread_pool.h"

namespace ls {

namespace {

inline float elem(const float* p, int64_t i) {
  return p[i];
}
inline float elem(const uint16_t* p, int64_t i) {
  return bf16_to_f32(p[i]);
}

template <typename T>
void attend(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out) {
  const T* kc = static_cast<const T*>(kv.k);
  const T* vc = static_cast<const T*>(kv.v);
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
        const T* kh = kc + slot_of(j) * kv.kv_width + head_off;
        float dot = 0.0f;
        for (int32_t i = 0; i < hd; ++i) dot += qh[i] * elem(kh, i);
        dot *= b.scale;
        scores[static_cast<size_t>(j - start)] = dot;
        mx = std::max(mx, dot);
      }
      double sum = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int32_t j = start; j <= pos; ++j) {
        double p = std::exp(static_cast<double>(scores[static_cast<size_t>(j - start)] - mx));
        sum += p;
        const T* vh = vc + slot_of(j) * kv.kv_width + head_off;
        for (int32_t i = 0; i < hd; ++i) acc[static_cast<size_t>(i)] += p * elem(vh, i);
      }
      for (int32_t i = 0; i < hd; ++i)
        oh[i] = static_cast<float>(acc[static_cast<size_t>(i)] / sum);
    }
  });
}

}  // namespace

void CpuBackend::kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                          const LayerKv& kv) {
  LS_CHECK_MSG(kv_dtype_supported(kv.dtype), "kv_write: the KV cache is fp32 or bf16");
  const int64_t w = kv.kv_width;
  for (int64_t t = 0; t < n; ++t) {
    if (slot_mapping[t] < 0) continue;  // padding row (decode graphs): not stored
    const int64_t at = slot_mapping[t] * w;
    if (kv.dtype == DType::kF32) {
      std::memcpy(static_cast<float*>(kv.k) + at, k + t * w,
                  sizeof(float) * static_cast<size_t>(w));
      std::memcpy(static_cast<float*>(kv.v) + at, v + t * w,
                  sizeof(float) * static_cast<size_t>(w));
    } else {
      auto* kd = static_cast<uint16_t*>(kv.k) + at;
      auto* vd = static_cast<uint16_t*>(kv.v) + at;
      for (int64_t i = 0; i < w; ++i) {
        kd[i] = f32_to_bf16(k[t * w + i]);
        vd[i] = f32_to_bf16(v[t * w + i]);
      }
    }
  }
}

void CpuBackend::attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out) {
  LS_CHECK_MSG(kv_dtype_supported(kv.dtype), "attention: the KV cache is fp32 or bf16");
  if (kv.dtype == DType::kF32)
    attend<float>(q, b, kv, out);
  else
    attend<uint16_t>(q, b, kv, out);
}

}  // namespace ls
