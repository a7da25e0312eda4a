// LoRA shrink (v = x A^T) and expand (y += scale * v B^T) reading adapter rows through the
// chunk-pointer tables of LoraModuleBatch (rows cut into page-sized chunks of the unified
// pool), with a different adapter and rank per token in one launch. Our own kernels because
// the rows are scattered over pages (the punica/S-LoRA layout), which no GEMM library reads.
//
// Decode (one token per row, slots mixed): per-token kernels. Shrink: one block per (token,
// rank row) striding the row four elements a thread, or, for large ranks or batches, one block
// per (token, 16 rank rows), each thread four columns of all 16 rows at a time (16 loads in
// flight), then one reduction per row. Expand: one thread per four output columns (float4), looping
// over the slot's rank unrolled by 16; loads coalesced along the chunk. Prefill (runs of tokens
// sharing a slot, the segment table): tiles of 16 tokens of one segment. Shrink stages a 16 x 64
// tile of x and of 16 A rows in shared memory and each thread computes one (token, rank) dot (split
// over in_dim across blocks when tiles are few); expand keeps a 16 x 64 tile of v in shared memory
// and each thread one output column for the 16 tokens, so every adapter element read serves 16
// tokens. Slots of rank 0 and tokens of slot -1 are left alone, as in the CPU reference. The rows
// are fp32 or bf16 (the page store's dtype; every kernel is templated on it) and widened to fp32 as
// they are loaded.
#include <algorithm>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {

constexpr int kTile = 16;   // tokens (and rank rows) per segment tile
constexpr int kDepth = 64;  // reduction depth per shared-memory stage

struct LoraArgs {
  const void* const* chunks;
  const int64_t* a_first;
  const int64_t* bt_first;
  const int32_t* rank;
  const float* scale;
  const int32_t* token_slot;
  const int32_t* seg_start;
  const int32_t* seg_slot;
  int32_t num_slots, max_rank;
  int64_t in_dim, out_dim, chunk_elems;
};

LoraArgs args_of(const LoraModuleBatch& l) {
  return {l.chunks,   l.a_first,   l.bt_first, l.rank,   l.scale,   l.token_slot, l.seg_start,
          l.seg_slot, l.num_slots, l.max_rank, l.in_dim, l.out_dim, l.chunk_elems};
}

template <typename T>
__device__ __forceinline__ const T* chunk_at(const LoraArgs& a, int64_t i) {
  return static_cast<const T*>(a.chunks[i]);
}

// Element i of row j of a matrix whose rows start at chunk index `first`.
template <typename T>
__device__ __forceinline__ float row_elem(const LoraArgs& a, int64_t first, int64_t per_row,
                                          int64_t j, int64_t i) {
  return load_w(chunk_at<T>(a, first + j * per_row + i / a.chunk_elems), i % a.chunk_elems);
}

__device__ __forceinline__ int32_t slot_rank(const LoraArgs& a, int32_t s) {
  return (s >= 0 && s < a.num_slots) ? min(a.rank[s], a.max_rank) : 0;
}

__device__ __forceinline__ bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// p is aligned for a four-element load4.
template <typename T>
__device__ __forceinline__ bool aligned4(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

__device__ __forceinline__ float dot4(const float4& a, const float4& b) {
  return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

constexpr int kRowThreads = 128;

// grid (n, max_rank), 128 threads: block (t, j) computes v[t, j]. The whole block strides the
// row four elements a thread (load4), four loads in flight each, then reduces across its
// warps: a 4,096-wide row is one round of loads. (One warp per row walked it in eight
// dependent rounds, which left a batch-64 rank-16 call latency-bound at ~11 us.)
template <typename T>
__device__ __forceinline__ void shrink_row(const float* x, const LoraArgs& a, float* v) {
  const int64_t t = blockIdx.x;
  const int32_t s = a.token_slot[t];
  const int32_t r = slot_rank(a, s);
  const int32_t j = blockIdx.y;
  if (j >= r) return;
  const int tid = threadIdx.x;
  const int64_t cf = a.chunk_elems;
  const int64_t per_row = (a.in_dim + cf - 1) / cf;
  const float* xt = x + t * a.in_dim;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t k = 0; k < per_row; ++k) {
    const T* c = chunk_at<T>(a, a.a_first[s] + j * per_row + k);
    const int64_t base = k * cf;
    const int64_t len = min(cf, a.in_dim - base);
    if (len % 4 == 0 && aligned4(c) && aligned16(xt + base)) {
      const auto* x4 = reinterpret_cast<const float4*>(xt + base);
      const int64_t n4 = len / 4;
      constexpr int kStride = kRowThreads;
      int64_t i = tid;
      for (; i + 3 * kStride < n4; i += 4 * kStride) {
        float4 w[4], xv[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) w[u] = load4(c + 4 * (i + kStride * u));
#pragma unroll
        for (int u = 0; u < 4; ++u) xv[u] = x4[i + kStride * u];
#pragma unroll
        for (int u = 0; u < 4; ++u) acc[u] += dot4(w[u], xv[u]);
      }
      for (; i < n4; i += kStride) acc[0] += dot4(load4(c + 4 * i), x4[i]);
    } else {
      for (int64_t i = tid; i < len; i += kRowThreads) acc[0] += xt[base + i] * load_w(c, i);
    }
  }
  const float sum = block_sum<kRowThreads>((acc[0] + acc[1]) + (acc[2] + acc[3]));
  if (tid == 0) v[t * a.max_rank + j] = sum;
}

constexpr int kShrinkThreads = 256;
constexpr int kShrinkRows = 16;  // rank rows per decode shrink block

// grid (n, ceil(max_rank / 16)[, modules]), 256 threads: block (t, g) computes v[t, 16g..16g+15].
// Each thread takes four columns at a time (stride 1,024) of x and of all 16 rows: the 16 chunk
// pointers, then the 16 row loads, are each one batch of independent loads (rows past the
// slot's rank repeat its last row and are dropped), then 16 block reductions.
template <typename T>
__device__ __forceinline__ void shrink_rows(const float* x, const LoraArgs& a, float* v) {
  const int64_t t = blockIdx.x;
  const int32_t s = a.token_slot[t];
  const int32_t r = slot_rank(a, s);
  const int32_t j0 = blockIdx.y * kShrinkRows;
  if (j0 >= r) return;
  const int32_t rows = min(kShrinkRows, r - j0);
  const int tid = threadIdx.x;
  const int64_t cf = a.chunk_elems;
  const int64_t per_row = (a.in_dim + cf - 1) / cf;
  const int64_t first = a.a_first[s] + j0 * per_row;
  const float* xt = x + t * a.in_dim;
  float acc[kShrinkRows];
#pragma unroll
  for (int jj = 0; jj < kShrinkRows; ++jj) acc[jj] = 0.0f;
  if (a.in_dim % 4 == 0 && cf % 4 == 0 && aligned16(xt)) {
    for (int64_t i = 4 * tid; i < a.in_dim; i += 4 * kShrinkThreads) {
      const int64_t ci = i / cf, off = i % cf;
      const T* c[kShrinkRows];
      bool ok = true;
#pragma unroll
      for (int jj = 0; jj < kShrinkRows; ++jj) {
        c[jj] = chunk_at<T>(a, first + min(jj, rows - 1) * per_row + ci) + off;
        ok = ok && aligned4(c[jj]);
      }
      const float4 xv = *reinterpret_cast<const float4*>(xt + i);
      if (ok) {
        float4 w[kShrinkRows];
#pragma unroll
        for (int jj = 0; jj < kShrinkRows; ++jj) w[jj] = load4(c[jj]);
#pragma unroll
        for (int jj = 0; jj < kShrinkRows; ++jj) acc[jj] += dot4(w[jj], xv);
      } else {
#pragma unroll
        for (int jj = 0; jj < kShrinkRows; ++jj)
          acc[jj] += dot4(
              make_float4(load_w(c[jj], 0), load_w(c[jj], 1), load_w(c[jj], 2), load_w(c[jj], 3)),
              xv);
      }
    }
  } else {
    for (int64_t i = tid; i < a.in_dim; i += kShrinkThreads) {
      const float xv = xt[i];
      const int64_t ci = i / cf, off = i % cf;
#pragma unroll
      for (int jj = 0; jj < kShrinkRows; ++jj)
        acc[jj] += xv * load_w(chunk_at<T>(a, first + min(jj, rows - 1) * per_row + ci), off);
    }
  }
  __shared__ float partial[kShrinkThreads / 32][kShrinkRows];
  const int warp = tid / 32, lane = tid % 32;
#pragma unroll
  for (int jj = 0; jj < kShrinkRows; ++jj) {
    const float w = warp_sum(acc[jj]);
    if (lane == 0) partial[warp][jj] = w;
  }
  __syncthreads();
  if (tid < rows) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kShrinkThreads / 32; ++w) sum += partial[w][tid];
    v[t * a.max_rank + j0 + tid] = sum;
  }
}

// kRows 1: shrink_row (128 threads); 16: shrink_rows (256 threads).
template <typename T, int kRows>
__global__ void __launch_bounds__(kShrinkThreads)
    shrink_token_kernel(const float* x, LoraArgs a, float* v) {
  if constexpr (kRows == 1)
    shrink_row<T>(x, a, v);
  else
    shrink_rows<T>(x, a, v);
}

// Several modules sharing x (blockIdx.z picks the module): one launch instead of one each.
struct LoraGroupArgs {
  LoraArgs m[kMaxLoraGroup];
  float* v[kMaxLoraGroup];
  float* y[kMaxLoraGroup];
};

template <typename T, int kRows>
__global__ void __launch_bounds__(kShrinkThreads)
    shrink_group_kernel(const float* x, const __grid_constant__ LoraGroupArgs g) {
  if constexpr (kRows == 1)
    shrink_row<T>(x, g.m[blockIdx.z], g.v[blockIdx.z]);
  else
    shrink_rows<T>(x, g.m[blockIdx.z], g.v[blockIdx.z]);
}

// Which decode shrink runs. Measured on an H200 (bf16 pages, 4,096-wide rows, one module):
// rank 16 at batch 32 / 64 took 7.1 / 7.5 us one row per block against 9.5 / 9.1 us 16 rows per
// block; rank 16 at batch 128 took 11.4 against 10.3 us, and rank 64 at batch 32 / 64 / 128
// 11.0 / 16.3 / 28.0 against 10.4 / 13.4 / 23.7 us. Many short blocks win while they are few.
// Beside a GEMM (overwrite: gemm_parts' side stream) the 16-row plan always: its few blocks
// leave the SMs to the GEMM. On an H100 at batch 64, 64 distinct rank-16 q,k,v,o adapters
// cost +1.00 ms a step with it against +1.21 ms with one row per block (+1.40 ms after the GEMM).
int shrink_rows_per_block(int64_t n, int32_t max_rank, bool beside) {
  return beside || max_rank >= 32 || n >= 128 ? kShrinkRows : 1;
}

constexpr int kExpandThreads = 256;

// grid (n, ceil(out_dim / 1024)), each thread four consecutive output columns (float4 when the
// chunks allow), rank rows unrolled by 16 so several row loads are in flight. kSet: y = the term
// alone (0 where the token has no adapter) instead of y += it.
template <typename T, bool kSet>
__device__ __forceinline__ void expand_token(const float* v, const LoraArgs& a, float* y) {
  const int64_t t = blockIdx.x;
  const int32_t s = a.token_slot[t];
  const int32_t r = slot_rank(a, s);
  const int64_t o = (blockIdx.y * static_cast<int64_t>(kExpandThreads) + threadIdx.x) * 4;
  if (o >= a.out_dim) return;
  float* yt = y + t * a.out_dim;
  if (r == 0) {
    if (kSet)
      for (int64_t oo = o; oo < min(o + 4, a.out_dim); ++oo) yt[oo] = 0.0f;
    return;
  }
  const int64_t cf = a.chunk_elems;
  const int64_t per_row = (a.out_dim + cf - 1) / cf;
  const float* vt = v + t * a.max_rank;
  const float sc = a.scale[s];
  const int64_t first = a.bt_first[s];
  if (a.out_dim % 4 == 0 && cf % 4 == 0 && aligned16(yt)) {
    const int64_t ci = o / cf, off = o % cf;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    // Unrolled by 16 so a rank-16 slot's chunk-pointer loads, then its row loads, are each one
    // round of memory latency (the kernel is latency-bound at decode sizes).
#pragma unroll 16
    for (int32_t j = 0; j < r; ++j) {
      const T* c = chunk_at<T>(a, first + j * per_row + ci) + off;
      const float4 b = aligned4(c)
                           ? load4(c)
                           : make_float4(load_w(c, 0), load_w(c, 1), load_w(c, 2), load_w(c, 3));
      const float vj = vt[j];
      acc.x += vj * b.x;
      acc.y += vj * b.y;
      acc.z += vj * b.z;
      acc.w += vj * b.w;
    }
    float4 out = kSet ? make_float4(0.f, 0.f, 0.f, 0.f) : *reinterpret_cast<float4*>(yt + o);
    out.x += sc * acc.x;
    out.y += sc * acc.y;
    out.z += sc * acc.z;
    out.w += sc * acc.w;
    *reinterpret_cast<float4*>(yt + o) = out;
    return;
  }
  for (int64_t oo = o; oo < min(o + 4, a.out_dim); ++oo) {
    float acc = 0.0f;
    for (int32_t j = 0; j < r; ++j) acc += vt[j] * row_elem<T>(a, first, per_row, j, oo);
    yt[oo] = (kSet ? 0.0f : yt[oo]) + sc * acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kExpandThreads)
    expand_token_kernel(const float* v, LoraArgs a, float* y) {
  expand_token<T, false>(v, a, y);
}

template <typename T, bool kSet>
__global__ void __launch_bounds__(kExpandThreads)
    expand_group_kernel(const __grid_constant__ LoraGroupArgs g) {
  expand_token<T, kSet>(g.v[blockIdx.z], g.m[blockIdx.z], g.y[blockIdx.z]);
}

// grid (num_segments, ceil(max_rank / 16) * splits, ceil(n / 16)), 256 threads = 16 tokens x
// 16 rows. blockIdx.y = rank tile * splits + part: part p reduces over in_dim columns
// [p * span, (p + 1) * span) (span a multiple of kDepth). With one part v is written directly;
// with more, each part writes partial[p][t][j] and reduce_split_kernel adds them in order (no
// atomics, so results do not depend on scheduling). A few long segments (a prompt admitted
// next to decode tokens) would otherwise be a handful of blocks each walking all of in_dim.
template <typename T>
__global__ void __launch_bounds__(kTile* kTile)
    shrink_segment_kernel(const float* x, int64_t n, LoraArgs a, int32_t splits, int64_t span,
                          float* v, float* partial) {
  const int32_t seg = blockIdx.x;
  const int64_t t_end = a.seg_start[seg + 1];
  const int64_t t0 = a.seg_start[seg] + static_cast<int64_t>(blockIdx.z) * kTile;
  if (t0 >= t_end) return;
  const int32_t s = a.seg_slot[seg];
  const int32_t r = slot_rank(a, s);
  const int32_t part = blockIdx.y % splits;
  const int32_t j0 = (blockIdx.y / splits) * kTile;
  if (j0 >= r) return;
  __shared__ float xs[kTile][kDepth + 1];
  __shared__ float as[kTile][kDepth + 1];
  const int tid = threadIdx.x;
  const int ty = tid / kTile, tx = tid % kTile;  // token, rank row
  const int64_t per_row = (a.in_dim + a.chunk_elems - 1) / a.chunk_elems;
  const int64_t first = a.a_first[s];
  // Staging: thread (rr, q) loads elements 4q..4q+3 of tile row rr (token t0 + rr of x, rank
  // row j0 + rr of A), four at a time where rows and chunks are multiples of four.
  const int rr = tid / (kDepth / 4), q4 = 4 * (tid % (kDepth / 4));
  const bool vec = a.in_dim % 4 == 0 && a.chunk_elems % 4 == 0 && aligned16(x);
  const int64_t tr = t0 + rr;
  const int32_t jr = j0 + rr;
  const float* xrow = x + tr * a.in_dim;
  float acc = 0.0f;
  const int64_t k_begin = part * span, k_end = min(a.in_dim, k_begin + span);
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kDepth) {
    float xv[4] = {0.0f, 0.0f, 0.0f, 0.0f}, av[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const int64_t i = k0 + q4;
    if (vec && i < k_end) {
      if (tr < t_end) {
        const float4 f = *reinterpret_cast<const float4*>(xrow + i);
        xv[0] = f.x, xv[1] = f.y, xv[2] = f.z, xv[3] = f.w;
      }
      if (jr < r) {
        const T* c = chunk_at<T>(a, first + jr * per_row + i / a.chunk_elems) + i % a.chunk_elems;
        const float4 f = aligned4(c)
                             ? load4(c)
                             : make_float4(load_w(c, 0), load_w(c, 1), load_w(c, 2), load_w(c, 3));
        av[0] = f.x, av[1] = f.y, av[2] = f.z, av[3] = f.w;
      }
    } else if (!vec) {
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int64_t iu = i + u;
        if (iu >= k_end) break;
        if (tr < t_end) xv[u] = xrow[iu];
        if (jr < r) av[u] = row_elem<T>(a, first, per_row, jr, iu);
      }
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      xs[rr][q4 + u] = xv[u];
      as[rr][q4 + u] = av[u];
    }
    __syncthreads();
#pragma unroll 16
    for (int kk = 0; kk < kDepth; ++kk) acc += xs[ty][kk] * as[tx][kk];
    __syncthreads();
  }
  const int64_t t = t0 + ty;
  const int32_t j = j0 + tx;
  if (t >= t_end || j >= r) return;
  if (splits == 1)
    v[t * a.max_rank + j] = acc;
  else
    partial[(part * n + t) * a.max_rank + j] = acc;
}

// v[t, j] = sum over parts of partial[p][t][j], for the (token, row) pairs the shrink wrote
// (the segments cover every token and agree with token_slot, as LoraModuleBatch requires).
__global__ void reduce_split_kernel(const float* partial, int64_t n, LoraArgs a, int32_t splits,
                                    float* v) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e >= n * a.max_rank) return;
  const int64_t t = e / a.max_rank;
  const int32_t j = static_cast<int32_t>(e % a.max_rank);
  if (j >= slot_rank(a, a.token_slot[t])) return;
  float sum = 0.0f;
  for (int32_t p = 0; p < splits; ++p) sum += partial[p * n * a.max_rank + e];
  v[e] = sum;
}

// grid (num_segments, ceil(out_dim / 256), ceil(n / 16)), one thread per output column; rank
// rows are read eight at a time so their loads are in flight together.
template <typename T>
__global__ void expand_segment_kernel(const float* v, LoraArgs a, float* y) {
  const int32_t seg = blockIdx.x;
  const int64_t t_end = a.seg_start[seg + 1];
  const int64_t t0 = a.seg_start[seg] + static_cast<int64_t>(blockIdx.z) * kTile;
  if (t0 >= t_end) return;
  const int32_t s = a.seg_slot[seg];
  const int32_t r = slot_rank(a, s);
  if (r == 0) return;
  __shared__ float vs[kTile][kDepth];
  const int64_t o = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t per_row = (a.out_dim + a.chunk_elems - 1) / a.chunk_elems;
  const int64_t first = a.bt_first[s];
  const int64_t ci = o / a.chunk_elems, off = o % a.chunk_elems;
  float acc[kTile];
#pragma unroll
  for (int i = 0; i < kTile; ++i) acc[i] = 0.0f;
  for (int32_t j0 = 0; j0 < r; j0 += kDepth) {
    for (int e = threadIdx.x; e < kTile * kDepth; e += blockDim.x) {
      const int tt = e / kDepth, jj = e % kDepth;
      const int64_t t = t0 + tt;
      vs[tt][jj] = (t < t_end && j0 + jj < r) ? v[t * a.max_rank + j0 + jj] : 0.0f;
    }
    __syncthreads();
    if (o < a.out_dim) {
      const int32_t jn = min(kDepth, r - j0);
      for (int jj = 0; jj < jn; jj += 8) {
        float b[8];
#pragma unroll
        for (int u = 0; u < 8; ++u)
          b[u] = jj + u < jn ? load_w(chunk_at<T>(a, first + (j0 + jj + u) * per_row + ci), off)
                             : 0.0f;
#pragma unroll
        for (int u = 0; u < 8; ++u)
#pragma unroll
          for (int tt = 0; tt < kTile; ++tt) acc[tt] += vs[tt][jj + u] * b[u];
      }
    }
    __syncthreads();
  }
  if (o >= a.out_dim) return;
  const float sc = a.scale[s];
#pragma unroll
  for (int tt = 0; tt < kTile; ++tt)
    if (t0 + tt < t_end) y[(t0 + tt) * a.out_dim + o] += sc * acc[tt];
}

// ---- segment tiles on the tensor cores (bf16 activations) ----
// The same segment plan with 64-token tiles (4 warps x 16 rows) and mma.sync m16n8k16: x, v and
// the adapter rows are rounded to bf16 in shared memory (pads of 8 elements keep the ldmatrix
// reads conflict-free), products accumulate in fp32. Ranks up to kMmaMaxRank. The shrink walks
// in_dim kMmaDepth columns a step (split over blocks like the SIMT shrink); the expand takes a
// tile's whole rank at once for 64 output columns.
constexpr int kMmaRows = 64, kMmaDepth = 32, kMmaMaxRank = 64, kMmaThreads = 128;

__device__ __forceinline__ __nv_bfloat16 bf(float x) {
  return __float2bfloat16_rn(x);
}

// grid (num_segments, splits, ceil(n / 64)); part p of in_dim as in shrink_segment_kernel.
template <typename T>
__global__ void __launch_bounds__(kMmaThreads)
    shrink_segment_mma_kernel(const float* x, int64_t n, LoraArgs a, int32_t splits, int64_t span,
                              float* v, float* partial) {
  using M = Mma<__nv_bfloat16>;
  const int32_t seg = blockIdx.x;
  const int64_t t_end = a.seg_start[seg + 1];
  const int64_t t0 = a.seg_start[seg] + static_cast<int64_t>(blockIdx.z) * kMmaRows;
  if (t0 >= t_end) return;
  const int32_t s = a.seg_slot[seg];
  const int32_t r = slot_rank(a, s);
  if (r == 0) return;
  const int32_t part = blockIdx.y;
  __shared__ __align__(16) __nv_bfloat16 xs[kMmaRows][kMmaDepth + 8];
  __shared__ __align__(16) __nv_bfloat16 as[kMmaMaxRank][kMmaDepth + 8];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t per_row = (a.in_dim + a.chunk_elems - 1) / a.chunk_elems;
  const int64_t first = a.a_first[s];
  const int64_t k_begin = part * span, k_end = min(a.in_dim, k_begin + span);
  float acc[kMmaMaxRank / 8][4] = {};
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kMmaDepth) {
    for (int e = tid; e < kMmaRows * kMmaDepth; e += kMmaThreads) {
      const int row = e / kMmaDepth, col = e % kMmaDepth;
      const int64_t t = t0 + row, k = k0 + col;
      xs[row][col] = bf(t < t_end && k < k_end ? x[t * a.in_dim + k] : 0.0f);
      as[row][col] = bf(row < r && k < k_end ? row_elem<T>(a, first, per_row, row, k) : 0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < kMmaDepth / 16; ++ks) {
      uint32_t af[4];
      ldmatrix_x4(af, &xs[warp * 16 + (lane & 15)][ks * 16 + (lane >> 4) * 8]);
#pragma unroll
      for (int np = 0; np < kMmaMaxRank / 16; ++np) {
        if (np * 16 >= r) break;
        uint32_t b[4];
        ldmatrix_x4(b,
                    &as[np * 16 + (lane & 7) + (lane >> 4) * 8][ks * 16 + ((lane >> 3) & 1) * 8]);
        M::mma(acc[2 * np], af, b[0], b[1]);
        M::mma(acc[2 * np + 1], af, b[2], b[3]);
      }
    }
    __syncthreads();
  }
  float* dst = splits == 1 ? v : partial + part * n * a.max_rank;
  const int g = lane / 4, c = lane % 4;
#pragma unroll
  for (int nt = 0; nt < kMmaMaxRank / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int32_t j = nt * 8 + 2 * c + (e & 1);
      const int64_t t = t0 + warp * 16 + g + (e >> 1) * 8;
      if (j < r && t < t_end) dst[t * a.max_rank + j] = acc[nt][e];
    }
}

// grid (num_segments, ceil(out_dim / 64), ceil(n / 64)): y[t, o] += scale * v[t, :r] B^T[:r, o].
template <typename T>
__global__ void __launch_bounds__(kMmaThreads)
    expand_segment_mma_kernel(const float* v, LoraArgs a, float* y) {
  using M = Mma<__nv_bfloat16>;
  constexpr int kCols = 64;
  const int32_t seg = blockIdx.x;
  const int64_t t_end = a.seg_start[seg + 1];
  const int64_t t0 = a.seg_start[seg] + static_cast<int64_t>(blockIdx.z) * kMmaRows;
  if (t0 >= t_end) return;
  const int32_t s = a.seg_slot[seg];
  const int32_t r = slot_rank(a, s);
  if (r == 0) return;
  const int64_t o0 = static_cast<int64_t>(blockIdx.y) * kCols;
  __shared__ __align__(16) __nv_bfloat16 vs[kMmaRows][kMmaMaxRank + 8];
  __shared__ __align__(16) __nv_bfloat16 bs[kMmaMaxRank][kCols + 8];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t per_row = (a.out_dim + a.chunk_elems - 1) / a.chunk_elems;
  const int64_t first = a.bt_first[s];
  const int rk = (r + 15) / 16 * 16;  // rank rounded up to whole k-steps (zero-padded)
  for (int e = tid; e < kMmaRows * rk; e += kMmaThreads) {
    const int row = e / rk, j = e % rk;
    const int64_t t = t0 + row;
    vs[row][j] = bf(t < t_end && j < r ? v[t * a.max_rank + j] : 0.0f);
  }
  for (int e = tid; e < rk * kCols; e += kMmaThreads) {
    const int j = e / kCols, col = e % kCols;
    const int64_t o = o0 + col;
    bs[j][col] = bf(j < r && o < a.out_dim ? row_elem<T>(a, first, per_row, j, o) : 0.0f);
  }
  __syncthreads();
  float acc[kCols / 8][4] = {};
  for (int ks = 0; ks < rk / 16; ++ks) {
    uint32_t af[4];
    ldmatrix_x4(af, &vs[warp * 16 + (lane & 15)][ks * 16 + (lane >> 4) * 8]);
#pragma unroll
    for (int dp = 0; dp < kCols / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(
          b, &bs[ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][dp * 16 + (lane >> 4) * 8]);
      M::mma(acc[2 * dp], af, b[0], b[1]);
      M::mma(acc[2 * dp + 1], af, b[2], b[3]);
    }
  }
  const float sc = a.scale[s];
  const int g = lane / 4, c = lane % 4;
#pragma unroll
  for (int nt = 0; nt < kCols / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t o = o0 + nt * 8 + 2 * c + (e & 1);
      const int64_t t = t0 + warp * 16 + g + (e >> 1) * 8;
      if (o < a.out_dim && t < t_end) y[t * a.out_dim + o] += sc * acc[nt][e];
    }
}

// Parts the segment shrink splits in_dim into, for tiles of `rows` tokens times `rank_tiles`
// and reduction steps of `depth`: enough blocks for the GPU (an upper bound on the live tiles:
// every segment's tiles plus one partial tile each), each part at least four steps, at most 16.
int32_t segment_splits(int64_t n, const LoraModuleBatch& l, int64_t depth, int64_t rows,
                       int64_t rank_tiles) {
  const int64_t steps = (l.in_dim + depth - 1) / depth;
  const int64_t tiles = rank_tiles * ((n + rows - 1) / rows + l.num_segments);
  constexpr int64_t kWantBlocks = 4 * 132;  // 4 blocks per SM of an H100/H200; only speed
  int64_t splits = (kWantBlocks + tiles - 1) / tiles;
  splits = std::min<int64_t>({splits, steps / 4, 16});
  return static_cast<int32_t>(std::max<int64_t>(1, splits));
}

// The two segment shrink plans: fp32 16 x 16 tiles, or the tensor cores' 64-token tiles.
struct SegmentPlan {
  int64_t depth, rows, rank_tiles;
};
SegmentPlan segment_plan(const LoraModuleBatch& l, bool mma) {
  if (mma && l.max_rank <= kMmaMaxRank) return {kMmaDepth, kMmaRows, 1};
  return {kDepth, kTile, (l.max_rank + kTile - 1) / kTile};
}

bool valid(const LoraModuleBatch& l, bool by_segment) {
  if (l.num_slots < 0 || l.max_rank < 1 || l.max_rank > 65535 || l.in_dim < 1 || l.out_dim < 1 ||
      l.chunk_elems < 1 || !kv_dtype_supported(l.dtype))
    return false;
  if (!l.token_slot || !l.rank || !l.scale || !l.chunks) return false;
  if (by_segment && (!l.seg_start || !l.seg_slot)) return false;
  return true;
}

}  // namespace

size_t lora_shrink_scratch_floats(int64_t n, const LoraModuleBatch& l) {
  if (n <= 0 || l.num_segments <= 0 || !valid(l, true)) return 0;
  int32_t splits = 1;
  for (bool mma : {false, true}) {
    const SegmentPlan p = segment_plan(l, mma);
    splits = std::max(splits, segment_splits(n, l, p.depth, p.rows, p.rank_tiles));
  }
  return splits > 1 ? static_cast<size_t>(splits) * static_cast<size_t>(n * l.max_rank) : 0;
}

cudaError_t lora_shrink(const float* x, int64_t n, const LoraModuleBatch& l, float* v,
                        bool by_segment, float* scratch, size_t scratch_floats, cudaStream_t stream,
                        bool mma) {
  if (n == 0 || l.num_slots == 0) return cudaSuccess;
  if (!valid(l, by_segment)) return cudaErrorInvalidValue;
  const LoraArgs a = args_of(l);
  return dispatch_kv(l.dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (by_segment) {
      if (l.num_segments == 0) return cudaSuccess;
      const SegmentPlan p = segment_plan(l, mma);
      const bool tc = p.rows == kMmaRows;
      int32_t splits = segment_splits(n, l, p.depth, p.rows, p.rank_tiles);
      if (static_cast<size_t>(splits) * static_cast<size_t>(n * l.max_rank) > scratch_floats)
        splits = 1;
      const int64_t steps = (l.in_dim + p.depth - 1) / p.depth;
      const int64_t span = (steps + splits - 1) / splits * p.depth;
      const dim3 grid(static_cast<unsigned>(l.num_segments),
                      static_cast<unsigned>(p.rank_tiles * splits),
                      static_cast<unsigned>((n + p.rows - 1) / p.rows));
      if (tc)
        shrink_segment_mma_kernel<T>
            <<<grid, kMmaThreads, 0, stream>>>(x, n, a, splits, span, v, scratch);
      else
        shrink_segment_kernel<T>
            <<<grid, kTile * kTile, 0, stream>>>(x, n, a, splits, span, v, scratch);
      if (splits > 1) {
        const cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
        const int64_t count = n * l.max_rank;
        reduce_split_kernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, stream>>>(
            scratch, n, a, splits, v);
      }
    } else {
      const int rows = shrink_rows_per_block(n, l.max_rank, false);
      const dim3 grid(static_cast<unsigned>(n),
                      static_cast<unsigned>((l.max_rank + rows - 1) / rows));
      if (rows == 1)
        shrink_token_kernel<T, 1><<<grid, kRowThreads, 0, stream>>>(x, a, v);
      else
        shrink_token_kernel<T, kShrinkRows><<<grid, kShrinkThreads, 0, stream>>>(x, a, v);
    }
    return cudaGetLastError();
  });
}

cudaError_t lora_expand(const float* v, int64_t n, const LoraModuleBatch& l, float* y,
                        bool by_segment, cudaStream_t stream, bool mma) {
  if (n == 0 || l.num_slots == 0) return cudaSuccess;
  if (!valid(l, by_segment)) return cudaErrorInvalidValue;
  const LoraArgs a = args_of(l);
  const unsigned col_blocks = static_cast<unsigned>((l.out_dim + 255) / 256);
  return dispatch_kv(l.dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (by_segment && mma && l.max_rank <= kMmaMaxRank) {
      if (l.num_segments == 0) return cudaSuccess;
      const dim3 grid(static_cast<unsigned>(l.num_segments),
                      static_cast<unsigned>((l.out_dim + 63) / 64),
                      static_cast<unsigned>((n + kMmaRows - 1) / kMmaRows));
      expand_segment_mma_kernel<T><<<grid, kMmaThreads, 0, stream>>>(v, a, y);
    } else if (by_segment) {
      if (l.num_segments == 0) return cudaSuccess;
      const dim3 grid(static_cast<unsigned>(l.num_segments), col_blocks,
                      static_cast<unsigned>((n + kTile - 1) / kTile));
      expand_segment_kernel<T><<<grid, 256, 0, stream>>>(v, a, y);
    } else {
      const dim3 grid(
          static_cast<unsigned>(n),
          static_cast<unsigned>((l.out_dim + 4 * kExpandThreads - 1) / (4 * kExpandThreads)));
      expand_token_kernel<T><<<grid, kExpandThreads, 0, stream>>>(v, a, y);
    }
    return cudaGetLastError();
  });
}

cudaError_t lora_group(const float* x, int64_t n, const LoraModuleBatch* mods, int32_t count,
                       float* const* v, float* const* y, bool overwrite, cudaStream_t stream) {
  if (count < 0 || count > kMaxLoraGroup) return cudaErrorInvalidValue;
  if (n == 0 || count == 0) return cudaSuccess;
  LoraGroupArgs g{};
  int32_t max_rank = 0;
  int64_t max_out = 0;
  for (int32_t i = 0; i < count; ++i) {
    if (!valid(mods[i], false) || mods[i].dtype != mods[0].dtype || mods[i].num_slots == 0)
      return cudaErrorInvalidValue;
    g.m[i] = args_of(mods[i]);
    g.v[i] = v[i];
    g.y[i] = y[i];
    max_rank = std::max(max_rank, mods[i].max_rank);
    max_out = std::max(max_out, mods[i].out_dim);
  }
  return dispatch_kv(mods[0].dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const int rows = shrink_rows_per_block(n, max_rank, overwrite);
    const dim3 sgrid(static_cast<unsigned>(n), static_cast<unsigned>((max_rank + rows - 1) / rows),
                     static_cast<unsigned>(count));
    if (rows == 1)
      shrink_group_kernel<T, 1><<<sgrid, kRowThreads, 0, stream>>>(x, g);
    else
      shrink_group_kernel<T, kShrinkRows><<<sgrid, kShrinkThreads, 0, stream>>>(x, g);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    const dim3 egrid(
        static_cast<unsigned>(n),
        static_cast<unsigned>((max_out + 4 * kExpandThreads - 1) / (4 * kExpandThreads)),
        static_cast<unsigned>(count));
    if (overwrite)
      expand_group_kernel<T, true><<<egrid, kExpandThreads, 0, stream>>>(g);
    else
      expand_group_kernel<T, false><<<egrid, kExpandThreads, 0, stream>>>(g);
    return cudaGetLastError();
  });
}

}  // namespace ls::cuda
