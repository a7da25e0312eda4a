// Long prefill runs' attention as dense cuBLAS fp32 GEMMs (see cuda_attention_runs.h).
#include "backend/cuda/cuda_attention_runs.h"

#include <algorithm>
#include <climits>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {
constexpr size_t kScoreBudget = 256u << 20;
}  // namespace

// Each run: its keys gathered once, then per chunk of query rows S = scale Q K^T (one strided
// batched SGEMM per member of a GQA group, batched over the KV heads), the masked softmax,
// O = P V. A chunk sees keys [window start of its first row, its last row], so the causal
// triangle is mostly skipped; chunks are sized so S stays under kScoreBudget bytes.
void attention_runs(Backend& be, cublasHandle_t cublas, cudaStream_t stream, const float* q,
                    const AttentionBatch& b, const LayerKv& kv, float* out) {
  const int64_t hd = b.head_dim, kvw = kv.kv_width, heads = b.num_q_heads;
  const int64_t qw = heads * hd;
  const int32_t group = b.num_q_heads / b.num_kv_heads;
  const int32_t window = b.sliding_window;
  auto first_key = [&](int64_t pos) -> int64_t {
    return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
  };
  auto chunk_rows = [&](int64_t keys) {
    const int64_t fit = static_cast<int64_t>(kScoreBudget / sizeof(float)) / (heads * keys);
    return std::clamp<int64_t>(fit / 16 * 16, 16, 256);
  };
  // Scratch sized for the largest run.
  int64_t max_keys = 0, max_s = 0;
  for (int32_t r = 0; r < b.num_runs; ++r) {
    const AttentionRun& run = b.runs[r];
    const int64_t end = static_cast<int64_t>(run.pos0) + run.count;
    const int64_t keys = end - first_key(run.pos0);
    max_keys = std::max(max_keys, keys);
    const int64_t rows = std::min<int64_t>(chunk_rows(keys), run.count);
    max_s = std::max(max_s, heads * rows * keys);
  }
  Buffer kbuf = be.alloc(static_cast<size_t>(2 * max_keys * kvw) * sizeof(float));
  Buffer sbuf = be.alloc(static_cast<size_t>(max_s) * sizeof(float));
  float* kg = kbuf.as<float>();
  float* vg = kg + max_keys * kvw;
  float* sc = sbuf.as<float>();
  const float one = 1.0f, zero = 0.0f;
  for (int32_t r = 0; r < b.num_runs; ++r) {
    const AttentionRun& run = b.runs[r];
    const int64_t run_begin = first_key(run.pos0);
    const int64_t run_keys = static_cast<int64_t>(run.pos0) + run.count - run_begin;
    check_cuda(gather_kv(kv, b, run.seq, static_cast<int32_t>(run_begin), run_keys, kg, vg, stream),
               "attention: gather keys");
    const int64_t step = chunk_rows(run_keys);
    for (int64_t c0 = 0; c0 < run.count; c0 += step) {
      const int64_t rows = std::min<int64_t>(step, run.count - c0);
      const int64_t pos_first = run.pos0 + c0;
      const int64_t kb = first_key(pos_first);
      const int64_t nk = pos_first + rows - kb;
      const float* kc = kg + (kb - run_begin) * kvw;
      const float* vc = vg + (kb - run_begin) * kvw;
      const float* qc = q + (run.first + c0) * qw;
      float* oc = out + (run.first + c0) * qw;
      LS_CHECK(nk <= INT_MAX && rows * nk <= INT_MAX);
      const int NK = static_cast<int>(nk), R = static_cast<int>(rows), HD = static_cast<int>(hd);
      for (int32_t g = 0; g < group; ++g)
        check_cublas(cublasSgemmStridedBatched(
                         cublas, CUBLAS_OP_T, CUBLAS_OP_N, NK, R, HD, &b.scale, kc,
                         static_cast<int>(kvw), hd, qc + g * hd, static_cast<int>(qw), group * hd,
                         &zero, sc + g * rows * nk, NK, group * rows * nk, b.num_kv_heads),
                     "attention: S = Q K^T");
      check_cuda(
          masked_softmax(sc, static_cast<int32_t>(heads), R, NK, static_cast<int32_t>(pos_first),
                         static_cast<int32_t>(kb), window, stream),
          "attention: softmax");
      for (int32_t g = 0; g < group; ++g)
        check_cublas(cublasSgemmStridedBatched(cublas, CUBLAS_OP_N, CUBLAS_OP_N, HD, R, NK, &one,
                                               vc, static_cast<int>(kvw), hd, sc + g * rows * nk,
                                               NK, group * rows * nk, &zero, oc + g * hd,
                                               static_cast<int>(qw), group * hd, b.num_kv_heads),
                     "attention: O = P V");
    }
  }
}

}  // namespace ls::cuda
