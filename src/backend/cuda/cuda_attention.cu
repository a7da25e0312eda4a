// Paged attention over the unified page pool. Our own kernel because the keys of a sequence
// live in pages listed by a CSR page table (kv_indptr / kv_indices, page_size tokens a page, in
// the same K/V blocks that also hold adapter rows), which no library kernel reads.
//
// Plan: one block of 4 warps per (token, q head, split). The token's causal key range (minus a
// sliding window) is cut into `splits` parts, so a decode token with a long context is spread
// over several SMs (split-K / flash-decoding) without the host knowing the lengths; with many
// tokens (prefill) splits is 1 and the block writes its output directly. Each warp walks its
// keys with an online softmax (running max, running sum, rescaled accumulator; q in registers,
// lanes across head_dim, one shuffle reduction per key); the 4 warps, then the splits, are
// merged by rescaling with exp(m_i - m). fp32 throughout, like the KV cache.
// Not yet: a tensor-core prefill tile kernel (next issue, with the bf16 KV cache).
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

template <int kPerLane>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const float* q, AttnArgs a, const float* kc, const float* vc, int splits,
                     float* out, float* part_acc, float* part_ml) {
  const int64_t row = blockIdx.x;  // token * num_q_heads + head
  const int split = blockIdx.y;
  const int64_t t = row / a.num_q_heads;
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
  const float* qh = q + row * hd;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int d = lane + 32 * i;
    qr[i] = d < hd ? qh[d] * a.scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int64_t head_off = static_cast<int64_t>(h / a.group) * hd;
  for (int32_t j = k0 + warp; j < k1; j += kWarps) {
    const int64_t page = a.kv_indices[first_page + j / a.page_size];
    const int64_t slot = page * a.page_size + j % a.page_size;
    const float* kh = kc + slot * a.kv_width + head_off;
    const float* vh = vc + slot * a.kv_width + head_off;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) dot += qr[i] * kh[d];
    }
    dot = warp_sum(dot);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(dot - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < hd ? p * vh[d] : 0.0f);
    }
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
  for (int i = 0; i < kPerLane; ++i) sm_acc[warp][lane + 32 * i] = acc[i];
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
      out[row * hd + d] = v / L;
    } else {
      part_acc[(row * splits + split) * hd + d] = v;
    }
  }
  if (splits > 1 && threadIdx.x == 0) {
    part_ml[(row * splits + split) * 2] = M;
    part_ml[(row * splits + split) * 2 + 1] = L;
  }
}

// One block per (token, head): out = sum_s acc_s * exp(m_s - M) / sum_s l_s * exp(m_s - M).
__global__ void attention_merge_kernel(int splits, int32_t hd, const float* part_acc,
                                       const float* part_ml, float* out) {
  const int64_t row = blockIdx.x;
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
    out[row * hd + d] = v / L;
  }
}

}  // namespace

int attention_splits(int64_t rows, int sm_count) {
  // Enough blocks for ~4 waves of the chip; no splitting once the rows alone fill it.
  const int64_t target = 4ll * (sm_count > 0 ? sm_count : 132);
  if (rows >= target) return 1;
  int64_t s = (target + rows - 1) / rows;
  return static_cast<int>(s > 32 ? 32 : s);
}

size_t attention_scratch_floats(const AttentionBatch& b, int splits) {
  if (splits <= 1) return 0;
  const size_t rows = static_cast<size_t>(b.num_tokens) * static_cast<size_t>(b.num_q_heads);
  return rows * static_cast<size_t>(splits) * (static_cast<size_t>(b.head_dim) + 2);
}

cudaError_t attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out,
                      int splits, float* scratch, cudaStream_t stream) {
  const int64_t rows = b.num_tokens * b.num_q_heads;
  if (rows == 0) return cudaSuccess;
  if (b.num_kv_heads <= 0 || b.num_q_heads % b.num_kv_heads != 0 || b.head_dim <= 0 ||
      b.head_dim > 256 || splits < 1 || splits > 65535 || (splits > 1 && !scratch))
    return cudaErrorInvalidValue;
  AttnArgs a{b.token_seq,  b.token_pos,   b.kv_indptr,
             b.kv_indices, b.num_q_heads, b.num_q_heads / b.num_kv_heads,
             b.head_dim,   kv.page_size,  b.sliding_window,
             kv.kv_width,  b.scale};
  float* part_acc = scratch;
  float* part_ml = splits > 1 ? scratch + rows * splits * b.head_dim : nullptr;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(splits));
  if (b.head_dim <= 32)
    attention_kernel<1>
        <<<grid, kWarps * 32, 0, stream>>>(q, a, kv.k, kv.v, splits, out, part_acc, part_ml);
  else if (b.head_dim <= 64)
    attention_kernel<2>
        <<<grid, kWarps * 32, 0, stream>>>(q, a, kv.k, kv.v, splits, out, part_acc, part_ml);
  else if (b.head_dim <= 128)
    attention_kernel<4>
        <<<grid, kWarps * 32, 0, stream>>>(q, a, kv.k, kv.v, splits, out, part_acc, part_ml);
  else
    attention_kernel<8>
        <<<grid, kWarps * 32, 0, stream>>>(q, a, kv.k, kv.v, splits, out, part_acc, part_ml);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  attention_merge_kernel<<<static_cast<unsigned>(rows), 128, 0, stream>>>(splits, b.head_dim,
                                                                          part_acc, part_ml, out);
  return cudaGetLastError();
}

}  // namespace ls::cuda
