// Dense per-row and elementwise kernels. Our own (not cuBLAS) because each is one pass over
// memory fused with what surrounds it: RMSNorm with the residual add, SiLU with the multiply,
// RoPE in place. Memory plan: one block per row for the norms (threads stride the row, loads
// coalesced, sum of squares reduced with warp shuffles then across warps; the row is re-read
// from L2 for the scale pass); grid-stride loops for the elementwise ops.
#include <algorithm>
#include <atomic>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {
std::atomic<bool> g_pdl{true};
}  // namespace

bool pdl_enabled() {
  return g_pdl.load(std::memory_order_relaxed);
}
void set_pdl_enabled(bool on) {
  g_pdl.store(on, std::memory_order_relaxed);
}

namespace {

constexpr int kThreads = 256;

template <typename W>
__global__ void rms_norm_kernel(float* residual, const float* delta, const float* x, const W* w,
                                float eps, int64_t d, float* out) {
  pdl_start();
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

// The same for rows of d % 4 == 0, d <= 4 * kThreads * kNormVec, 16-byte aligned: each thread
// keeps its float4s in registers between the sum and the scaling (one read of each input,
// 16-byte accesses); the plain kernel above re-reads the row and moves 4 bytes at a time.
constexpr int kNormVec = 8;

template <typename W>
__global__ void rms_norm_vec_kernel(float* residual, const float* delta, const float* x, const W* w,
                                    float eps, int64_t d, float* out) {
  pdl_start();
  const int64_t row = blockIdx.x, d4 = d / 4;
  const auto* src = reinterpret_cast<const float4*>(x ? x + row * d : residual + row * d);
  const auto* dl = reinterpret_cast<const float4*>(delta ? delta + row * d : nullptr);
  auto* res = reinterpret_cast<float4*>(residual ? residual + row * d : nullptr);
  float4 v[kNormVec];
  float ss = 0.0f;
#pragma unroll
  for (int u = 0; u < kNormVec; ++u) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(u) * kThreads;
    if (i >= d4) break;
    float4 a = src[i];
    if (dl) {
      const float4 b = dl[i];
      a.x += b.x;
      a.y += b.y;
      a.z += b.z;
      a.w += b.w;
      res[i] = a;
    }
    v[u] = a;
    ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
  }
  const float inv = rsqrtf(block_sum<kThreads>(ss) / static_cast<float>(d) + eps);
  auto* o = reinterpret_cast<float4*>(out + row * d);
#pragma unroll
  for (int u = 0; u < kNormVec; ++u) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(u) * kThreads;
    if (i >= d4) break;
    o[i] =
        make_float4(load_w(w, 4 * i) * (v[u].x * inv), load_w(w, 4 * i + 1) * (v[u].y * inv),
                    load_w(w, 4 * i + 2) * (v[u].z * inv), load_w(w, 4 * i + 3) * (v[u].w * inv));
  }
}

bool norm_vec_fits(const void* a, const void* b, const void* c, int64_t d) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return d % 4 == 0 && d <= 4 * kThreads * kNormVec && aligned(a) && aligned(b) && aligned(c);
}

__global__ void silu_mul_vec_kernel(const float4* gate, const float4* up, int64_t count4,
                                    float4* out) {
  pdl_start();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 g = gate[i], u = up[i];
    out[i] = make_float4(g.x / (1.0f + expf(-g.x)) * u.x, g.y / (1.0f + expf(-g.y)) * u.y,
                         g.z / (1.0f + expf(-g.z)) * u.z, g.w / (1.0f + expf(-g.w)) * u.w);
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t count, float* out) {
  pdl_start();
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
  pdl_start();
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

constexpr int64_t kRopeRowsMin = 256;

// rope for prefill-sized batches: one thread per (token, frequency) computes the angle's
// sincosf once and rotates that pair in every q and k head (rope_kernel computes it once per
// head: 64x the sincosf on a 7B layer, which made it compute-bound). Same math, same bits.
__global__ void rope_rows_kernel(float* q, float* k, const float* inv_freq, int32_t head_dim,
                                 int32_t q_heads, int32_t kv_heads, const int32_t* positions,
                                 int64_t n) {
  pdl_start();
  const int32_t half = head_dim / 2;
  const int64_t total = n * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t i = static_cast<int32_t>(idx % half);
    const int64_t t = idx / half;
    const float angle = inv_freq[i] * static_cast<float>(positions[t]);
    float s, c;
    sincosf(angle, &s, &c);
    auto rotate = [&](float* row, int32_t heads) {
#pragma unroll 4
      for (int32_t h = 0; h < heads; ++h) {
        float* head = row + static_cast<int64_t>(h) * head_dim;
        const float x1 = head[0], x2 = head[half];
        head[0] = x1 * c - x2 * s;
        head[half] = x2 * c + x1 * s;
      }
    };
    rotate(q + t * q_heads * head_dim + i, q_heads);
    rotate(k + t * kv_heads * head_dim + i, kv_heads);
  }
}

// kv_write of rows whose width is a multiple of 4 (16-byte aligned k, v): a block per token,
// float4s across its row (no 64-bit division per element).
template <typename T>
__global__ void kv_write_vec_kernel(const float4* k, const float4* v, const int64_t* slots,
                                    int64_t n, T* kc, T* vc, int64_t width4) {
  pdl_start();
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;
    for (int64_t i = threadIdx.x; i < width4; i += blockDim.x) {
      store_kv4(kc + (slot * width4 + i) * 4, k[t * width4 + i]);
      store_kv4(vc + (slot * width4 + i) * 4, v[t * width4 + i]);
    }
  }
}

template <typename T>
__global__ void kv_write_kernel(const float* k, const float* v, const int64_t* slots, int64_t n,
                                T* kc, T* vc, int64_t width) {
  pdl_start();
  const int64_t total = n * width;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / width, i = idx % width;
    const int64_t slot = slots[t];
    if (slot < 0) continue;
    store_kv(kc + slot * width + i, k[idx]);
    store_kv(vc + slot * width + i, v[idx]);
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
__device__ __forceinline__ void store4(T* p, T a, T b, T c, T d) {
  alignas(8) T h[4] = {a, b, c, d};
  uint2 u;
  memcpy(&u, h, sizeof u);
  *reinterpret_cast<uint2*>(p) = u;
}

// split_kernel over float4s (count % 4 == 0, x 16-byte and out 8-byte aligned). Same bits.
template <typename T>
__global__ void split_vec_kernel(const float4* x, int64_t count4, T* out, bool lo) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 f = x[i];
    const T a = round_to<T>(f.x), b = round_to<T>(f.y), c = round_to<T>(f.z), d = round_to<T>(f.w);
    store4(out + 4 * i, a, b, c, d);
    if (lo)
      store4(out + 4 * (count4 + i), round_to<T>(f.x - widen(a)), round_to<T>(f.y - widen(b)),
             round_to<T>(f.z - widen(c)), round_to<T>(f.w - widen(d)));
  }
}

template <typename T>
__global__ void split_kernel(const float* x, int64_t count, T* out, bool lo) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T hi = round_to<T>(x[i]);
    out[i] = hi;
    if (lo) out[count + i] = round_to<T>(x[i] - widen(hi));
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

// ---- skinny GEMM (decode) ----
// y[n, m] = x[n, k] W[m, k]^T for n <= 16: each warp owns kSkinnyRows rows of W and reads them
// once with 16-byte loads, kSkinnyUnroll loads per row in flight per lane (a 4096-wide row is
// only 16 loads a lane, so latency, not bandwidth, bounds a loop that waits on each); x (a few
// KB per row, L1/L2 resident) is read as float4 for every row pair. Products are fp32 x the
// exact widened weight, accumulated in fp32: closer to the fp32 reference than the hi + lo
// split GEMM, and without its 2n-row GEMM that cuBLAS runs far below the weight-read floor.
// Each token's x is re-read from L1 for every row pair, so L1 bandwidth caps it as n grows: on
// an H100 it beats cuBLAS at n = 1 and loses by 2x at n = 8 (CudaBackendOptions picks the
// rows). Keeping x slices in registers across many rows is the next step.
constexpr int kSkinnyRows = 2, kSkinnyUnroll = 4, kSkinnyWarps = 4;

__device__ __forceinline__ void unpack8(const uint4& v, const __nv_bfloat16*, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ void unpack8(const uint4& v, const __half*, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h;
    memcpy(&h, &w[i], sizeof(h));
    const float2 p = __half22float2(h);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

// The part that column j of the stacked rows falls in (j made relative to it), selected with
// constant indices: indexing the kernel parameter by a variable would copy it to local memory
// in every thread (that made this combine 10x slower).
__device__ __forceinline__ DecodeGemmOut pick_part(const DecodeGemmOut (&out)[kDecodeGemmMaxParts],
                                                   int parts, int64_t& j) {
  static_assert(kDecodeGemmMaxParts == 3);
  if (parts < 2 || j < out[0].rows) return out[0];
  j -= out[0].rows;
  if (parts < 3 || j < out[1].rows) return out[1];
  j -= out[1].rows;
  return out[2];
}

struct PartsArg {
  DecodeGemmOut out[kDecodeGemmMaxParts];
  int parts;
  int64_t m;  // the parts' rows together: y2's row width
};

// Rows r over blockIdx.y (grid-stride), columns over x: no division per element. y2 null: the
// outputs are already there and only their `add` is added.
__global__ void combine_parts_kernel(const float* y2, int64_t n, PartsArg pa, bool lo) {
  const int64_t total = n * pa.m;
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y)
    for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < pa.m;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const int64_t i = r * pa.m + c;
      int64_t j = c;
      const DecodeGemmOut o = pick_part(pa.out, pa.parts, j);
      float* y = o.y + r * o.rows + j;
      const float base =
          y2 ? y2[i] + (lo ? y2[total + i] : 0.0f) + bias_at(o.bias, o.bias_dtype, j) : *y;
      *y = o.add ? base + o.add[r * o.rows + j] : base;
    }
}

template <typename W, int NMAX>
__global__ void __launch_bounds__(kSkinnyWarps * 32)
    skinny_gemm_kernel(const float* __restrict__ x, int n, int64_t k, const W* __restrict__ w,
                       int64_t m, const void* bias, DType bt, bool accumulate, float* y) {
  constexpr int R = kSkinnyRows, U = kSkinnyUnroll;
  const int lane = threadIdx.x % 32;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kSkinnyWarps + threadIdx.x / 32) * R;
  if (row0 >= m) return;
  const int64_t k8 = k / 8;
  float acc[R][NMAX];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NMAX; ++t) acc[r][t] = 0.0f;
  for (int64_t c0 = lane; c0 < k8; c0 += 32 * U) {
    uint4 wv[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int64_t c = c0 + u * 32;
        wv[u][r] = (c < k8 && row0 + r < m)
                       ? __ldg(reinterpret_cast<const uint4*>(w + (row0 + r) * k) + c)
                       : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = c0 + u * 32;
      if (c >= k8) break;
      float wf[R][8];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack8(wv[u][r], w, wf[r]);
#pragma unroll
      for (int t = 0; t < NMAX; ++t) {
        if (t >= n) break;
        const float4* xp = reinterpret_cast<const float4*>(x + t * k) + 2 * c;
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
#pragma unroll
        for (int r = 0; r < R; ++r)
          acc[r][t] += wf[r][0] * a.x + wf[r][1] * a.y + wf[r][2] * a.z + wf[r][3] * a.w +
                       wf[r][4] * b.x + wf[r][5] * b.y + wf[r][6] * b.z + wf[r][7] * b.w;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NMAX; ++t) {
      const float v = warp_sum(acc[r][t]);
      const int64_t row = row0 + r;
      if (lane == 0 && t < n && row < m) {
        float o = v + bias_at(bias, bt, row);
        if (accumulate) o += y[t * m + row];
        y[t * m + row] = o;
      }
    }
}

template <typename W, int NMAX>
void launch_skinny(const float* x, int64_t n, int64_t k, const void* w, int64_t m, const void* bias,
                   DType bt, bool accumulate, float* y, cudaStream_t stream) {
  const int64_t rows_per_block = kSkinnyWarps * kSkinnyRows;
  const auto blocks = static_cast<unsigned>((m + rows_per_block - 1) / rows_per_block);
  skinny_gemm_kernel<W, NMAX><<<blocks, kSkinnyWarps * 32, 0, stream>>>(
      x, static_cast<int>(n), k, static_cast<const W*>(w), m, bias, bt, accumulate, y);
}

template <typename W>
void launch_skinny_n(const float* x, int64_t n, int64_t k, const void* w, int64_t m,
                     const void* bias, DType bt, bool accumulate, float* y, cudaStream_t stream) {
  if (n <= 1)
    launch_skinny<W, 1>(x, n, k, w, m, bias, bt, accumulate, y, stream);
  else if (n <= 2)
    launch_skinny<W, 2>(x, n, k, w, m, bias, bt, accumulate, y, stream);
  else if (n <= 4)
    launch_skinny<W, 4>(x, n, k, w, m, bias, bt, accumulate, y, stream);
  else if (n <= 8)
    launch_skinny<W, 8>(x, n, k, w, m, bias, bt, accumulate, y, stream);
  else
    launch_skinny<W, 16>(x, n, k, w, m, bias, bt, accumulate, y, stream);
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

namespace {

__device__ __forceinline__ uint32_t bf16_bits(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (bits >> 16) | 0x40u;
  return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
}

// Block i copies descriptor i: 16-byte words when both ends allow, bytes otherwise; rounded
// descriptors read four fp32 values and write four bf16 at a time where aligned.
__global__ void scatter_copy_kernel(const ScatterDesc* descs, const char* staging) {
  const ScatterDesc d = descs[blockIdx.x];
  const char* src = staging + d.src_offset;
  char* dst = static_cast<char*>(d.dst);
  if (d.round_to_bf16) {
    const auto* f = reinterpret_cast<const uint32_t*>(src);  // staging keeps 16-byte alignment
    auto* h = reinterpret_cast<uint16_t*>(dst);
    const uint64_t n = d.bytes / 2;
    uint64_t done = 0;
    if ((reinterpret_cast<uintptr_t>(dst) & 7) == 0) {
      const uint64_t quads = n / 4;
      for (uint64_t i = threadIdx.x; i < quads; i += blockDim.x) {
        const uint4 v = reinterpret_cast<const uint4*>(f)[i];
        uint2 o;
        o.x = bf16_bits(v.x) | (bf16_bits(v.y) << 16);
        o.y = bf16_bits(v.z) | (bf16_bits(v.w) << 16);
        reinterpret_cast<uint2*>(h)[i] = o;
      }
      done = quads * 4;
    }
    for (uint64_t i = done + threadIdx.x; i < n; i += blockDim.x)
      h[i] = static_cast<uint16_t>(bf16_bits(f[i]));
    return;
  }
  uint64_t done = 0;
  if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) & 15) == 0) {
    const uint64_t words = d.bytes / 16;
    for (uint64_t i = threadIdx.x; i < words; i += blockDim.x)
      reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
    done = words * 16;
  }
  for (uint64_t i = done + threadIdx.x; i < d.bytes; i += blockDim.x) dst[i] = src[i];
}

}  // namespace

cudaError_t scatter_copy(const ScatterDesc* descs, int64_t count, const char* staging,
                         cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (count < 0 || count > INT32_MAX) return cudaErrorInvalidValue;
  scatter_copy_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(descs, staging);
  return cudaGetLastError();
}

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
    const auto kernel = norm_vec_fits(x, out, x, d) ? rms_norm_vec_kernel<W> : rms_norm_kernel<W>;
    return launch_pdl(kernel, dim3(static_cast<unsigned>(n)), dim3(kThreads), stream, nullptr,
                      nullptr, x, static_cast<const W*>(w), eps, d, out);
  });
}

cudaError_t add_rms_norm(float* residual, const float* delta, const void* w, DType wt, float eps,
                         int64_t n, int64_t d, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return dispatch_weight(wt, [&](auto tag) {
    using W = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    const auto kernel =
        norm_vec_fits(residual, delta, out, d) ? rms_norm_vec_kernel<W> : rms_norm_kernel<W>;
    return launch_pdl(kernel, dim3(static_cast<unsigned>(n)), dim3(kThreads), stream, residual,
                      delta, nullptr, static_cast<const W*>(w), eps, d, out);
  });
}

cudaError_t silu_mul(const float* gate, const float* up, int64_t count, float* out,
                     cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (count % 4 == 0 && aligned(gate) && aligned(up) && aligned(out))
    return launch_pdl(silu_mul_vec_kernel, dim3(grid_1d(count / 4, kThreads)), dim3(kThreads),
                      stream, reinterpret_cast<const float4*>(gate),
                      reinterpret_cast<const float4*>(up), count / 4,
                      reinterpret_cast<float4*>(out));
  return launch_pdl(silu_mul_kernel, dim3(grid_1d(count, kThreads)), dim3(kThreads), stream, gate,
                    up, count, out);
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
  // Prefill-sized batches compute each angle once for all heads; decode batches (few threads)
  // keep one thread per element for parallelism.
  if (n >= kRopeRowsMin)
    return launch_pdl(rope_rows_kernel, dim3(grid_1d(n * (p.head_dim / 2), kThreads)),
                      dim3(kThreads), stream, q, k, p.inv_freq, p.head_dim, p.num_q_heads,
                      p.num_kv_heads, positions, n);
  return launch_pdl(rope_kernel, dim3(grid_1d(total, kThreads)), dim3(kThreads), stream, q, k,
                    p.inv_freq, p.head_dim, p.num_q_heads, p.num_kv_heads, positions, n);
}

cudaError_t kv_write(const float* k, const float* v, const int64_t* slot_mapping, int64_t n,
                     const LayerKv& kv, cudaStream_t stream) {
  const int64_t total = n * kv.kv_width;
  if (total == 0) return cudaSuccess;
  return dispatch_kv(kv.dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto a16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    if (n >= 64 && kv.kv_width % 4 == 0 && a16(k) && a16(v) && a16(kv.k) && a16(kv.v))
      return launch_pdl(kv_write_vec_kernel<T>,
                        dim3(static_cast<unsigned>(std::min<int64_t>(n, 65535))), dim3(kThreads),
                        stream, reinterpret_cast<const float4*>(k),
                        reinterpret_cast<const float4*>(v), slot_mapping, n, static_cast<T*>(kv.k),
                        static_cast<T*>(kv.v), kv.kv_width / 4);
    return launch_pdl(kv_write_kernel<T>, dim3(grid_1d(total, kThreads)), dim3(kThreads), stream, k,
                      v, slot_mapping, n, static_cast<T*>(kv.k), static_cast<T*>(kv.v),
                      kv.kv_width);
  });
}

cudaError_t split_f32(const float* x, int64_t count, DType to, void* out, cudaStream_t stream,
                      bool lo) {
  if (count == 0) return cudaSuccess;
  if (to != DType::kBF16 && to != DType::kF16) return cudaErrorInvalidValue;
  const bool vec = count % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(out) % 8 == 0;
  auto run = [&](auto* o) {
    if (vec)
      split_vec_kernel<<<grid_1d(count / 4, kThreads), kThreads, 0, stream>>>(
          reinterpret_cast<const float4*>(x), count / 4, o, lo);
    else
      split_kernel<<<grid_1d(count, kThreads), kThreads, 0, stream>>>(x, count, o, lo);
    return cudaGetLastError();
  };
  if (to == DType::kBF16) return run(static_cast<__nv_bfloat16*>(out));
  return run(static_cast<__half*>(out));
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

cudaError_t combine_split_parts(const float* y2, int64_t n, const DecodeGemmOut* outs, int parts,
                                cudaStream_t stream, bool lo) {
  if (parts < 1 || parts > kDecodeGemmMaxParts) return cudaErrorInvalidValue;
  PartsArg pa{};
  pa.parts = parts;
  for (int p = 0; p < parts; ++p) {
    pa.out[p] = outs[p];
    pa.m += outs[p].rows;
  }
  if (n * pa.m == 0) return cudaSuccess;
  const auto cols = static_cast<unsigned>(std::min<int64_t>((pa.m + kThreads - 1) / kThreads, 64));
  const auto rows = static_cast<unsigned>(std::min<int64_t>(n, 65535));
  combine_parts_kernel<<<dim3(cols, rows), kThreads, 0, stream>>>(y2, n, pa, lo);
  return cudaGetLastError();
}

bool skinny_gemm_fits(const float* x, int64_t n, int64_t k, const void* w, DType wt) {
  return n >= 1 && n <= kSkinnyMaxRows && k % 8 == 0 && (wt == DType::kBF16 || wt == DType::kF16) &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

cudaError_t skinny_gemm(const float* x, int64_t n, int64_t k, const void* w, DType wt, int64_t m,
                        const void* bias, DType bt, bool accumulate, float* y,
                        cudaStream_t stream) {
  if (!skinny_gemm_fits(x, n, k, w, wt) || m < 1) return cudaErrorInvalidValue;
  if (wt == DType::kBF16)
    launch_skinny_n<__nv_bfloat16>(x, n, k, w, m, bias, bt, accumulate, y, stream);
  else
    launch_skinny_n<__half>(x, n, k, w, m, bias, bt, accumulate, y, stream);
  return cudaGetLastError();
}

}  // namespace ls::cuda
