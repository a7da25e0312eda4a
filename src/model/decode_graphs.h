// Decode steps as CUDA graphs, through the Backend's optional graph API (the model still names
// no device). A decode batch (one token per sequence, every token's logits wanted) of n
// sequences is padded to a bucket size B (1, 2, 4, 8, then steps of 8 to 64, 16 to 128, 32
// beyond), its tables are written into fixed buffers sized for the largest bucket, and the
// layer code (LlamaModel::run_device) is captured once per key (B, LoRA rank stride, set of
// LoRA target modules) and replayed on later steps.
//
// Adapters enter a graph only through table contents: chunk pointers, ranks, scales and each
// token's slot, laid out for B slots (a decode batch of B tokens has at most B adapters), with
// every module of the target set launched at the key's rank stride (slots of smaller rank, or
// that skip the module, do less work in the same launch). So one graph serves every mix of
// adapters with that rank stride and module set, and the adapter set may change from step to
// step without a new capture. While the batch's adapters stay the same (the same placements, in
// the same slots, at the same bucket), their tables stay in the buffers from the step before.
//
// Padding rows: token 0 at position 0 of a sequence with no pages, KV slot -1 (not written),
// no adapter, output 0 from attention; their logits are computed and ignored. Graphs are
// dropped and captured again when the page store's memory moves or a table outgrows its
// buffer (the buffer grows to twice what is needed).
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/device_batch.h"
#include "model/llama_model.h"

namespace ls {

class DecodeGraphs {
 public:
  DecodeGraphs(const LlamaModel& model, int32_t max_batch);

  // True for a decode batch of at most max_batch sequences: token t is sequence t's only
  // token and logit row t.
  static bool eligible(const ForwardBatch& b, int32_t max_batch);
  // The padded size a batch of n runs at.
  static int32_t bucket(int32_t n);

  // Runs the batch as a graph replay; returns logits whose first b.logit_rows.size() rows
  // are the batch's (rows beyond are padding), or nullopt when it must run eagerly.
  std::optional<Buffer> run(const ForwardBatch& b, const PageStore& kv);
  GraphStats stats() const;

 private:
  struct Key {
    int32_t batch = 0;
    int32_t v_stride = 0;  // 0: no LoRA
    uint32_t mask = 0;     // LoRA target modules launched
    auto operator<=>(const Key&) const = default;
  };
  // Fixed buffers (backend memory) the graphs read; reallocated (and graphs dropped) on growth.
  struct Tables {
    Buffer tokens, positions, token_seq, slots, indptr, indices, rows, token_slot;
    Buffer chunks, firsts, ranks, scales, logits;
    size_t page_capacity = 0, chunk_capacity = 0;
  };

  void reallocate(size_t pages, size_t chunks);
  DeviceBatch device_batch(const Key& key) const;
  template <typename T>
  void upload(const Buffer& dst, const std::vector<T>& v);

  const LlamaModel& model_;
  Backend& be_;
  int32_t max_batch_;
  int32_t max_bucket_;
  Tables t_;
  std::vector<void*> store_signature_;  // layer K/V pointers the graphs were captured with
  int64_t chunk_elems_ = 0;             // of that store
  DType chunk_dtype_ = DType::kF32;     // of that store
  std::map<Key, Backend::Graph> graphs_;
  // The LoRA tables in t_ were built for these adapters (ResidentAdapter::serial, in slot
  // order) at this bucket; a step with the same ones skips building and uploading them (at
  // batch 64 with 64 rank-16 q,k,v,o adapters they are 2 MiB of chunk pointers a step).
  bool lora_cached_ = false;
  std::vector<uint64_t> lora_serials_;
  int32_t lora_batch_ = 0;
  uint32_t lora_mask_ = 0;
  int32_t lora_max_rank_ = 0;
  bool failed_ = false;
  GraphStats stats_;
};

}  // namespace ls
