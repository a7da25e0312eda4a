// Paged attention over the unified page pool. Our own kernel because the keys of a sequence
// live in pages listed by a CSR page table (kv_indptr / kv_indices, page_size tokens a page, in
// the same K/V blocks that also hold adapter rows), which no library kernel reads.
//
// Plan: one block of 4 warps per (token, q head, split). The token's causal key range (minus a
// sliding window) is cut into `splits` parts, so a decode token with a long context is spread
// over several SMs (split-K / flash-decoding) without the host knowing the lengths; with many
// tokens (prefill) splits is 1 and the block writes its output directly. Each warp walks its
// keys with an online softmax (running max, running sum, rescaled accumulator; q in registers,
// each lane a contiguous slice of head_dim read with one vector load, one shuffle reduction per
// key); the 4 warps, then the splits, are merged by rescaling with exp(m_i - m). The cache is
// fp32 or bf16 (every kernel here is templated on its element type); keys are widened to fp32
// as they are loaded, so the math is fp32 throughout.
//
// Prefill tiles (AttentionBatch.tiles, built by attention_tiles.h): one warp per (tile of up
// to 16 consecutive tokens of one sequence, q head) runs a flash-attention loop on the tensor
// cores. Per block of 16 keys (gathered from their pages into shared memory): S = Q K^T with
// WMMA m16n16k8 TF32, causal/window mask and online softmax per row (two lanes a row), O
// rescaled and O += P V with WMMA, O kept in shared memory (WMMA's accumulator layout is
// opaque, so per-row rescaling happens there). Each product is 3xTF32 (x = hi + lo in TF32;
// hi*hi + hi*lo + lo*hi), which keeps fp32-level accuracy (~1e-6 relative, matching the
// fp32 KV cache and the CPU reference) at three tensor-core MMAs per product. Every key a
// tile reads serves its 16 rows. Tokens outside tiles (decode) take the kernel above.
//
// Long prefill runs (AttentionBatch.runs, host side) are computed by CudaBackend as dense
// GEMMs instead (cuBLAS fp32, exact like the reference): gather_kv copies the run's keys out of
// their pages into contiguous K and V, S = Q K^T per head, masked_softmax turns S into P in
// place (causal and sliding-window mask), O = P V. One warp per tile and head above reaches
// a few TFLOP/s at 2,048 tokens; SGEMM runs near the chip's fp32 rate and the query rows are
// cut into chunks, so each chunk only multiplies the keys it can see.
#include <mma.h>

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kMinKeysPerSplit = 64;

struct AttnArgs {
  const int32_t* token_seq;
  const int32_t* token_pos;
  const int32_t* kv_indptr;
  const int32_t* kv_indices;
  int32_t num_q_heads, group, head_dim, page_size, sliding_window;
  int64_t kv_width;
  float scale;
};

// r = elements [lane * kPerLane, +kPerLane) of the head vector at p (0 past hd); `vec`: hd is
// exactly 32 * kPerLane and rows are aligned for kPerLane-element vector loads.
template <int kPerLane, typename T>
__device__ __forceinline__ void load_lane(const T* p, bool vec, int32_t hd, int lane,
                                          float (&r)[kPerLane]) {
  const int d0 = lane * kPerLane;
  if (vec) {
    if constexpr (kPerLane % 4 == 0) {
#pragma unroll
      for (int i = 0; i < kPerLane; i += 4) {
        const float4 f = load4(p + d0 + i);
        r[i] = f.x;
        r[i + 1] = f.y;
        r[i + 2] = f.z;
        r[i + 3] = f.w;
      }
      return;
    } else if constexpr (kPerLane == 2) {
      const float2 f = load2(p + d0);
      r[0] = f.x;
      r[1] = f.y;
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) r[i] = d0 + i < hd ? load_w(p, d0 + i) : 0.0f;
}

template <int kPerLane, typename T>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const float* q, AttnArgs a, const int32_t* tokens, const T* kc, const T* vc,
                     int splits, float* out, float* part_acc, float* part_ml) {
  pdl_start();
  const int64_t row = blockIdx.x;  // (token or tokens[] index) * num_q_heads + head
  const int split = blockIdx.y;
  const int64_t t = tokens ? tokens[row / a.num_q_heads] : row / a.num_q_heads;
  const int64_t out_row = t * a.num_q_heads + row % a.num_q_heads;
  const int32_t h = static_cast<int32_t>(row % a.num_q_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t hd = a.head_dim;

  const int32_t s = a.token_seq[t];
  const int32_t pos = a.token_pos[t];
  const int32_t first_page = a.kv_indptr[s];
  const int32_t capacity = (a.kv_indptr[s + 1] - first_page) * a.page_size;
  const int32_t end = min(pos + 1, capacity);  // keys [begin, end); pos < capacity by contract
  const int32_t begin = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  const int32_t len = max(0, end - begin);
  const int32_t per_split = max(kMinKeysPerSplit, (len + splits - 1) / splits);
  const int32_t k0 = begin + split * per_split;
  const int32_t k1 = min(end, k0 + per_split);

  float qr[kPerLane], acc[kPerLane];
  const float* qh = q + out_row * hd;
  const int d0 = lane * kPerLane;
  const bool vec = hd == 32 * kPerLane && a.kv_width % kPerLane == 0;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    qr[i] = d0 + i < hd ? qh[d0 + i] * a.scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int64_t head_off = static_cast<int64_t>(h / a.group) * hd;
  for (int32_t j = k0 + warp; j < k1; j += kWarps) {
    const int64_t page = a.kv_indices[first_page + j / a.page_size];
    const int64_t slot = page * a.page_size + j % a.page_size;
    float kr[kPerLane], vr[kPerLane];
    load_lane(kc + slot * a.kv_width + head_off, vec, hd, lane, kr);
    load_lane(vc + slot * a.kv_width + head_off, vec, hd, lane, vr);
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) dot += qr[i] * kr[i];
    dot = warp_sum(dot);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(dot - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = acc[i] * corr + p * vr[i];
    m = m_new;
  }

  // Merge the warps.
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  __shared__ float sm_acc[kWarps][kPerLane * 32];
  if (lane == 0) {
    sm_m[warp] = m;
    sm_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) sm_acc[warp][d0 + i] = acc[i];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm_m[w]);
  float L = 0.0f;
  float wscale[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    wscale[w] = sm_m[w] == -INFINITY ? 0.0f : expf(sm_m[w] - M);
    L += sm_l[w] * wscale[w];
  }
  for (int d = threadIdx.x; d < hd; d += kWarps * 32) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) v += sm_acc[w][d] * wscale[w];
    if (splits == 1) {
      out[out_row * hd + d] = L > 0.0f ? v / L : 0.0f;  // no keys (a graph's padding row): 0
    } else {
      part_acc[(row * splits + split) * hd + d] = v;
    }
  }
  if (splits > 1 && threadIdx.x == 0) {
    part_ml[(row * splits + split) * 2] = M;
    part_ml[(row * splits + split) * 2 + 1] = L;
  }
}

// The decode kernel for a bf16 cache and head_dim HD in {64, 128, 256}: a row of HD bf16 is
// read by HD / 16 lanes, 16 elements (two 16-byte loads) each, so a warp walks 32 / (HD / 16)
// keys at once (4 at HD = 128), each lane group with its own online softmax, and a key's dot
// product needs log2(HD / 16) shuffles instead of 5. With one key per warp and 8-byte loads
// (attention_kernel above), a bf16 cache was issue- and latency-bound at 41-47% of copy
// bandwidth on an H200, slower than the fp32 cache. The 4 x kGroups partial softmaxes are
// merged in shared memory as above.
template <int HD>
__global__ void __launch_bounds__(kWarps * 32)
    attention_bf16_kernel(const float* q, AttnArgs a, const int32_t* tokens,
                          const __nv_bfloat16* kc, const __nv_bfloat16* vc, int splits, float* out,
                          float* part_acc, float* part_ml) {
  pdl_start();
  constexpr int kLanes = HD / 16, kGroups = 32 / kLanes, kParts = kWarps * kGroups;
  const int64_t row = blockIdx.x;
  const int split = blockIdx.y;
  const int64_t t = tokens ? tokens[row / a.num_q_heads] : row / a.num_q_heads;
  const int64_t out_row = t * a.num_q_heads + row % a.num_q_heads;
  const int32_t h = static_cast<int32_t>(row % a.num_q_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / kLanes, d0 = (lane % kLanes) * 16;

  const int32_t s = a.token_seq[t];
  const int32_t pos = a.token_pos[t];
  const int32_t first_page = a.kv_indptr[s];
  const int32_t capacity = (a.kv_indptr[s + 1] - first_page) * a.page_size;
  const int32_t end = min(pos + 1, capacity);
  const int32_t begin = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  const int32_t len = max(0, end - begin);
  const int32_t per_split = max(kMinKeysPerSplit, (len + splits - 1) / splits);
  const int32_t k0 = begin + split * per_split;
  const int32_t k1 = min(end, k0 + per_split);

  float qr[16], acc[16];
  const float* qh = q + out_row * HD + d0;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    qr[i] = qh[i] * a.scale;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int64_t head_off = static_cast<int64_t>(h / a.group) * HD + d0;
  for (int32_t jb = k0 + warp * kGroups; jb < k1; jb += kParts) {
    const int32_t j = jb + g;
    const bool valid = j < k1;
    const int32_t jj = valid ? j : jb;  // a group past the end reloads a valid key, unused
    const int64_t page = a.kv_indices[first_page + jj / a.page_size];
    const int64_t off = (page * a.page_size + jj % a.page_size) * a.kv_width + head_off;
    const uint4* kp = reinterpret_cast<const uint4*>(kc + off);
    const uint4* vp = reinterpret_cast<const uint4*>(vc + off);
    const uint4 kraw[2] = {__ldg(kp), __ldg(kp + 1)};
    const uint4 vraw[2] = {__ldg(vp), __ldg(vp + 1)};
    float dot = 0.0f;
#pragma unroll
    for (int w = 0; w < 8; ++w) {
      const uint32_t bits = reinterpret_cast<const uint32_t*>(kraw)[w];
      const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits));
      dot += qr[2 * w] * f.x + qr[2 * w + 1] * f.y;
    }
#pragma unroll
    for (int o = kLanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (valid) {
      const float m_new = fmaxf(m, dot);
      const float corr = expf(m - m_new);  // 0 on the group's first key (m = -inf)
      const float p = expf(dot - m_new);
      l = l * corr + p;
#pragma unroll
      for (int w = 0; w < 8; ++w) {
        const uint32_t bits = reinterpret_cast<const uint32_t*>(vraw)[w];
        const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits));
        acc[2 * w] = acc[2 * w] * corr + p * f.x;
        acc[2 * w + 1] = acc[2 * w + 1] * corr + p * f.y;
      }
      m = m_new;
    }
  }

  __shared__ float sm_m[kParts], sm_l[kParts];
  __shared__ float sm_acc[kParts][HD];
  const int part = warp * kGroups + g;
  if (lane % kLanes == 0) {
    sm_m[part] = m;
    sm_l[part] = l;
  }
#pragma unroll
  for (int i = 0; i < 16; ++i) sm_acc[part][d0 + i] = acc[i];
  __syncthreads();
  float M = -INFINITY;
  for (int p = 0; p < kParts; ++p) M = fmaxf(M, sm_m[p]);
  float L = 0.0f;
  for (int p = 0; p < kParts; ++p)
    if (sm_m[p] != -INFINITY) L += sm_l[p] * expf(sm_m[p] - M);
  for (int d = threadIdx.x; d < HD; d += kWarps * 32) {
    float v = 0.0f;
    for (int p = 0; p < kParts; ++p)
      if (sm_m[p] != -INFINITY) v += sm_acc[p][d] * expf(sm_m[p] - M);
    if (splits == 1) {
      out[out_row * HD + d] = L > 0.0f ? v / L : 0.0f;  // no keys (a graph's padding row): 0
    } else {
      part_acc[(row * splits + split) * HD + d] = v;
    }
  }
  if (splits > 1 && threadIdx.x == 0) {
    part_ml[(row * splits + split) * 2] = M;
    part_ml[(row * splits + split) * 2 + 1] = L;
  }
}

// One block per (token, head): out = sum_s acc_s * exp(m_s - M) / sum_s l_s * exp(m_s - M).
__global__ void attention_merge_kernel(int splits, int32_t hd, int32_t num_q_heads,
                                       const int32_t* tokens, const float* part_acc,
                                       const float* part_ml, float* out) {
  pdl_start();
  const int64_t row = blockIdx.x;
  const int64_t t = tokens ? tokens[row / num_q_heads] : row / num_q_heads;
  const int64_t out_row = t * num_q_heads + row % num_q_heads;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part_ml[(row * splits + s) * 2]);
  float L = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float ms = part_ml[(row * splits + s) * 2];
    if (ms != -INFINITY) L += part_ml[(row * splits + s) * 2 + 1] * expf(ms - M);
  }
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float v = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float ms = part_ml[(row * splits + s) * 2];
      if (ms != -INFINITY) v += part_acc[(row * splits + s) * hd + d] * expf(ms - M);
    }
    out[out_row * hd + d] = L > 0.0f ? v / L : 0.0f;
  }
}

namespace wmma = nvcuda::wmma;
constexpr int kTileRows = 16;  // query rows of a tile = keys per step = WMMA M and N
constexpr int kSmemPad = 8;    // floats of padding per shared row (keeps 32-byte alignment)

template <typename Frag>
__device__ __forceinline__ void split_tf32(const Frag& x, Frag& hi, Frag& lo) {
#pragma unroll
  for (int i = 0; i < x.num_elements; ++i) {
    const float h = wmma::__float_to_tf32(x.x[i]);
    hi.x[i] = h;
    lo.x[i] = wmma::__float_to_tf32(x.x[i] - h);
  }
}

// acc += a * b in 3xTF32 (a row-major 16x8 at pa, b 8x16 of layout LB at pb).
template <typename LB>
__device__ __forceinline__ void mma_3xtf32(wmma::fragment<wmma::accumulator, 16, 16, 8, float>& acc,
                                           const float* pa, int lda, const float* pb, int ldb) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a, ahi, alo;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> b, bhi, blo;
  wmma::load_matrix_sync(a, pa, lda);
  wmma::load_matrix_sync(b, pb, ldb);
  split_tf32(a, ahi, alo);
  split_tf32(b, bhi, blo);
  wmma::mma_sync(acc, alo, bhi, acc);
  wmma::mma_sync(acc, ahi, blo, acc);
  wmma::mma_sync(acc, ahi, bhi, acc);
}

// grid (num_tiles, num_q_heads), one warp. See the file comment.
template <int HD, typename T>
__global__ void __launch_bounds__(32)
    attention_tile_kernel(const float* q, AttnArgs a, const int32_t* tiles, const T* kc,
                          const T* vc, float* out) {
  constexpr int LD = HD + kSmemPad, SLD = kTileRows + kSmemPad;
  __shared__ __align__(32) float qs[kTileRows][LD];
  __shared__ __align__(32) float ks[kTileRows][LD];
  __shared__ __align__(32) float vs[kTileRows][LD];
  __shared__ __align__(32) float os[kTileRows][LD];
  __shared__ __align__(32) float ss[kTileRows][SLD];
  __shared__ float row_l[kTileRows];
  const int lane = threadIdx.x;
  const int32_t h = blockIdx.y;
  const int32_t t0 = tiles[2 * blockIdx.x], cnt = tiles[2 * blockIdx.x + 1];
  const int32_t s = a.token_seq[t0];
  const int32_t pos0 = a.token_pos[t0];
  const int32_t first_page = a.kv_indptr[s];
  const int32_t capacity = (a.kv_indptr[s + 1] - first_page) * a.page_size;
  const int32_t end = min(pos0 + cnt, capacity);  // keys [begin, end)
  const int32_t begin = a.sliding_window > 0 ? max(0, pos0 - a.sliding_window + 1) : 0;
  const int64_t head_off = static_cast<int64_t>(h / a.group) * HD;

  for (int e = lane; e < kTileRows * HD; e += 32) {
    const int r = e / HD, d = e % HD;
    qs[r][d] =
        r < cnt ? q[(static_cast<int64_t>(t0 + r) * a.num_q_heads + h) * HD + d] * a.scale : 0.0f;
    os[r][d] = 0.0f;
  }
  // Lanes 2r and 2r+1 own row r's softmax state and columns [8 * (lane % 2), +8) of S.
  const int my_row = lane / 2, half = lane % 2;
  const int32_t my_pos = pos0 + my_row;
  const int32_t my_begin = a.sliding_window > 0 ? max(0, my_pos - a.sliding_window + 1) : 0;
  float m = -INFINITY, l = 0.0f;
  __syncwarp();

  for (int32_t j0 = begin; j0 < end; j0 += kTileRows) {
    for (int e = lane; e < kTileRows * HD; e += 32) {
      const int r = e / HD, d = e % HD;
      const int32_t j = j0 + r;
      float kx = 0.0f, vx = 0.0f;
      if (j < end) {
        const int64_t page = a.kv_indices[first_page + j / a.page_size];
        const int64_t slot = page * a.page_size + j % a.page_size;
        kx = load_w(kc, slot * a.kv_width + head_off + d);
        vx = load_w(vc, slot * a.kv_width + head_off + d);
      }
      ks[r][d] = kx;
      vs[r][d] = vx;
    }
    __syncwarp();
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> sacc;
    wmma::fill_fragment(sacc, 0.0f);
#pragma unroll 4
    for (int kk = 0; kk < HD; kk += 8)
      mma_3xtf32<wmma::col_major>(sacc, &qs[0][kk], LD, &ks[0][kk], LD);
    wmma::store_matrix_sync(&ss[0][0], sacc, SLD, wmma::mem_row_major);
    __syncwarp();
    float sv[8];
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const int32_t j = j0 + half * 8 + c;
      const bool ok = my_row < cnt && j < end && j <= my_pos && j >= my_begin;
      sv[c] = ok ? ss[my_row][half * 8 + c] : -INFINITY;
      mx = fmaxf(mx, sv[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m, mx);
    const float corr = m_new == -INFINITY ? 1.0f : expf(m - m_new);
    float psum = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const float p = sv[c] == -INFINITY ? 0.0f : expf(sv[c] - m_new);
      ss[my_row][half * 8 + c] = p;
      psum += p;
    }
    psum += __shfl_xor_sync(0xffffffffu, psum, 1);
    l = l * corr + psum;
    m = m_new;
    for (int d = half; d < HD; d += 2) os[my_row][d] *= corr;
    __syncwarp();
#pragma unroll
    for (int c0 = 0; c0 < HD; c0 += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 8, float> oacc;
      wmma::load_matrix_sync(oacc, &os[0][c0], LD, wmma::mem_row_major);
      mma_3xtf32<wmma::row_major>(oacc, &ss[0][0], SLD, &vs[0][c0], LD);
      mma_3xtf32<wmma::row_major>(oacc, &ss[0][8], SLD, &vs[8][c0], LD);
      wmma::store_matrix_sync(&os[0][c0], oacc, LD, wmma::mem_row_major);
    }
    __syncwarp();
  }
  if (half == 0) row_l[my_row] = l;
  __syncwarp();
  for (int e = lane; e < cnt * HD; e += 32) {
    const int r = e / HD, d = e % HD;
    const float L = row_l[r];
    out[(static_cast<int64_t>(t0 + r) * a.num_q_heads + h) * HD + d] =
        L > 0.0f ? os[r][d] / L : 0.0f;
  }
}

template <int HD, typename T>
void launch_tiles(const float* q, const AttnArgs& a, const AttentionBatch& b, const LayerKv& kv,
                  float* out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(b.num_tiles), static_cast<unsigned>(b.num_q_heads));
  attention_tile_kernel<HD, T><<<grid, 32, 0, stream>>>(q, a, b.tiles, static_cast<const T*>(kv.k),
                                                        static_cast<const T*>(kv.v), out);
}

// The tile kernel handles head dims that are multiples of 16 up to 128.
bool tile_kernel_fits(const AttentionBatch& b) {
  return b.num_tiles > 0 && b.tiles && b.head_dim % 16 == 0 && b.head_dim <= 128 &&
         (b.num_rest == 0 || b.rest_tokens);
}

// Keys [key_begin, key_begin + nk) of sequence `seq`, out of their pages, into k/v [nk, kv_width].
// A key past the sequence's pages (outside the contract) reads as 0.
template <typename T>
__global__ void gather_kv_kernel(const T* kc, const T* vc, const int32_t* kv_indptr,
                                 const int32_t* kv_indices, int32_t seq, int32_t key_begin,
                                 int64_t nk, int32_t page_size, int64_t kv_width, float* k_out,
                                 float* v_out) {
  const int32_t first_page = kv_indptr[seq];
  const int32_t pages = kv_indptr[seq + 1] - first_page;
  const bool vec = kv_width % 4 == 0;
  const int64_t row_items = vec ? kv_width / 4 : kv_width;
  const int64_t total = nk * row_items;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = idx / row_items, c = idx % row_items;
    const int64_t key = key_begin + j;
    const int64_t p = key / page_size;
    const bool ok = p < pages;
    const int64_t slot =
        ok ? static_cast<int64_t>(kv_indices[first_page + p]) * page_size + key % page_size : 0;
    if (vec) {
      const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
      reinterpret_cast<float4*>(k_out + j * kv_width)[c] =
          ok ? load4(kc + slot * kv_width + 4 * c) : zero;
      reinterpret_cast<float4*>(v_out + j * kv_width)[c] =
          ok ? load4(vc + slot * kv_width + 4 * c) : zero;
    } else {
      k_out[j * kv_width + c] = ok ? load_w(kc, slot * kv_width + c) : 0.0f;
      v_out[j * kv_width + c] = ok ? load_w(vc, slot * kv_width + c) : 0.0f;
    }
  }
}

constexpr int kSoftmaxThreads = 128;

// s: [heads][rows][nk] scores of query rows at positions pos_first + i over keys key_begin + j.
// One block per (head, row): masked entries (future keys, keys outside the window) become 0, the
// rest softmax-normalised, in place.
__global__ void __launch_bounds__(kSoftmaxThreads)
    masked_softmax_kernel(float* s, int32_t rows, int32_t nk, int32_t pos_first, int32_t key_begin,
                          int32_t window) {
  const int64_t r = blockIdx.x;
  float* row = s + r * nk;
  const int32_t pos = pos_first + static_cast<int32_t>(r % rows);
  const int32_t lo = (window > 0 ? max(0, pos - window + 1) : 0) - key_begin;  // j >= lo
  const int32_t hi = pos - key_begin;                                          // j <= hi
  float mx = -INFINITY;
  for (int32_t j = threadIdx.x; j < nk; j += kSoftmaxThreads)
    if (j >= lo && j <= hi) mx = fmaxf(mx, row[j]);
  mx = block_max<kSoftmaxThreads>(mx);
  float sum = 0.0f;
  for (int32_t j = threadIdx.x; j < nk; j += kSoftmaxThreads)
    if (j >= lo && j <= hi) sum += expf(row[j] - mx);
  sum = block_sum<kSoftmaxThreads>(sum);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int32_t j = threadIdx.x; j < nk; j += kSoftmaxThreads)
    row[j] = (j >= lo && j <= hi) ? expf(row[j] - mx) * inv : 0.0f;
}

}  // namespace

cudaError_t gather_kv(const LayerKv& kv, const AttentionBatch& b, int32_t seq, int32_t key_begin,
                      int64_t nk, float* k_out, float* v_out, cudaStream_t stream) {
  if (nk <= 0) return cudaSuccess;
  const int64_t items = nk * (kv.kv_width % 4 == 0 ? kv.kv_width / 4 : kv.kv_width);
  return dispatch_kv(kv.dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    gather_kv_kernel<<<grid_1d(items, 256), 256, 0, stream>>>(
        static_cast<const T*>(kv.k), static_cast<const T*>(kv.v), b.kv_indptr, b.kv_indices, seq,
        key_begin, nk, kv.page_size, kv.kv_width, k_out, v_out);
    return cudaGetLastError();
  });
}

cudaError_t masked_softmax(float* s, int32_t heads, int32_t rows, int32_t nk, int32_t pos_first,
                           int32_t key_begin, int32_t window, cudaStream_t stream) {
  const int64_t blocks = static_cast<int64_t>(heads) * rows;
  if (blocks == 0) return cudaSuccess;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  masked_softmax_kernel<<<static_cast<unsigned>(blocks), kSoftmaxThreads, 0, stream>>>(
      s, rows, nk, pos_first, key_begin, window);
  return cudaGetLastError();
}

int attention_splits(int64_t rows, int sm_count) {
  // Enough blocks for ~kWaves waves of the chip; no splitting once the rows alone fill it.
  // Each warp has one key's loads in flight, so a decode batch needs many blocks to cover
  // memory latency: at 4 waves, batch 32 x 32 heads (1,024 rows, no split) read the fp32 KV
  // at 53% of copy bandwidth while batch 64 reached 84%.
  constexpr int64_t kWaves = 8;
  const int64_t target = kWaves * (sm_count > 0 ? sm_count : 132);
  if (rows <= 0 || rows >= target) return 1;
  int64_t s = (target + rows - 1) / rows;
  return static_cast<int>(s > 32 ? 32 : s);
}

int64_t attention_token_rows(const AttentionBatch& b) {
  return (tile_kernel_fits(b) ? b.num_rest : b.num_tokens) * b.num_q_heads;
}

size_t attention_scratch_floats(const AttentionBatch& b, int splits) {
  if (splits <= 1) return 0;
  const auto rows = static_cast<size_t>(attention_token_rows(b));
  return rows * static_cast<size_t>(splits) * (static_cast<size_t>(b.head_dim) + 2);
}

cudaError_t attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out,
                      int splits, float* scratch, bool run_tiles, cudaStream_t stream) {
  const bool tiled = tile_kernel_fits(b);
  const int64_t rows = attention_token_rows(b);
  const int32_t* tokens = tiled ? b.rest_tokens : nullptr;
  if (b.num_kv_heads <= 0 || b.num_q_heads % b.num_kv_heads != 0 || b.head_dim <= 0 ||
      b.head_dim > 256 || splits < 1 || splits > 65535 || (splits > 1 && !scratch))
    return cudaErrorInvalidValue;
  AttnArgs a{b.token_seq,  b.token_pos,   b.kv_indptr,
             b.kv_indices, b.num_q_heads, b.num_q_heads / b.num_kv_heads,
             b.head_dim,   kv.page_size,  b.sliding_window,
             kv.kv_width,  b.scale};
  return dispatch_kv(kv.dtype, [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (tiled && run_tiles) {
      switch (b.head_dim) {
        case 16:
          launch_tiles<16, T>(q, a, b, kv, out, stream);
          break;
        case 32:
          launch_tiles<32, T>(q, a, b, kv, out, stream);
          break;
        case 48:
          launch_tiles<48, T>(q, a, b, kv, out, stream);
          break;
        case 64:
          launch_tiles<64, T>(q, a, b, kv, out, stream);
          break;
        case 80:
          launch_tiles<80, T>(q, a, b, kv, out, stream);
          break;
        case 96:
          launch_tiles<96, T>(q, a, b, kv, out, stream);
          break;
        case 112:
          launch_tiles<112, T>(q, a, b, kv, out, stream);
          break;
        default:
          launch_tiles<128, T>(q, a, b, kv, out, stream);
          break;
      }
      cudaError_t err = cudaGetLastError();
      if (err != cudaSuccess) return err;
    }
    if (rows == 0) return cudaSuccess;
    float* part_acc = scratch;
    float* part_ml = splits > 1 ? scratch + rows * splits * b.head_dim : nullptr;
    const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(splits));
    const auto* kc = static_cast<const T*>(kv.k);
    const auto* vc = static_cast<const T*>(kv.v);
    // Every decode kernel takes the same arguments; pick one, launch it once.
    auto kernel = attention_kernel<8, T>;
    if (b.head_dim <= 32)
      kernel = attention_kernel<1, T>;
    else if (b.head_dim <= 64)
      kernel = attention_kernel<2, T>;
    else if (b.head_dim <= 128)
      kernel = attention_kernel<4, T>;
    // A bf16 cache takes the grouped kernel where it fits: head dims 64, 128, 256 with 16-byte
    // aligned head slices (kv_width % 8 == 0).
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      if (kv.kv_width % 8 == 0) {
        if (b.head_dim == 64)
          kernel = attention_bf16_kernel<64>;
        else if (b.head_dim == 128)
          kernel = attention_bf16_kernel<128>;
        else if (b.head_dim == 256)
          kernel = attention_bf16_kernel<256>;
      }
    }
    cudaError_t err = launch_pdl(kernel, grid, dim3(kWarps * 32), stream, q, a, tokens, kc, vc,
                                 splits, out, part_acc, part_ml);
    if (err != cudaSuccess || splits == 1) return err;
    return launch_pdl(attention_merge_kernel, dim3(static_cast<unsigned>(rows)), dim3(128), stream,
                      splits, b.head_dim, b.num_q_heads, tokens, part_acc, part_ml, out);
  });
}

}  // namespace ls::cuda
