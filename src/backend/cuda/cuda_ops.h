// First CUDA kernels of the CUDA backend (the full backend is the CUDA-backend issue):
// narrow launchers in the punica style: device pointers, sizes and a stream in, an error out.
// Activations fp32 row-major, weights bf16 with fp32 accumulation.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ls::cuda {

// out[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * w, for n rows of width d.
cudaError_t rms_norm(const float* x, const uint16_t* w_bf16, float eps, int64_t n, int64_t d,
                     float* out, cudaStream_t stream);

// residual[r] += delta[r]; out[r] = rms_norm(residual[r]) * w.
cudaError_t add_rms_norm(float* residual, const float* delta, const uint16_t* w_bf16, float eps,
                         int64_t n, int64_t d, float* out, cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i] for n * inter elements.
cudaError_t silu_mul(const float* gate, const float* up, int64_t count, float* out,
                     cudaStream_t stream);

// out[t] = table[ids[t]] (bf16 table [vocab, d] to fp32).
cudaError_t embedding(const uint16_t* table_bf16, const int32_t* ids, int64_t n, int64_t d,
                      float* out, cudaStream_t stream);

}  // namespace ls::cuda
