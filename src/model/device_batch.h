// The device side of one forward: where its tables live (backend memory) and the host numbers
// the ops are launched with. LlamaModel::forward builds one per step in fresh buffers; the
// decode graphs (decode_graphs.h) build one in fixed buffers padded to a bucket size, so a
// captured graph can be replayed with new contents.
#pragma once

#include <cstdint>
#include <vector>

#include "model/llama_model.h"

namespace ls {

struct DeviceBatch {
  int64_t n = 0;  // tokens
  int32_t num_seqs = 0;
  const int32_t* tokens = nullptr;     // [n]
  const int32_t* positions = nullptr;  // [n]
  const int32_t* token_seq = nullptr;  // [n]
  const int64_t* slot_mapping = nullptr;
  const int32_t* kv_indptr = nullptr;  // [num_seqs + 1]
  const int32_t* kv_indices = nullptr;
  int32_t num_tiles = 0;  // prefill tile hints (AttentionBatch)
  const int32_t* tiles = nullptr;
  int64_t num_rest = 0;
  const int32_t* rest_tokens = nullptr;
  std::vector<AttentionRun> runs;       // host copy of the runs the tiles were cut from
  const int32_t* logit_rows = nullptr;  // [num_logit_rows]
  int64_t num_logit_rows = 0;
  float* logits = nullptr;  // [num_logit_rows, vocab]; null: forward allocates them

  // LoRA tables (LoraModuleBatch's fields for every layer and module), laid out for
  // `lora_slots` slots; lora_slots == 0 means no LoRA in this forward.
  int32_t lora_slots = 0;
  int32_t v_stride = 1;              // columns of the shrink output
  std::vector<int32_t> module_rank;  // [layers * targets] rank launched with; 0 skips
  int64_t chunk_elems = 0;
  DType chunk_dtype = DType::kF32;  // the page store's
  const void* const* chunks = nullptr;
  const int64_t* firsts = nullptr;  // per module: a_first [slots] then bt_first [slots]
  const int32_t* ranks = nullptr;   // [layers * targets * slots]
  const float* scales = nullptr;    // [layers * targets * slots]
  const int32_t* token_slot = nullptr;
  int32_t num_segments = 0;  // runs of tokens sharing a slot (prefill kernels); 0: per token
  const int32_t* seg_start = nullptr;
  const int32_t* seg_slot = nullptr;

  // Compressed adapters (CompressedLoraBatch's fields for every layer and module); 0 groups:
  // none in this forward.
  int32_t comp_groups = 0;
  int32_t comp_k_max = 0;
  std::vector<int32_t> comp_module_k;        // [layers * targets] largest k; 0 skips the module
  const float* const* comp_ptrs = nullptr;   // per module: vt [groups], ut [groups], s [slots]
  const int32_t* comp_dims = nullptr;        // per module: [groups * 3] ku, kv, diag
  const int32_t* comp_slot_group = nullptr;  // [lora_slots]
  const int32_t* comp_rows = nullptr;
  int32_t comp_num_tiles = 0;
  const int32_t* comp_tiles = nullptr;
};

// The LoRA tables of a batch on the host, laid out for `slot_capacity` (>= the batch's
// distinct adapters) slots: every chunk pointer of every (layer, module, slot), per module the
// first-chunk indices, ranks and scales, and each module's largest rank.
struct LoraHostTables {
  std::vector<const void*> chunks;
  std::vector<int64_t> firsts;
  std::vector<int32_t> ranks;
  std::vector<float> scales;
  std::vector<int32_t> module_max_rank;  // [layers * targets]
  int32_t max_rank() const;
  uint32_t target_mask() const;  // bit t: some layer's module t has rank > 0
};

// The compressed adapters' tables of a batch on the host: the clusters present (groups, in
// order of first appearance), per module every group's bases and dims and every slot's S
// (null where the slot is not compressed or its adapter leaves the module alone), and the
// compressed tokens sorted by group in tiles.
struct CompressedHostTables {
  int32_t num_groups = 0;
  int32_t k_max = 0;
  std::vector<const float*> ptrs;   // per module: vt [groups], ut [groups], s [slots]
  std::vector<int32_t> dims;        // per module: [groups * 3]
  std::vector<int32_t> module_k;    // [layers * targets]
  std::vector<int32_t> slot_group;  // [slots]
  std::vector<int32_t> rows;
  std::vector<int32_t> tiles;  // [num_tiles * 2] start in rows, length
};
CompressedHostTables build_compressed_tables(const ModelConfig& c, const ForwardBatch& b);

LoraHostTables build_lora_tables(const ModelConfig& c, const ForwardBatch& b, int32_t slot_capacity,
                                 int64_t chunk_elems);

}  // namespace ls
