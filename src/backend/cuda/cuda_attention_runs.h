// Long prefill runs' attention as dense cuBLAS fp32 GEMMs, the exact path CudaBackend takes
// for runs averaging 64+ tokens (cuda_attention_runs.cpp): each run's keys gathered out of
// their pages (gather_kv), then per chunk of query rows S = scale Q K^T, the causal and
// sliding-window softmax in place (masked_softmax), O = P V. Scratch comes from be.alloc; every
// call runs on `stream` through `cublas` (bound to it).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/backend.h"

namespace ls::cuda {

void attention_runs(Backend& be, cublasHandle_t cublas, cudaStream_t stream, const float* q,
                    const AttentionBatch& b, const LayerKv& kv, float* out);

}  // namespace ls::cuda
