// Kernel launchers of the CUDA backend, in the punica style: device pointers, sizes and a
// stream in, a cudaError_t out. Activations and the KV cache are fp32 row-major; weights are
// bf16, f16 or f32 (`DType`); every sum accumulates in fp32 (double where the CPU reference
// does, for log-sum-exp and sampling masses). CudaBackend (cuda_backend.cpp) calls these;
// tests go through the Backend interface.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/compressed_lora_params.h"
#include "backend/op_params.h"
#include "base/dtype.h"

namespace ls::cuda {

// ---- copies (cuda_ops.cu) ----
// One device-side copy per descriptor: `bytes` to dst from staging + src_offset, where the
// source holds the same bytes or, with round_to_bf16, bytes / 2 fp32 values stored as bf16
// (nearest even; NaN keeps its sign and high payload bits, as ls::f32_to_bf16).
struct ScatterDesc {
  void* dst;
  uint64_t src_offset;
  uint64_t bytes;
  uint64_t round_to_bf16;
};
// Runs the `count` copies of `descs` (device memory) out of `staging` (device memory).
cudaError_t scatter_copy(const ScatterDesc* descs, int64_t count, const char* staging,
                         cudaStream_t stream);

// ---- dense (cuda_ops.cu) ----
// out[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * w, for n rows of width d (x may equal out).
cudaError_t rms_norm(const float* x, const void* w, DType wt, float eps, int64_t n, int64_t d,
                     float* out, cudaStream_t stream);
// residual[r] += delta[r]; out[r] = rms_norm(residual[r]) * w.
cudaError_t add_rms_norm(float* residual, const float* delta, const void* w, DType wt, float eps,
                         int64_t n, int64_t d, float* out, cudaStream_t stream);
// out[i] = silu(gate[i]) * up[i] for `count` elements (out may equal gate or up).
cudaError_t silu_mul(const float* gate, const float* up, int64_t count, float* out,
                     cudaStream_t stream);
// out[t] = table[ids[t]] as fp32; ids outside [0, table_rows) give a row of zeros.
cudaError_t embedding(const void* table, DType wt, int64_t table_rows, const int32_t* ids,
                      int64_t n, int64_t d, float* out, cudaStream_t stream);
// HF rotate-half RoPE of q [n, q_heads, hd] and k [n, kv_heads, hd] in place.
cudaError_t rope(float* q, float* k, const RopeParams& p, const int32_t* positions, int64_t n,
                 cudaStream_t stream);
// k/v [n, kv_width] to slot_mapping[t] of the layer cache; negative slots are skipped.
cudaError_t kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                     const LayerKv& kv, cudaStream_t stream);
// Splits fp32 x into two bf16/f16 halves, hi = round(x) and lo = round(x - hi), written as
// [hi rows; lo rows] (2 x count elements), so one GEMM over 2n rows sees x to ~16 bits. lo
// false: only hi (x rounded to the weight type, count elements).
cudaError_t split_f32(const float* x, int64_t count, DType to, void* out, cudaStream_t stream,
                      bool lo = true);
// Decode GEMM: y[n, m] = x[n, k] W[m, k]^T (+ bias) (+ y when accumulate) for bf16/f16 W and
// n <= kSkinnyMaxRows, reading W once at close to copy bandwidth (fp32 products, no split).
// skinny_gemm_fits says whether the shapes and alignment (k % 8, 16-byte x and W) allow it.
inline constexpr int64_t kSkinnyMaxRows = 16;
bool skinny_gemm_fits(const float* x, int64_t n, int64_t k, const void* w, DType wt);
cudaError_t skinny_gemm(const float* x, int64_t n, int64_t k, const void* w, DType wt, int64_t m,
                        const void* bias, DType bt, bool accumulate, float* y, cudaStream_t stream);
// Tensor-core decode GEMM (cuda_decode_gemm.cu): y[n, m] = x[n, k] W[m, k]^T (+ bias) (+ y when
// accumulate) for bf16/f16 W and n <= kDecodeGemmMaxRows, one launch, W read once. x is split
// into hi + lo halves of the weight type in registers (~16 bits, as the cuBLAS split path).
// W's rows may feed up to kDecodeGemmMaxParts outputs: part p takes the next outs[p].rows rows
// into outs[p].y [n, rows] with its own bias (q, k and v from one stacked weight).
// decode_gemm_fits: bf16/f16, k a multiple of 32, 16-byte aligned x and W. The plan splits the
// reduction over blocks from (m, k, SMs) alone, so results do not depend on n; a plan of more
// than one split needs decode_gemm_scratch_floats of scratch and decode_gemm_counters(m)
// counters, zero at the first launch (each launch leaves them zero again).
inline constexpr int64_t kDecodeGemmMaxRows = 64;
inline constexpr int kDecodeGemmMaxParts = 3;
struct DecodeGemmPlan {
  int splits = 1;
  int64_t chunks_per_split = 0;
};
struct DecodeGemmOut {
  int64_t rows = 0;
  float* y = nullptr;
  const void* bias = nullptr;  // [rows] of bias_dtype, or null
  DType bias_dtype = DType::kF32;
  const float* add = nullptr;  // [n, rows] added last (combine_split_parts only), or null
};
DecodeGemmPlan decode_gemm_plan(int64_t m, int64_t k, int sm_count);
size_t decode_gemm_scratch_floats(int64_t n, int64_t m, const DecodeGemmPlan& plan);
int64_t decode_gemm_counters(int64_t m);
bool decode_gemm_fits(const float* x, int64_t n, int64_t k, const void* w, DType wt, int64_t m);
cudaError_t decode_gemm(const float* x, int64_t n, int64_t k, const void* w, DType wt,
                        const DecodeGemmOut* outs, int parts, bool accumulate,
                        const DecodeGemmPlan& plan, float* scratch, size_t scratch_floats,
                        unsigned* counters, int64_t num_counters, cudaStream_t stream);
// out[r, :] += bias for n rows of width m.
cudaError_t add_bias(float* out, int64_t n, int64_t m, const void* bias, DType bt,
                     cudaStream_t stream);
// out[r, j] = y2[r, j] + y2[n + r, j] (+ bias[j]) (+ out[r, j] when accumulate).
cudaError_t combine_split(const float* y2, int64_t n, int64_t m, const void* bias, DType bt,
                          bool accumulate, float* out, cudaStream_t stream);
// The same over the parts of a stacked weight: y2 is [2n, sum of rows], part p's columns go
// to outs[p].y [n, rows] with its bias (no accumulate), plus outs[p].add where it is set (a
// LoRA computed beside the GEMM). y2 null: only outs[p].y += outs[p].add (after a decode GEMM).
// lo false: y2 is [n, sum of rows], one GEMM of x rounded to the weight type (split_f32, lo
// false).
cudaError_t combine_split_parts(const float* y2, int64_t n, const DecodeGemmOut* outs, int parts,
                                cudaStream_t stream, bool lo = true);

// out[i] = offset + scale * u(seed, i), u uniform in [-1, 1) from a counter hash, as `to`.
cudaError_t fill_random(void* out, DType to, int64_t count, uint64_t seed, float scale,
                        float offset, cudaStream_t stream);

// ---- paged attention (cuda_attention.cu) ----
// How many parts each (token, head) splits its keys into, from the rows to run and the SMs.
int attention_splits(int64_t rows, int sm_count);
// (token, head) rows the per-token kernel runs: all tokens, or those outside prefill tiles.
int64_t attention_token_rows(const AttentionBatch& b);
// Scratch floats the split path needs (0 when splits == 1).
size_t attention_scratch_floats(const AttentionBatch& b, int splits);
// run_tiles false: the tiles' tokens were computed elsewhere (the runs as GEMMs); only the rest.
cudaError_t attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out,
                      int splits, float* scratch, bool run_tiles, cudaStream_t stream);
// bf16 flash attention (cuda_flash_attention.cu) for the tiled tokens of a bf16 cache: blocks
// are (first token, rows <= flash_attention_block_rows()) pairs in device memory, each rows
// consecutive tokens of one sequence at consecutive positions (a run cut into blocks). q and
// the probabilities are rounded to bf16; fp32 accumulation and softmax. flash_attention_fits:
// bf16 cache, pages of a power of two tokens, head_dim a multiple of 16 up to 128, 16-byte
// aligned K/V rows, 8-byte aligned q and out.
bool flash_attention_fits(const float* q, const AttentionBatch& b, const LayerKv& kv,
                          const float* out);
int32_t flash_attention_block_rows();
cudaError_t flash_attention(const float* q, const AttentionBatch& b, const LayerKv& kv,
                            const int32_t* blocks, int32_t num_blocks, float* out,
                            cudaStream_t stream);
// Prefill runs as GEMMs (CudaBackend drives cuBLAS between these): keys [key_begin, +nk) of
// sequence seq copied out of their pages into k_out/v_out [nk, kv_width]; and the causal,
// sliding-window softmax of s [heads][rows][nk] in place (row i queries position pos_first + i,
// column j is key key_begin + j; masked entries become 0).
cudaError_t gather_kv(const LayerKv& kv, const AttentionBatch& b, int32_t seq, int32_t key_begin,
                      int64_t nk, float* k_out, float* v_out, cudaStream_t stream);
cudaError_t masked_softmax(float* s, int32_t heads, int32_t rows, int32_t nk, int32_t pos_first,
                           int32_t key_begin, int32_t window, cudaStream_t stream);

// Programmatic dependent launch of the decode-path kernels (norms, rope, kv_write, silu_mul,
// decode attention, decode GEMM; cuda_common.cuh): on (the default) or off, process-wide.
void set_pdl_enabled(bool on);

// ---- LoRA (cuda_lora.cu) ----
// Per-token kernels (decode: one token per row, any mix of slots) or per-segment tiles
// (prefill: runs of tokens sharing a slot reuse the adapter rows through shared memory).
// The segment shrink splits long reductions over more blocks when the batch has few tiles;
// it needs lora_shrink_scratch_floats(n, l) floats of scratch for that (less: no split).
size_t lora_shrink_scratch_floats(int64_t n, const LoraModuleBatch& l);
// mma (bf16 activations): segment tiles of ranks up to 64 on the tensor cores, with x, v and
// the adapter rows rounded to bf16 (fp32 accumulation); otherwise fp32 throughout.
cudaError_t lora_shrink(const float* x, int64_t n, const LoraModuleBatch& l, float* v,
                        bool by_segment, float* scratch, size_t scratch_floats, cudaStream_t stream,
                        bool mma = false);
cudaError_t lora_expand(const float* v, int64_t n, const LoraModuleBatch& l, float* y,
                        bool by_segment, cudaStream_t stream, bool mma = false);
// Decode LoRA of up to 3 modules sharing x in two launches: one shrink over every module's
// rank rows, then one expand over every module's columns (per-token kernels). overwrite: y[i]
// = the LoRA term alone (0 for tokens without one) instead of y[i] += it, so it can run beside
// the GEMM that writes the module's output and be added afterwards.
cudaError_t lora_group(const float* x, int64_t n, const LoraModuleBatch* mods, int32_t count,
                       float* const* v, float* const* y, bool overwrite, cudaStream_t stream);

// ---- shared-basis LoRA (cuda_compressed_lora.cu) ----
// Largest ku / kv the kernels take (their shared-memory tile).
int32_t compressed_lora_max_k();
cudaError_t compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& b, float* y,
                            cudaStream_t stream);

// ---- log-softmax and sampling (cuda_sampling.cu) ----
cudaError_t log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out,
                        cudaStream_t stream);
// tokens[r] = first argmax of row r; lse[r] = log-sum-exp of row r (double math).
cudaError_t argmax_lse(const float* logits, int64_t rows, int64_t vocab, int32_t* tokens,
                       double* lse, cudaStream_t stream);
// Scratch bytes sample_sorted needs for `rows` x `vocab`.
size_t sample_scratch_bytes(int64_t rows, int64_t vocab);
// For rows with temperature > 0: sorts the row descending (ties by lower id) and picks with
// the caller's uniform after top-k, min-p and top-p, as the CPU reference does.
cudaError_t sample_sorted(const float* logits, int64_t rows, int64_t vocab,
                          const SampleParams* params, int32_t* tokens, void* scratch,
                          size_t scratch_bytes, cudaStream_t stream);
// Repetition, then frequency/presence penalties in place (PenaltyBatch in op_params.h).
cudaError_t apply_penalties(float* logits, int64_t vocab, const PenaltyBatch& p,
                            cudaStream_t stream);
// The k largest log-softmax entries per row, descending, ties to the lower id.
cudaError_t top_logprobs(const float* logits, int64_t rows, int64_t vocab, int32_t k, int32_t* ids,
                         float* logprobs, cudaStream_t stream);
// logprobs[r] = logits[r, tokens[r]] - lse[r].
cudaError_t token_logprobs(const float* logits, int64_t rows, int64_t vocab, const int32_t* tokens,
                           const double* lse, float* logprobs, cudaStream_t stream);

}  // namespace ls::cuda
