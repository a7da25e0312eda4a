// Decode GEMM on the tensor cores: y[n, m] = x[n, k] W[m, k]^T for bf16/f16 W and n <= 64 rows
// of fp32 x, reading W once at close to the memory bandwidth.
//
// Why our own kernel: at decode sizes the GEMM is bound by the weight read. cuBLAS runs the
// hi + lo split as a 2n-row GEMM plus a split and a combine launch (three launches per linear,
// 21 per layer), and its small-n kernels stay well below the copy bandwidth. This kernel splits
// x into hi + lo halves of the weight type in registers and issues both halves' mma.sync
// against the same weight fragment into one fp32 accumulator (y = W.hi + W.lo), so the result
// sees x to ~16 mantissa bits, like the split GEMM, in one launch.
//
// Layout: a warp owns R tiles of 16 weight rows and walks 32-column chunks of k. Since the sum
// over k is order-free, each lane loads its 8 consecutive columns of a row with one 16-byte
// load and uses them as its columns of two m16n8k16 k-steps; the x fragment of each token uses
// the same permutation (8 consecutive fp32 columns, split in registers). The four warps of a
// block take interleaved chunks of the same rows and add their partial sums in shared memory
// in warp order. Long reductions are split over gridDim.y blocks (planned from m, k and the SM
// count, never from n, so a row's result does not depend on the batch it is in); each split
// writes its part to scratch and the last block of a row tile to arrive (an atomic counter that
// it resets) adds the parts in split order and writes y. One launch, deterministic.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kChunk = 32;      // k columns per warp step: 8 per lane, two m16n8k16 k-steps
constexpr int kPlanRows = 32;   // row tile of every variant (R = 2)
constexpr int kMaxSplits = 16;  // parts of one reduction

// Weights are read once: keep them out of L1, which holds x for the other warps.
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

struct Args {
  const float* x;
  int n;
  int64_t k;
  const void* w;
  int64_t m;  // rows of W: the parts' rows together
  DecodeGemmOut out[kDecodeGemmMaxParts];
  int parts;
  bool accumulate;
  int64_t chunks_per_split;
  float* partial;      // [splits][n][m] when gridDim.y > 1
  unsigned* counters;  // one per row tile, zero between launches
};

// Row `row` of W belongs to the first part whose rows reach past it; the part is selected with
// constant indices (a variable index into the parameter would copy it to local memory).
__device__ __forceinline__ void store_out(const Args& a, int token, int64_t row, float v) {
  static_assert(kDecodeGemmMaxParts == 3);
  int64_t r = row;
  DecodeGemmOut o = a.out[0];
  if (a.parts > 1 && r >= a.out[0].rows) {
    r -= a.out[0].rows;
    o = a.out[1];
    if (a.parts > 2 && r >= a.out[1].rows) {
      r -= a.out[1].rows;
      o = a.out[2];
    }
  }
  float* y = o.y + static_cast<int64_t>(token) * o.rows + r;
  v += bias_at(o.bias, o.bias_dtype, r);
  *y = a.accumulate ? *y + v : v;
}

// The x fragment of `tokens` rows for one chunk: this lane's 8 columns of its token, raw.
template <int NT>
struct XSlot {
  float4 v[NT][2];
};

template <int NT>
__device__ __forceinline__ void load_x(XSlot<NT>& s, const float4* const (&xp)[NT], int64_t c) {
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    s.v[j][0] = xp[j] ? __ldg(xp[j] + c * (kChunk / 4)) : make_float4(0, 0, 0, 0);
    s.v[j][1] = xp[j] ? __ldg(xp[j] + c * (kChunk / 4) + 1) : make_float4(0, 0, 0, 0);
  }
}

// acc += W chunk (R tiles) x (hi + lo of the x chunk).
template <typename W, int NT, int R>
__device__ __forceinline__ void mma_chunk(float (&acc)[R][NT][4], const uint4 (&wv)[R][2],
                                          const XSlot<NT>& xs) {
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const float f[8] = {xs.v[j][0].x, xs.v[j][0].y, xs.v[j][0].z, xs.v[j][0].w,
                        xs.v[j][1].x, xs.v[j][1].y, xs.v[j][1].z, xs.v[j][1].w};
    uint32_t bh[4], bl[4];
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      bh[p] = Mma<W>::pack(f[2 * p], f[2 * p + 1]);
      const float2 back = Mma<W>::unpack(bh[p]);
      bl[p] = Mma<W>::pack(f[2 * p] - back.x, f[2 * p + 1] - back.y);
    }
#pragma unroll
    for (int s = 0; s < 2; ++s)
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const uint32_t af[4] = {word(wv[i][0], 2 * s), word(wv[i][1], 2 * s),
                                word(wv[i][0], 2 * s + 1), word(wv[i][1], 2 * s + 1)};
        Mma<W>::mma(acc[i][j], af, bh[2 * s], bh[2 * s + 1]);
        Mma<W>::mma(acc[i][j], af, bl[2 * s], bl[2 * s + 1]);
      }
  }
}

// NT tiles of 8 tokens and R tiles of 16 weight rows per warp; each warp keeps D chunks of W
// and x in flight (a chunk's slot is refilled with the chunk D steps ahead right after use).
template <typename W, int NT, int R, int D, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) decode_gemm_kernel(Args a) {
  constexpr int kRows = 16 * R;
  constexpr int kFrag = R * NT * 4 * 32;  // accumulator values of one warp
  __shared__ float red[WARPS][kFrag];
  __shared__ bool last_block;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t row_base = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t chunks = a.k / kChunk;
  const int64_t c_begin = static_cast<int64_t>(blockIdx.y) * a.chunks_per_split;
  const int64_t c_end = min(chunks, c_begin + a.chunks_per_split);

  // Rows past m read row m - 1 (their sums are dropped); tokens past n contribute zeros.
  const uint4* wp[R][2];
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = min(row_base + 16 * i + g + 8 * h, a.m - 1);
      wp[i][h] = reinterpret_cast<const uint4*>(static_cast<const W*>(a.w) + row * a.k) + t;
    }
  const float4* xp[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int token = 8 * j + g;
    xp[j] = token < a.n ? reinterpret_cast<const float4*>(a.x + token * a.k) + 2 * t : nullptr;
  }

  float acc[R][NT][4];
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  uint4 wv[D][R][2];
  XSlot<NT> xv[D];
  auto fill_w = [&](int d, int64_t c) {
    if (c < c_end) {
#pragma unroll
      for (int i = 0; i < R; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) wv[d][i][h] = load_stream(wp[i][h] + c * (kChunk / 8));
    }
  };
  auto fill = [&](int d, int64_t c) {
    fill_w(d, c);
    if (c < c_end) load_x(xv[d], xp, c);
  };
  // Under programmatic dependent launch this runs while the kernel before it (the norm, the
  // attention, silu_mul) finishes: the weights do not depend on it, so the first D chunks are
  // loaded before waiting for x. (Also fetching the next 4, 8 or 16 chunks per warp into L2
  // made an H100 batch-1 step 4%, 10% and 16% slower.)
  pdl_trigger();
#pragma unroll
  for (int d = 0; d < D; ++d) fill_w(d, c_begin + warp + static_cast<int64_t>(d) * WARPS);
  pdl_wait();
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int64_t c = c_begin + warp + static_cast<int64_t>(d) * WARPS;
    if (c < c_end) load_x(xv[d], xp, c);
  }
  for (int64_t c0 = c_begin + warp; c0 < c_end; c0 += static_cast<int64_t>(D) * WARPS) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int64_t c = c0 + static_cast<int64_t>(d) * WARPS;
      if (c >= c_end) break;
      mma_chunk<W, NT, R>(acc, wv[d], xv[d]);
      fill(d, c + static_cast<int64_t>(D) * WARPS);
    }
  }

  // The warps' parts, added in warp order.
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) red[warp][((i * NT + j) * 4 + e) * 32 + lane] = acc[i][j][e];
  __syncthreads();
  const bool split = gridDim.y > 1;
  for (int f = threadIdx.x; f < kFrag; f += WARPS * 32) {
    float s = red[0][f];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) s += red[w][f];
    const int ln = f % 32, e = (f / 32) % 4, j = (f / 128) % NT, i = f / (128 * NT);
    const int64_t row = row_base + 16 * i + ln / 4 + (e >= 2 ? 8 : 0);
    const int token = 8 * j + 2 * (ln % 4) + (e & 1);
    if (row >= a.m || token >= a.n) continue;
    if (split)
      a.partial[(static_cast<int64_t>(blockIdx.y) * a.n + token) * a.m + row] = s;
    else
      store_out(a, token, row, s);
  }
  if (!split) return;

  // Last block of this row tile to finish adds the parts in split order.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(&a.counters[blockIdx.x], 1u) == gridDim.y - 1;
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const int64_t rows = min(static_cast<int64_t>(kRows), a.m - row_base);
  for (int64_t f = threadIdx.x; f < rows * a.n; f += WARPS * 32) {
    const int token = static_cast<int>(f / rows);
    const int64_t row = row_base + f % rows;
    float s = 0.0f;
    for (unsigned p = 0; p < gridDim.y; ++p)
      s += __ldcg(a.partial + (static_cast<int64_t>(p) * a.n + token) * a.m + row);
    store_out(a, token, row, s);
  }
  if (threadIdx.x == 0) a.counters[blockIdx.x] = 0;
}

template <typename W, int NT, int R, int D, int WARPS = kWarps>
cudaError_t launch(const Args& a, int splits, cudaStream_t stream) {
  const auto tiles = static_cast<unsigned>((a.m + 16 * R - 1) / (16 * R));
  return launch_pdl(decode_gemm_kernel<W, NT, R, D, WARPS>,
                    dim3(tiles, static_cast<unsigned>(splits)), dim3(WARPS * 32), stream, a);
}

// Two 16-row tiles per warp, three chunks in flight: the best all-round choice of a sweep on
// an H200 over R in {1, 2, 4}, D in {1, 2, 3, 4}, 4 or 8 warps and 1, 2 or 4 blocks per SM
// on the 7B shapes (from 1 to 16 rows; above 16 rows cuBLAS's split GEMM was faster).
template <typename W>
cudaError_t launch_n(const Args& a, int splits, cudaStream_t stream) {
  if (a.n <= 8) return launch<W, 1, 2, 3>(a, splits, stream);
  if (a.n <= 16) return launch<W, 2, 2, 3>(a, splits, stream);
  if (a.n <= 32) return launch<W, 4, 2, 2>(a, splits, stream);
  return launch<W, 8, 2, 2>(a, splits, stream);
}

}  // namespace

DecodeGemmPlan decode_gemm_plan(int64_t m, int64_t k, int sm_count) {
  DecodeGemmPlan p;
  const int64_t chunks = k / kChunk;
  const int64_t tiles = (m + kPlanRows - 1) / kPlanRows;
  const int64_t want = 2 * static_cast<int64_t>(std::max(sm_count, 1));
  // At least two chunks per warp in each split.
  const int64_t most = std::clamp<int64_t>(chunks / (2 * kWarps), 1, kMaxSplits);
  const int64_t splits = std::clamp<int64_t>((want + tiles - 1) / tiles, 1, most);
  p.chunks_per_split = (chunks + splits - 1) / splits;
  p.splits = static_cast<int>((chunks + p.chunks_per_split - 1) / p.chunks_per_split);
  return p;
}

size_t decode_gemm_scratch_floats(int64_t n, int64_t m, const DecodeGemmPlan& plan) {
  return plan.splits > 1 ? static_cast<size_t>(plan.splits) * static_cast<size_t>(n * m) : 0;
}

int64_t decode_gemm_counters(int64_t m) {
  return (m + kPlanRows - 1) / kPlanRows;
}

bool decode_gemm_fits(const float* x, int64_t n, int64_t k, const void* w, DType wt, int64_t m) {
  return n >= 1 && n <= kDecodeGemmMaxRows && m >= 1 && m <= INT_MAX && k >= kChunk &&
         k % kChunk == 0 && k <= INT_MAX && (wt == DType::kBF16 || wt == DType::kF16) &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

cudaError_t decode_gemm(const float* x, int64_t n, int64_t k, const void* w, DType wt,
                        const DecodeGemmOut* outs, int parts, bool accumulate,
                        const DecodeGemmPlan& plan, float* scratch, size_t scratch_floats,
                        unsigned* counters, int64_t num_counters, cudaStream_t stream) {
  if (parts < 1 || parts > kDecodeGemmMaxParts) return cudaErrorInvalidValue;
  Args a{};
  a.m = 0;
  for (int p = 0; p < parts; ++p) {
    if (outs[p].rows < 1 || !outs[p].y) return cudaErrorInvalidValue;
    a.out[p] = outs[p];
    a.m += outs[p].rows;
  }
  if (!decode_gemm_fits(x, n, k, w, wt, a.m) || plan.splits < 1 || plan.chunks_per_split < 1)
    return cudaErrorInvalidValue;
  if (plan.splits > 1 && (scratch_floats < decode_gemm_scratch_floats(n, a.m, plan) || !counters ||
                          num_counters < decode_gemm_counters(a.m)))
    return cudaErrorInvalidValue;
  a.x = x;
  a.n = static_cast<int>(n);
  a.k = k;
  a.w = w;
  a.parts = parts;
  a.accumulate = accumulate;
  a.chunks_per_split = plan.chunks_per_split;
  a.partial = scratch;
  a.counters = counters;
  return wt == DType::kBF16 ? launch_n<__nv_bfloat16>(a, plan.splits, stream)
                            : launch_n<__half>(a, plan.splits, stream);
}

}  // namespace ls::cuda
