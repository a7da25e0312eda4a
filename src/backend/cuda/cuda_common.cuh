// Device helpers shared by the CUDA backend's kernels: weight loads by dtype, reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "base/dtype.h"

namespace ls::cuda {

template <typename W>
__device__ __forceinline__ float load_w(const W* p, int64_t i);
template <>
__device__ __forceinline__ float load_w<float>(const float* p, int64_t i) {
  return p[i];
}
template <>
__device__ __forceinline__ float load_w<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
template <>
__device__ __forceinline__ float load_w<__half>(const __half* p, int64_t i) {
  return __half2float(p[i]);
}

// Calls f(static_cast<const W*>(nullptr)) with W the element type of `t`.
template <typename F>
cudaError_t dispatch_weight(DType t, F f) {
  switch (t) {
    case DType::kF32:
      return f(static_cast<const float*>(nullptr));
    case DType::kBF16:
      return f(static_cast<const __nv_bfloat16*>(nullptr));
    case DType::kF16:
      return f(static_cast<const __half*>(nullptr));
    default:
      return cudaErrorInvalidValue;
  }
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over a block of kThreads threads; every thread gets the total.
template <int kThreads, typename T>
__device__ T block_sum(T v) {
  __shared__ T warp_vals[kThreads / 32];
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  T total = 0;
  for (int i = 0; i < kThreads / 32; ++i) total += warp_vals[i];
  __syncthreads();
  return total;
}

template <int kThreads>
__device__ float block_max(float v) {
  __shared__ float warp_vals[kThreads / 32];
  v = warp_max(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int i = 0; i < kThreads / 32; ++i) m = fmaxf(m, warp_vals[i]);
  __syncthreads();
  return m;
}

inline unsigned grid_1d(int64_t count, int threads, int64_t cap = 1 << 20) {
  int64_t blocks = (count + threads - 1) / threads;
  if (blocks > cap) blocks = cap;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

}  // namespace ls::cuda
