// The CUDA backend's public face: whether a GPU is there, the factory, and the memory numbers
// that size the page pool. Plain C++ (no CUDA headers), so apps and tests include it freely;
// compiled only when LORASERVE_CUDA is on (callers guard with LORASERVE_HAS_CUDA).
#pragma once

#include <cstddef>
#include <memory>

#include "backend/backend.h"
#include "base/status.h"

namespace ls {

struct CudaBackendOptions {
  int device = 0;
  size_t staging_bytes = 64u << 20;  // pinned host memory per upload stream
  bool graphs = true;                // CUDA graphs for decode steps (supports_graphs())
  // bf16/f16 GEMMs of at most this many rows take the skinny kernel (fp32 activations, weights
  // read once) instead of cuBLAS's hi + lo split; 0 (the default) turns it off; at most 16. The
  // decode GEMM below replaced it: a 7B batch-1 step took 5.45 ms on an H200 against its 6.07.
  int skinny_gemm_max_rows = 0;
  // bf16/f16 GEMMs of at most this many rows (and more than skinny_gemm_max_rows) take the
  // tensor-core decode GEMM (x split into hi + lo in registers, one launch) instead of cuBLAS's
  // hi + lo split GEMM (three launches); 0 turns it off; at most 64. On an H200 it beat cuBLAS
  // by ~10% (in graphs) up to 8 rows, tied at 16 and lost above.
  int decode_gemm_max_rows = 16;
  // Decode LoRA (per-token kernels) on a second stream beside the base GEMM of the same linears
  // (Backend::gemm_parts), added by the GEMM's combine, instead of two more launches after it.
  bool lora_beside_gemm = true;
  // Programmatic dependent launch (Hopper and later) of the decode-path kernels: each may be
  // scheduled while the one before it finishes, and the decode GEMM starts reading its weights
  // before its input is ready. Process-wide: the last backend created sets it.
  bool pdl = true;
  // bf16 activations where the GEMMs take cuBLAS (more than decode_gemm_max_rows rows: prefill
  // and large decode batches): x is rounded to the weight type once and multiplied in one GEMM
  // instead of the hi + lo pair; prefill runs over a bf16 cache take the bf16 flash attention
  // kernel (q and probabilities in bf16); prefill LoRA (segment tiles, ranks up to 64) runs on
  // the tensor cores with bf16 operands. About twice the prefill rate, at the
  // precision vLLM and SGLang serve at; results then depend on the batch's row count (the
  // decode GEMM of up to decode_gemm_max_rows rows stays exact). Off: fp32-faithful throughout.
  bool bf16_activations = false;
};

// True when the CUDA runtime sees at least one device.
bool cuda_device_available();

Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaBackendOptions& options = {});

struct CudaMemoryInfo {
  size_t total = 0;   // device memory
  size_t free = 0;    // free now (the driver's view), plus the backend's cached free blocks
  size_t in_use = 0;  // held by live Buffers and Weights of this backend
};
// Fails when `backend` is not a CUDA backend.
Result<CudaMemoryInfo> cuda_memory_info(Backend& backend);

// Bytes for the page pool: utilization * total - (memory already used on the device) -
// workspace_bytes, as vLLM's --gpu-memory-utilization. Call after the weights are loaded.
Result<int64_t> cuda_pool_bytes(Backend& backend, double utilization, size_t workspace_bytes);

// A weight [rows, cols] of `dtype` filled on the device with offset + scale * u, u uniform in
// [-1, 1) from a counter-based hash of (seed, index): real-shape models without host copies.
Result<Weight> cuda_random_weight(Backend& backend, DType dtype, int64_t rows, int64_t cols,
                                  uint64_t seed, float scale, float offset);

}  // namespace ls
