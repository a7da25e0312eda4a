// Row-wise kernels. Memory plan: one block per row; each thread strides over the row, so
// loads are coalesced; the sum of squares is reduced with warp shuffles, then across warps
// through shared memory; the row is read twice (sum, then scale), both from L2 for d <= 16K.
#include <cuda_bf16.h>

#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {

constexpr int kThreads = 256;

__device__ float bf16_load(const uint16_t* p, int64_t i) {
  return __uint_as_float(static_cast<uint32_t>(p[i]) << 16);
}

__device__ float block_sum(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < kThreads / 32; ++i) total += warp_sums[i];
  __syncthreads();
  return total;
}

__global__ void rms_norm_kernel(float* residual, const float* delta, const float* x,
                                const uint16_t* w, float eps, int64_t d, float* out) {
  const int64_t row = blockIdx.x;
  const float* src = x ? x + row * d : residual + row * d;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    float v = src[i];
    if (delta) {
      v += delta[row * d + i];
      residual[row * d + i] = v;
    }
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    const float v = delta ? residual[row * d + i] : src[i];
    out[row * d + i] = bf16_load(w, i) * (v * inv);
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t count, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + __expf(-g)) * up[i];
  }
}

__global__ void embedding_kernel(const uint16_t* table, const int32_t* ids, int64_t d, float* out) {
  const int64_t row = blockIdx.x;
  const int64_t id = ids[row];
  for (int64_t i = threadIdx.x; i < d; i += kThreads)
    out[row * d + i] = bf16_load(table, id * d + i);
}

}  // namespace

cudaError_t rms_norm(const float* x, const uint16_t* w, float eps, int64_t n, int64_t d, float* out,
                     cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(nullptr, nullptr, x, w, eps, d,
                                                                     out);
  return cudaGetLastError();
}

cudaError_t add_rms_norm(float* residual, const float* delta, const uint16_t* w, float eps,
                         int64_t n, int64_t d, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(residual, delta, nullptr, w,
                                                                     eps, d, out);
  return cudaGetLastError();
}

cudaError_t silu_mul(const float* gate, const float* up, int64_t count, float* out,
                     cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  silu_mul_kernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), kThreads, 0, stream>>>(
      gate, up, count, out);
  return cudaGetLastError();
}

cudaError_t embedding(const uint16_t* table, const int32_t* ids, int64_t n, int64_t d, float* out,
                      cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  embedding_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(table, ids, d, out);
  return cudaGetLastError();
}

}  // namespace ls::cuda
