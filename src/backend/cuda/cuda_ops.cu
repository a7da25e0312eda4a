// Dense per-row and elementwise kernels. Our own (not cuBLAS) because each is one pass over
// memory fused with what surrounds it: RMSNorm with the residual add, SiLU with the multiply,
// RoPE in place. Memory plan: one block per row for the norms (threads stride the row, loads
// coalesced, sum of squares reduced with warp shuffles then across warps; the row is re-read
// from L2 for the scale pass); grid-stride loops for the elementwise ops.
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {

constexpr int kThreads = 256;

template <typename W>
__global__ void rms_norm_kernel(float* residual, const float* delta, const float* x, const W* w,
                                float eps, int64_t d, float* out) {
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
  const float inv = rsqrtf(block_sum<kThreads>(ss) / static_cast<float>(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += kThreads) {
    const float v = delta ? residual[row * d + i] : src[i];
    out[row * d + i] = load_w(w, i) * (v * inv);
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t count, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

template <typename W>
__global__ void embedding_kernel(const W* table, int64_t table_rows, const int32_t* ids, int64_t d,
                                 float* out) {
  const int64_t row = blockIdx.x;
  const int64_t id = ids[row];
  const bool valid = id >= 0 && id < table_rows;
  for (int64_t i = threadIdx.x; i < d; i += kThreads)
    out[row * d + i] = valid ? load_w(table, id * d + i) : 0.0f;
}

// One thread per (token, head, i < head_dim / 2); q heads first, then k heads.
__global__ void rope_kernel(float* q, float* k, const float* inv_freq, int32_t head_dim,
                            int32_t q_heads, int32_t kv_heads, const int32_t* positions,
                            int64_t n) {
  const int32_t half = head_dim / 2;
  const int64_t heads = q_heads + kv_heads;
  const int64_t total = n * heads * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t i = static_cast<int32_t>(idx % half);
    const int64_t th = idx / half;
    const int64_t t = th / heads;
    const int64_t h = th % heads;
    // HF: angle = inv_freq * pos in fp32, then cos/sin of that angle (full-precision cosf/sinf,
    // as the CPU's std::cos/std::sin of a float).
    const float angle = inv_freq[i] * static_cast<float>(positions[t]);
    float s, c;
    sincosf(angle, &s, &c);
    float* head = h < q_heads ? q + (t * q_heads + h) * head_dim
                              : k + (t * kv_heads + (h - q_heads)) * head_dim;
    const float x1 = head[i], x2 = head[i + half];
    head[i] = x1 * c - x2 * s;
    head[i + half] = x2 * c + x1 * s;
  }
}

__global__ void kv_write_kernel(const float* k, const float* v, const int64_t* slots, int64_t n,
                                float* kc, float* vc, int64_t width) {
  const int64_t total = n * width;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / width, i = idx % width;
    const int64_t slot = slots[t];
    if (slot < 0) continue;
    kc[slot * width + i] = k[idx];
    vc[slot * width + i] = v[idx];
  }
}

template <typename T>
__device__ __forceinline__ T round_to(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rn(x);
  else
    return __float2half_rn(x);
}

template <typename T>
__device__ __forceinline__ float widen(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(x);
  else
    return __half2float(x);
}

template <typename T>
__global__ void split_kernel(const float* x, int64_t count, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T hi = round_to<T>(x[i]);
    out[i] = hi;
    out[count + i] = round_to<T>(x[i] - widen(hi));
  }
}

template <typename W>
__global__ void add_bias_kernel(float* out, int64_t n, int64_t m, const W* bias) {
  const int64_t total = n * m;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] += load_w(bias, i % m);
}

template <typename W>
__global__ void combine_kernel(const float* y2, int64_t n, int64_t m, const W* bias,
                               bool accumulate, float* out) {
  const int64_t total = n * m;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = y2[i] + y2[total + i];
    if (bias) v += load_w(bias, i % m);
    out[i] = accumulate ? out[i] + v : v;
  }
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_random_kernel(T* out, int64_t count, uint64_t seed, float scale,
                                   float offset) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1));
    const float u = static_cast<float>(h >> 40) * (1.0f / 8388608.0f) - 1.0f;  // [-1, 1)
    const float v = offset + scale * u;
    if constexpr (std::is_same_v<T, float>)
      out[i] = v;
    else
      out[i] = round_to<T>(v);
  }
}

}  // namespace

cudaError_t fill_random(void* out, DType to, int64_t count, uint64_t seed, float scale,
                        float offset, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const unsigned grid = grid_1d(count, kThreads, 132 * 16);
  if (to == DType::kF32)
    fill_random_kernel<<<grid, kThreads, 0, stream>>>(static_cast<float*>(out), count, seed, scale,
                                                      offset);
  else if (to == DType::kBF16)
    fill_random_kernel<<<grid, kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(out), count, seed,
                                                      scale, offset);
  else if (to == DType::kF16)
    fill_random_kernel<<<grid, kThreads, 0, stream>>>(static_cast<__half*>(out), count, seed, scale,
                                                      offset);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t rms_norm(const float* x, const void* w, DType wt, float eps, int64_t n, int64_t d,
                     float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return dispatch_weight(wt, [&](auto tag) {
    using W = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    rms_norm_kernel<W><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
        nullptr, nullptr, x, static_cast<const W*>(w), eps, d, out);
    return cudaGetLastError();
  });
}

cudaError_t add_rms_norm(float* residual, const float* delta, const void* w, DType wt, float eps,
                         int64_t n, int64_t d, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return dispatch_weight(wt, [&](auto tag) {
    using W = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    rms_norm_kernel<W><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
        residual, delta, nullptr, static_cast<const W*>(w), eps, d, out);
    return cudaGetLastError();
  });
}

cudaError_t silu_mul(const float* gate, const float* up, int64_t count, float* out,
                     cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  silu_mul_kernel<<<grid_1d(count, kThreads), kThreads, 0, stream>>>(gate, up, count, out);
  return cudaGetLastError();
}

cudaError_t embedding(const void* table, DType wt, int64_t table_rows, const int32_t* ids,
                      int64_t n, int64_t d, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return dispatch_weight(wt, [&](auto tag) {
    using W = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    embedding_kernel<W><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
        static_cast<const W*>(table), table_rows, ids, d, out);
    return cudaGetLastError();
  });
}

cudaError_t rope(float* q, float* k, const RopeParams& p, const int32_t* positions, int64_t n,
                 cudaStream_t stream) {
  const int64_t total = n * (p.num_q_heads + p.num_kv_heads) * (p.head_dim / 2);
  if (total == 0) return cudaSuccess;
  rope_kernel<<<grid_1d(total, kThreads), kThreads, 0, stream>>>(
      q, k, p.inv_freq, p.head_dim, p.num_q_heads, p.num_kv_heads, positions, n);
  return cudaGetLastError();
}

cudaError_t kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                     const LayerKv& kv, cudaStream_t stream) {
  const int64_t total = n * kv.kv_width;
  if (total == 0) return cudaSuccess;
  kv_write_kernel<<<grid_1d(total, kThreads), kThreads, 0, stream>>>(k, v, slot_mapping, n, kv.k,
                                                                     kv.v, kv.kv_width);
  return cudaGetLastError();
}

cudaError_t split_f32(const float* x, int64_t count, DType to, void* out, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (to == DType::kBF16)
    split_kernel<<<grid_1d(count, kThreads), kThreads, 0, stream>>>(
        x, count, static_cast<__nv_bfloat16*>(out));
  else if (to == DType::kF16)
    split_kernel<<<grid_1d(count, kThreads), kThreads, 0, stream>>>(x, count,
                                                                    static_cast<__half*>(out));
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t add_bias(float* out, int64_t n, int64_t m, const void* bias, DType bt,
                     cudaStream_t stream) {
  if (n * m == 0) return cudaSuccess;
  return dispatch_weight(bt, [&](auto tag) {
    using W = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    add_bias_kernel<W>
        <<<grid_1d(n * m, kThreads), kThreads, 0, stream>>>(out, n, m, static_cast<const W*>(bias));
    return cudaGetLastError();
  });
}

cudaError_t combine_split(const float* y2, int64_t n, int64_t m, const void* bias, DType bt,
                          bool accumulate, float* out, cudaStream_t stream) {
  if (n * m == 0) return cudaSuccess;
  return dispatch_weight(bias ? bt : DType::kF32, [&](auto tag) {
    using W = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    combine_kernel<W><<<grid_1d(n * m, kThreads), kThreads, 0, stream>>>(
        y2, n, m, static_cast<const W*>(bias), accumulate, out);
    return cudaGetLastError();
  });
}

}  // namespace ls::cuda
