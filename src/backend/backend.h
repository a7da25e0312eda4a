// The Backend interface: a short table of coarse ops (one call per layer op) that model code
// calls without naming a device. cpu/ is the reference; cuda/ must match it op for op.
// Pointers passed to ops are backend memory (host memory for the CPU backend); activations are
// fp32 row-major; weights are opaque handles the backend prepared from host tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "backend/compressed_lora_params.h"
#include "backend/op_params.h"
#include "base/dtype.h"

namespace ls {

// A weight matrix [rows, cols] (or vector [cols] with rows == 1) in the backend's own layout.
struct Weight {
  const void* data = nullptr;  // backend memory
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  std::shared_ptr<void> owner;  // keeps the storage alive
  bool empty() const { return data == nullptr; }
};

// A block of backend memory; freed when the last copy of the handle is dropped.
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<void> owner;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// One host-to-backend copy of a batch (see Backend::upload_scatter). `bytes` are the bytes
// stored at dst; with round_to_bf16, src holds bytes / 2 fp32 values that are stored as bf16
// (rounded to nearest even, as f32_to_bf16), so a loader need not make a rounded copy first.
struct UploadPiece {
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
  bool round_to_bf16 = false;
};

// Writes piece p's stored bytes (rounded when it asks) to `out`.
void pack_upload_piece(const UploadPiece& p, void* out);

// OpenAI's upper bound for top_logprobs.
inline constexpr int32_t kMaxTopLogprobs = 20;

// One output of Backend::gemm_parts: the next `rows` rows of the stacked weight, with an
// optional bias ([rows]), into out [n, rows], and optionally the LoRA of that module added on
// top (lora->out_dim == rows; lora_v [n, lora->max_rank] is its scratch, left holding the
// shrink as lora_group leaves it).
struct GemmPart {
  int64_t rows = 0;
  const Weight* bias = nullptr;
  float* out = nullptr;
  const LoraModuleBatch* lora = nullptr;
  float* lora_v = nullptr;
};
inline constexpr int32_t kMaxGemmParts = 3;

// The rows [first, first + rows) of w as a weight of its own (no copy; shares w's storage).
Weight weight_rows(const Weight& w, int64_t first, int64_t rows);
// Checks stack_rows' arguments (1 or more weights of one dtype and width); their rows.
int64_t stack_rows_count(const Weight* parts, int32_t count);
// Checks gemm_parts' arguments (1 to kMaxGemmParts parts whose rows add up to w's); their rows.
int64_t gemm_parts_rows(const Weight& w, const GemmPart* parts, int32_t count);
// The parts that carry a LoRA, as lora_group's arguments (mods, v, y: room for kMaxGemmParts
// each); checks each LoRA's out_dim against its part's rows. Returns how many.
int32_t gemm_parts_lora(const GemmPart* parts, int32_t count, LoraModuleBatch* mods, float** v,
                        float** y);
static_assert(kMaxGemmParts <= kMaxLoraGroup, "a gemm_parts call's LoRAs fit one lora_group");

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // ---- memory ----
  virtual Buffer alloc(size_t bytes) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  // Many copies as one batch (an adapter's thousands of page chunks). Compute work enqueued
  // after the call returns sees them. From a thread other than the one running ops, the copies
  // are NOT ordered after work enqueued earlier and still running (ops or uploads): the caller
  // must hand over destinations that no such work touches (the adapter cache places pages on the
  // engine thread between steps, after the last step's results came back). Default: upload() each
  // piece (rounded first where it asks), which orders as upload() does.
  virtual void upload_scatter(const UploadPiece* pieces, size_t count);
  // Prepares a weight from host data of any supported dtype; the backend picks its layout.
  virtual Weight make_weight(DType dtype, const void* host_data, int64_t rows, int64_t cols) = 0;
  // One weight holding `count` weights of one dtype and width stacked by rows, in order (q, k
  // and v; gate and up), so gemm_parts can read them in one pass. Default: through host memory.
  virtual Weight stack_rows(const Weight* parts, int32_t count);

  // ---- ops ----
  // out[t, :] = table[ids[t], :]; ids must be < table.rows (checked by the caller).
  virtual void embedding(const Weight& table, const int32_t* ids, int64_t n, float* out) = 0;
  // out = x / rms(x) * w, per row of width w.cols.
  virtual void rms_norm(const float* x, const Weight& w, float eps, int64_t n, float* out) = 0;
  // residual += delta; out = rms_norm(residual) * w (the residual add fused into the norm).
  virtual void add_rms_norm(float* residual, const float* delta, const Weight& w, float eps,
                            int64_t n, float* out) = 0;
  // out[n, w.rows] = x[n, w.cols] * w^T (+ bias); accumulate adds into out instead.
  virtual void gemm(const float* x, int64_t n, const Weight& w, const Weight* bias, float* out,
                    bool accumulate) = 0;
  // For the parts of a weight stacked by rows (stack_rows): parts[i].out [n, parts[i].rows] =
  // x * (the next parts[i].rows rows of w)^T (+ parts[i].bias), then + the part's LoRA where it
  // has one (what lora_group over those parts would add). A backend may run the parts as one
  // GEMM and the LoRA beside it (CUDA does); the default runs gemm() on a view of each part's
  // rows, then one lora_group over the parts with a LoRA. A single weight is one part.
  virtual void gemm_parts(const float* x, int64_t n, const Weight& w, const GemmPart* parts,
                          int32_t count);
  // Rotates q [n, q_heads, head_dim] and k [n, kv_heads, head_dim] in place (HF rotate_half).
  virtual void rope(float* q, float* k, const RopeParams& p, const int32_t* positions,
                    int64_t n) = 0;
  // Stores k and v [n, kv_width] of each token at slot_mapping[t] of this layer's cache; a
  // token with slot -1 (padding) is not stored.
  virtual void kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                        const LayerKv& kv) = 0;
  // Causal attention of each token over its sequence's keys read through the page table; a
  // token whose sequence has no keys (padding) gets 0.
  virtual void attention(const float* q, const AttentionBatch& batch, const LayerKv& kv,
                         float* out) = 0;
  // out[n, inter] = silu(gate) * up
  virtual void silu_mul(const float* gate, const float* up, int64_t n, int64_t inter,
                        float* out) = 0;
  // v[t, :rank(s)] = x[t] * A_s^T for the adapter slot s of each token (heterogeneous ranks).
  virtual void lora_shrink(const float* x, int64_t n, const LoraModuleBatch& lora, float* v) = 0;
  // y[t] += scale_s * v[t, :rank(s)] * B_s^T; tokens with slot -1 are left alone.
  virtual void lora_expand(const float* v, int64_t n, const LoraModuleBatch& lora, float* y) = 0;
  // Up to kMaxLoraGroup modules that read the same x (q, k, v; gate, up): for each i,
  // lora_shrink(x, mods[i]) into v[i], then lora_expand into y[i]. A backend may fuse the
  // modules' launches (CUDA does for decode); the default runs them one after another.
  virtual void lora_group(const float* x, int64_t n, const LoraModuleBatch* mods, int32_t count,
                          float* const* v, float* const* y) {
    for (int32_t i = 0; i < count; ++i) {
      lora_shrink(x, n, mods[i], v[i]);
      lora_expand(v[i], n, mods[i], y[i]);
    }
  }
  // Shared-basis LoRA (Compress then Serve): y[t] += U_g S_t V_g^T x[t] for every token t whose
  // slot has a group g (docs/COMPRESSION.md); x V and U are GEMMs over the group's tokens.
  virtual void compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& batch,
                               float* y) = 0;
  // out[r] = log_softmax(logits[r]) over `vocab` columns.
  virtual void log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) = 0;
  // Applies presence/frequency/repetition penalties in place; see PenaltyBatch.
  virtual void apply_penalties(float* logits, int64_t vocab, const PenaltyBatch& p) = 0;
  // The k (1..kMaxTopLogprobs) largest entries of log_softmax(logits[r]) per row, in descending
  // order, ties to the lower id: ids/logprobs are backend memory [rows, k].
  virtual void top_logprobs(const float* logits, int64_t rows, int64_t vocab, int32_t k,
                            int32_t* ids, float* logprobs) = 0;
  // Picks one token per row; see SampleParams. tokens/logprobs are backend memory [rows].
  virtual void sample(const float* logits, int64_t rows, int64_t vocab, const SampleParams* params,
                      int32_t* tokens, float* logprobs) = 0;

  // ---- graphs (optional: CUDA graphs; the CPU backend has none) ----
  // Between begin_capture() and end_capture() ops are recorded, not run, and end_capture()
  // returns a graph that replay() runs again with whatever the recorded pointers then hold.
  // While capturing, alloc() draws on a pool reserved for graphs (a graph keeps using its
  // blocks on every replay), and upload/download are not allowed. end_capture() returns null
  // when the capture failed (the ops then must be run without a graph).
  using Graph = std::shared_ptr<void>;
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture() {}
  virtual Graph end_capture() { return nullptr; }
  virtual void replay(const Graph& graph) { (void)graph; }
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace ls
