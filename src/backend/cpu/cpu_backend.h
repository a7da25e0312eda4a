// The CPU backend: the readable reference every other backend is tested against.
// fp32 math on weights converted to fp32 at load; GEMMs through OpenBLAS, loops through OpenMP.
#pragma once

#include "backend/backend.h"

namespace ls {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  std::string_view name() const override { return "cpu"; }

  Buffer alloc(size_t bytes) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void fill_zero(void* dst, size_t bytes) override;
  Weight make_weight(DType dtype, const void* host_data, int64_t rows, int64_t cols) override;

  void embedding(const Weight& table, const int32_t* ids, int64_t n, float* out) override;
  void rms_norm(const float* x, const Weight& w, float eps, int64_t n, float* out) override;
  void add_rms_norm(float* residual, const float* delta, const Weight& w, float eps, int64_t n,
                    float* out) override;
  void gemm(const float* x, int64_t n, const Weight& w, const Weight* bias, float* out,
            bool accumulate) override;
  void rope(float* q, float* k, const RopeParams& p, const int32_t* positions, int64_t n) override;
  void kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                const LayerKv& kv) override;
  void attention(const float* q, const AttentionBatch& batch, const LayerKv& kv,
                 float* out) override;
  void silu_mul(const float* gate, const float* up, int64_t n, int64_t inter, float* out) override;
  void lora_shrink(const float* x, int64_t n, const LoraModuleBatch& lora, float* v) override;
  void lora_expand(const float* v, int64_t n, const LoraModuleBatch& lora, float* y) override;
  void compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& batch,
                       float* y) override;
  void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) override;
  void apply_penalties(float* logits, int64_t vocab, const PenaltyBatch& p) override;
  void top_logprobs(const float* logits, int64_t rows, int64_t vocab, int32_t k, int32_t* ids,
                    float* logprobs) override;
  void sample(const float* logits, int64_t rows, int64_t vocab, const SampleParams* params,
              int32_t* tokens, float* logprobs) override;
};

}  // namespace ls
