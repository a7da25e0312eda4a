// Device helpers shared by the CUDA backend's kernels: weight loads by dtype, reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "base/dtype.h"

namespace ls::cuda {

// ---- programmatic dependent launch (Hopper) ----
// A kernel launched with launch_pdl may be scheduled while the kernel before it in the stream
// is still running (once every block of that one has started), so its launch latency and
// prologue overlap that kernel's tail. It must call pdl_wait() before it touches memory another
// kernel writes (or writes memory the kernel before it reads): griddepcontrol.wait returns once
// the kernels it depends on have finished and their writes are visible. pdl_trigger() lets the
// next launch_pdl kernel be scheduled early. Both are no-ops in a kernel launched normally.
// Process-wide switch (set_pdl_enabled in cuda_ops.h, from CudaBackendOptions::pdl); launches
// take the normal path when it is off.
bool pdl_enabled();

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// The start of a small kernel: let the next one be scheduled, then wait for the one before.
__device__ __forceinline__ void pdl_start() {
  pdl_trigger();
  pdl_wait();
}

template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                       Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

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

// Element i of a bias of dtype bt as fp32; 0 when there is no bias.
__device__ __forceinline__ float bias_at(const void* b, DType bt, int64_t i) {
  if (!b) return 0.0f;
  switch (bt) {
    case DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(b)[i]);
    case DType::kF16:
      return __half2float(static_cast<const __half*>(b)[i]);
    default:
      return static_cast<const float*>(b)[i];
  }
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

// KV cache (and adapter page) elements: fp32 or bf16, widened to fp32 on load and rounded to
// nearest even on store (as the CPU reference's f32_to_bf16).
__device__ __forceinline__ void store_kv(float* p, float x) {
  *p = x;
}
__device__ __forceinline__ void store_kv(__nv_bfloat16* p, float x) {
  *p = __float2bfloat16_rn(x);
}
// Four consecutive elements at p (aligned to 4 elements), rounded to nearest even for bf16.
__device__ __forceinline__ void store_kv4(float* p, float4 x) {
  *reinterpret_cast<float4*>(p) = x;
}
__device__ __forceinline__ void store_kv4(__nv_bfloat16* p, float4 x) {
  const __nv_bfloat162 a = __floats2bfloat162_rn(x.x, x.y), b = __floats2bfloat162_rn(x.z, x.w);
  uint2 u;
  memcpy(&u.x, &a, 4);
  memcpy(&u.y, &b, 4);
  *reinterpret_cast<uint2*>(p) = u;
}
__device__ __forceinline__ void store_kv4(__half* p, float4 x) {
  const __half2 a = __floats2half2_rn(x.x, x.y), b = __floats2half2_rn(x.z, x.w);
  uint2 u;
  memcpy(&u.x, &a, 4);
  memcpy(&u.y, &b, 4);
  *reinterpret_cast<uint2*>(p) = u;
}

// Four consecutive elements at p as fp32; p aligned to 4 elements (16 bytes fp32, 8 bf16).
__device__ __forceinline__ float4 load4(const float* p) {
  return __ldg(reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ float4 load4(const __nv_bfloat16* p) {
  const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
  const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
// Two consecutive elements at p as fp32; p aligned to 2 elements.
__device__ __forceinline__ float2 load2(const float* p) {
  return __ldg(reinterpret_cast<const float2*>(p));
}
__device__ __forceinline__ float2 load2(const __nv_bfloat16* p) {
  return __bfloat1622float2(__ldg(reinterpret_cast<const __nv_bfloat162*>(p)));
}

// Calls f(static_cast<T*>(nullptr)) with T the element type of a KV cache of dtype `t`
// (fp32 or bf16 only).
template <typename F>
cudaError_t dispatch_kv(DType t, F f) {
  switch (t) {
    case DType::kF32:
      return f(static_cast<float*>(nullptr));
    case DType::kBF16:
      return f(static_cast<__nv_bfloat16*>(nullptr));
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
