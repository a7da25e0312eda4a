// The Llama family (Llama, Mistral, Qwen2): weights on a backend and one forward over a mixed
// batch in which every token carries its own adapter slot. Model code names no device.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "memory/page_store.h"
#include "model/adapter_layout.h"
#include "model/lora_adapter.h"
#include "model/model_config.h"

namespace ls {

// Everything one forward needs, built on the host once per step (plain data).
struct ForwardBatch {
  std::vector<int32_t> tokens;           // [n]
  std::vector<int32_t> positions;        // [n]
  std::vector<int32_t> token_seq;        // [n] sequence index of each token
  std::vector<int64_t> slot_mapping;     // [n] KV slot (page * page_size + offset) written
  std::vector<int32_t> kv_indptr;        // [num_seqs + 1]
  std::vector<int32_t> kv_indices;       // [kv_indptr.back()] pages of each sequence in order
  std::vector<int32_t> token_lora_slot;  // [n] index into lora_slots, -1 for the base model
  std::vector<const ResidentAdapter*> lora_slots;  // [num_slots] distinct adapters of the batch
  std::vector<int32_t> logit_rows;                 // token rows whose next-token logits are wanted
  int32_t num_seqs() const { return static_cast<int32_t>(kv_indptr.size()) - 1; }
};

struct DeviceBatch;
class DecodeGraphs;

// How often decode steps ran as replays of captured graphs.
struct GraphStats {
  int64_t captures = 0;  // graphs recorded (one per bucket, adapter rank and module set)
  int64_t replays = 0;   // forwards that ran as a graph replay
  int64_t eager = 0;     // decode forwards that could not use a graph (too big, capture failed)
  int32_t graphs = 0;    // graphs held now
  int64_t lora_tables_reused = 0;  // replays whose LoRA tables were those of the step before
};

class LlamaModel {
 public:
  ~LlamaModel();
  // Reads config.json and the safetensors weights of `dir` onto `backend`.
  static Result<std::unique_ptr<LlamaModel>> load(const std::string& dir, Backend& backend);

  // Builds the model from `config` with each weight made by `source(name, shape)` (HF tensor
  // names and shapes, e.g. "model.layers.0.self_attn.q_proj.weight", {q_dim, hidden}). load()
  // uses the safetensors files; make_random_model() random data made on the device.
  using WeightSource =
      std::function<Result<Weight>(const std::string& name, const std::vector<int64_t>& shape)>;
  static Result<std::unique_ptr<LlamaModel>> from_weights(const ModelConfig& config,
                                                          Backend& backend,
                                                          const WeightSource& source);

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }

  // Runs the batch; returns logits [logit_rows.size(), vocab] in backend memory. K/V of the
  // batch's tokens are written into `store`; adapters are read from their pages there.
  // Decode-only batches (one token per sequence) of up to `max_batch` sequences run as CUDA
  // graph replays when the backend supports graphs (padded to a bucket size); 0 turns graphs
  // off. Default 256.
  Buffer forward(const ForwardBatch& batch, const PageStore& store) const;
  void set_max_graph_batch(int32_t max_batch);
  GraphStats graph_stats() const;

 private:
  struct Layer {
    Weight input_norm;                      // [hidden]
    Weight q, k, v, o;                      // [q_dim, hidden], [kv_dim, hidden] x2, [hidden, q_dim]
    Weight q_bias, k_bias, v_bias, o_bias;  // [q_dim], [kv_dim] x2, [hidden]; empty if none
    Weight post_norm;                       // [hidden]
    Weight gate, up, down;                  // [inter, hidden] x2, [hidden, inter]
    Weight gate_bias, up_bias, down_bias;   // mlp_bias only
    // q, k, v and gate, up stacked by rows (Backend::stack_rows) when each group shares a
    // dtype; q, k, v, gate and up are then views of these rows. Empty when not stacked.
    Weight qkv, gate_up;
  };

  friend class DecodeGraphs;
  LlamaModel(ModelConfig config, Backend& backend);
  // The layers over a batch whose tables are already on the device; writes d.logits.
  void run_device(const DeviceBatch& d, const PageStore& store) const;

  ModelConfig config_;
  Backend& backend_;
  Weight embed_;       // [vocab, hidden]
  Weight final_norm_;  // [hidden]
  Weight lm_head_;     // [vocab, hidden] (the embedding when tied)
  std::vector<Layer> layers_;
  Buffer inv_freq_;  // [head_dim / 2] fp32
  mutable std::mutex graph_mu_;
  mutable std::unique_ptr<DecodeGraphs> graphs_;
  int32_t max_graph_batch_ = 256;
};

}  // namespace ls
