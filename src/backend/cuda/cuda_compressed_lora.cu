// The shared-basis LoRA op (Compress then Serve) as two kernels over tiles of up to 8 tokens of
// one cluster (the tile table is built on the host, tokens sorted by cluster):
//   1. T = X V_g: one warp per (tile, basis column k) streams row k of V_g^T once for all the
//      tile's tokens (8 dot products in registers, one shuffle reduction each).
//   2. T' = S_t T per token (a K x K product, or a scaling when S is diagonal) into shared
//      memory, then Y += T' U_g^T: one thread per output column reads U_g^T coalesced once for
//      the tile's tokens.
// So every basis element read serves up to 8 tokens, whichever adapters of the cluster they
// use; the per-adapter cost is only the small S. Our own kernels rather than cuBLAS because the
// cluster's tokens are scattered over the batch and each carries its own S (a gather and a
// per-row product a GEMM library does not fuse).
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {

constexpr int kRows = kCompressedTileRows;
constexpr int kShrinkWarps = 8;
constexpr int kExpandThreads = 256;

struct TileInfo {
  int32_t start, len, group;
};

__device__ __forceinline__ TileInfo tile_info(const CompressedLoraBatch& b, int32_t tile) {
  TileInfo t;
  t.start = b.tiles[2 * tile];
  t.len = b.tiles[2 * tile + 1];
  const int32_t slot = b.token_slot[b.rows[t.start]];
  t.group = b.slot_group[slot];
  return t;
}

// grid (num_tiles, ceil(k_max / 8)), 8 warps: warp w computes T[row, blockIdx.y * 8 + w].
__global__ void compressed_shrink_kernel(const float* x, CompressedLoraBatch b) {
  const TileInfo t = tile_info(b, static_cast<int32_t>(blockIdx.x));
  const int32_t kv = b.dims[3 * t.group + 1];
  const int32_t k =
      static_cast<int32_t>(blockIdx.y) * kShrinkWarps + static_cast<int32_t>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (b.dims[3 * t.group] == 0 || k >= kv) return;
  const float* vrow = b.vt[t.group] + static_cast<int64_t>(k) * b.in_dim;
  const float* xr[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    xr[r] = r < t.len ? x + static_cast<int64_t>(b.rows[t.start + r]) * b.in_dim : nullptr;
  float acc[kRows] = {};
  for (int64_t i = lane; i < b.in_dim; i += 32) {
    const float v = vrow[i];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (r < t.len) acc[r] += v * xr[r][i];
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float s = acc[r];
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0 && r < t.len)
      b.scratch[static_cast<int64_t>(b.rows[t.start + r]) * b.k_max + k] = s;
  }
}

// grid (num_tiles, ceil(out_dim / 256)); dynamic shared memory kRows * k_max floats.
__global__ void compressed_expand_kernel(CompressedLoraBatch b, float* y) {
  extern __shared__ float t2[];  // [kRows][ku]
  const TileInfo t = tile_info(b, static_cast<int32_t>(blockIdx.x));
  const int32_t ku = b.dims[3 * t.group], kv = b.dims[3 * t.group + 1];
  const bool diag = b.dims[3 * t.group + 2] != 0;
  if (ku == 0) return;
  for (int32_t idx = static_cast<int32_t>(threadIdx.x); idx < t.len * ku;
       idx += static_cast<int32_t>(blockDim.x)) {
    const int32_t r = idx / ku, k = idx % ku;
    const int32_t row = b.rows[t.start + r];
    const float* s = b.slot_s[b.token_slot[row]];
    const float* tr = b.scratch + static_cast<int64_t>(row) * b.k_max;
    float v = 0.0f;
    if (s != nullptr) {  // null: this adapter leaves the module alone
      if (diag) {
        v = s[k] * tr[k];
      } else {
        const float* srow = s + static_cast<int64_t>(k) * kv;
        for (int32_t j = 0; j < kv; ++j) v += srow[j] * tr[j];
      }
    }
    t2[r * ku + k] = v;
  }
  __syncthreads();
  const int64_t o = static_cast<int64_t>(blockIdx.y) * kExpandThreads + threadIdx.x;
  if (o >= b.out_dim) return;
  const float* ut = b.ut[t.group];
  float acc[kRows] = {};
  for (int32_t k = 0; k < ku; ++k) {
    const float u = ut[static_cast<int64_t>(k) * b.out_dim + o];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (r < t.len) acc[r] += u * t2[r * ku + k];
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (r < t.len) y[static_cast<int64_t>(b.rows[t.start + r]) * b.out_dim + o] += acc[r];
}

}  // namespace

int32_t compressed_lora_max_k() {
  return 1536;  // kRows * k_max floats of shared memory stay within the default 48 KiB
}

cudaError_t compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& b, float* y,
                            cudaStream_t stream) {
  if (n == 0 || b.num_tiles == 0 || b.num_groups == 0) return cudaSuccess;
  if (b.k_max <= 0 || b.k_max > compressed_lora_max_k() || b.scratch == nullptr || b.in_dim <= 0 ||
      b.out_dim <= 0)
    return cudaErrorInvalidValue;
  const dim3 shrink_grid(static_cast<unsigned>(b.num_tiles),
                         static_cast<unsigned>((b.k_max + kShrinkWarps - 1) / kShrinkWarps));
  compressed_shrink_kernel<<<shrink_grid, kShrinkWarps * 32, 0, stream>>>(x, b);
  const dim3 expand_grid(static_cast<unsigned>(b.num_tiles),
                         static_cast<unsigned>((b.out_dim + kExpandThreads - 1) / kExpandThreads));
  const size_t smem = static_cast<size_t>(kRows) * static_cast<size_t>(b.k_max) * sizeof(float);
  compressed_expand_kernel<<<expand_grid, kExpandThreads, smem, stream>>>(b, y);
  return cudaGetLastError();
}

}  // namespace ls::cuda
