// Plain structs that describe one op call: paged KV, attention batches, LoRA slots, sampling.
// All pointers are backend memory; every field says its shape.
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace ls {

struct RopeParams {
  const float* inv_freq = nullptr;  // [head_dim / 2], scaling (llama3, linear) already applied
  int32_t head_dim = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
};

// The element types a KV cache (and the adapter rows sharing its pages) may be stored in:
// fp32 (exact, the CPU default) or bf16 (half the bytes, vLLM's default on GPUs). Values are
// written rounded to nearest even and read widened to fp32; all math stays fp32.
inline bool kv_dtype_supported(DType t) {
  return t == DType::kF32 || t == DType::kBF16;
}

// One layer's K and V caches: page p holds `page_size` token vectors of `kv_width` elements of
// `dtype`.
struct LayerKv {
  void* k = nullptr;  // [num_pages, page_size, kv_width]
  void* v = nullptr;  // [num_pages, page_size, kv_width]
  DType dtype = DType::kF32;
  int32_t page_size = 1;
  int32_t kv_width = 0;  // num_kv_heads * head_dim
};

// The tokens of one forward and where each sequence's keys live (CSR page table).
// A prefill run (host memory): `count` consecutive tokens from token `first`, all of sequence
// `seq`, at positions pos0, pos0 + 1, ... (attention_tiles.h builds them beside the tiles).
struct AttentionRun {
  int32_t first = 0;
  int32_t count = 0;
  int32_t seq = 0;
  int32_t pos0 = 0;
};

struct AttentionBatch {
  int64_t num_tokens = 0;
  int32_t num_seqs = 0;
  const int32_t* token_seq = nullptr;   // [num_tokens] sequence of each token
  const int32_t* token_pos = nullptr;   // [num_tokens] position; attends to keys 0..pos
  const int32_t* kv_indptr = nullptr;   // [num_seqs + 1] offsets into kv_indices
  const int32_t* kv_indices = nullptr;  // [kv_indptr[num_seqs]] pages of each sequence in order
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float scale = 1.0f;          // softmax scale, 1/sqrt(head_dim)
  int32_t sliding_window = 0;  // 0: none; else keys in (pos - window, pos]
  // Optional hints for a tiled (tensor-core) prefill kernel; backends without one ignore them
  // (attention_tiles.h builds them). Tile i covers tiles[2i+1] (1..16) consecutive tokens from
  // token tiles[2i], all of one sequence at consecutive positions; rest_tokens lists the tokens
  // outside every tile. num_tiles == 0: every token is computed on its own.
  int32_t num_tiles = 0;
  const int32_t* tiles = nullptr;  // [2 * num_tiles]
  int64_t num_rest = 0;
  const int32_t* rest_tokens = nullptr;  // [num_rest]
  // Optional host-side copy of the same runs the tiles were cut from (exactly the tiled tokens),
  // for backends that compute a long run as dense GEMMs (CUDA); needs the tiles too.
  int32_t num_runs = 0;
  const AttentionRun* runs = nullptr;  // host memory [num_runs]
};

// The LoRA factors of one module (say layer 3's q_proj) for every adapter slot in the batch,
// read through page tables: each row of A [rank, in_dim] and of B^T [rank, out_dim] is split
// into chunks of `chunk_elems` elements of `dtype` (one page's K or V block of this layer, so
// the KV cache's dtype); chunk k of row j
// of slot s's A is chunks[a_first[s] + j * ceil(in_dim / chunk_elems) + k] and holds elements
// [k * chunk_elems, min(in_dim, (k + 1) * chunk_elems)). A slot whose adapter does not touch
// this module has rank 0.
struct LoraModuleBatch {
  int32_t num_slots = 0;
  int32_t max_rank = 0;  // v is [n, max_rank]
  int64_t in_dim = 0;
  int64_t out_dim = 0;
  int64_t chunk_elems = 0;
  DType dtype = DType::kF32;            // of the chunks: kF32 or kBF16
  const void* const* chunks = nullptr;  // chunk pointers of every slot's A and B^T rows
  const int64_t* a_first = nullptr;     // [num_slots] index of A row 0, chunk 0 in `chunks`
  const int64_t* bt_first = nullptr;    // [num_slots] index of B^T row 0, chunk 0
  const int32_t* rank = nullptr;        // [num_slots]
  const float* scale = nullptr;         // [num_slots] alpha / r (or alpha / sqrt(r) with rslora)
  const int32_t* token_slot = nullptr;  // [n] slot of each token, -1 for none
  // Runs of consecutive tokens with one slot (prefill), built once per forward: they cover
  // tokens 0..n-1 in order and seg_slot agrees with token_slot.
  int32_t num_segments = 0;
  const int32_t* seg_start = nullptr;  // [num_segments + 1] token offsets
  const int32_t* seg_slot = nullptr;   // [num_segments]
};

// Most modules one Backend::lora_group call takes (q, k and v share their input).
inline constexpr int32_t kMaxLoraGroup = 3;

// Per-row sampling. temperature 0 = greedy (ties to the lowest id). Otherwise softmax of
// logits / temperature, keep the top_k (0 = all), then drop tokens whose probability is below
// min_p times the top token's (0 = off), then keep the smallest prefix whose mass (renormalised
// over what is left) reaches top_p, and pick with `uniform` in [0, 1) drawn by the caller (so
// every backend picks alike). logprob out = log_softmax(logits)[token] of the logits as passed
// (after penalties, before temperature).
struct SampleParams {
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  double uniform = 0.0;
  float min_p = 0.0f;
};

// Penalties on the logits of `rows` rows (in place), each over the distinct tokens its sequence
// has seen: entries indptr[r]..indptr[r+1] of ids/output_counts (output_counts = times the id
// was generated; 0 = only in the prompt). For every listed id: first the repetition penalty
// (HF/vLLM: logit > 0 ? logit / repetition : logit * repetition; 1 = off), then, where
// output_count > 0, logit -= frequency * output_count + presence (OpenAI; 0 = off).
struct PenaltyBatch {
  int64_t rows = 0;
  const int32_t* indptr = nullptr;         // [rows + 1]
  const int32_t* ids = nullptr;            // [indptr[rows]] distinct per row
  const int32_t* output_counts = nullptr;  // [indptr[rows]]
  const float* presence = nullptr;         // [rows]
  const float* frequency = nullptr;        // [rows]
  const float* repetition = nullptr;       // [rows]
};

}  // namespace ls
