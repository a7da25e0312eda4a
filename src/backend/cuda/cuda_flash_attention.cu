// bf16 flash attention for prefill runs over the paged bf16 cache (CudaBackendOptions::
// bf16_activations). Our own kernel for the same reason as cuda_attention.cu: the keys live in
// pages of the unified pool, listed by a CSR page table, which no library kernel reads. It
// replaces the fp32 path for runs (cuBLAS SGEMMs over gathered keys with S in memory, or the
// 3xTF32 tile kernel), which reached only a few percent of the tensor cores' bf16 rate.
//
// Plan (FlashAttention-2's): one block of 4 warps per (block of up to 64 consecutive query rows
// of one run, q head); each warp owns 16 rows. Keys go through shared memory 64 at a time,
// double-buffered with cp.async straight out of their pages (rows padded by 8 elements so the
// ldmatrix reads are conflict-free). Per step, S = Q K^T on mma.sync m16n8k16 (Q in registers
// as bf16 A fragments, multiplied by scale x log2(e) before rounding; K^T fragments by
// ldmatrix), the causal and sliding-window mask, an online softmax in fp32 (base 2), then P,
// rounded to bf16 in registers (the S accumulator's layout is the A fragment's), times V (ldmatrix
// .trans) into fp32 O accumulators. A warp skips the steps whose keys its rows cannot see, so
// the causal triangle costs about half the square. The blocks with the most keys start first.
//
// Accuracy: q and P are rounded to bf16 (8 bits), the products accumulate in fp32, softmax
// statistics are fp32; the K/V cache is already bf16. This is the precision of the inference
// servers we are compared with; the exact fp32 path stays the default.
#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRows = 16 * kWarps;  // query rows of a block
constexpr int kKeys = 64;           // keys per step
constexpr int kPad = 8;             // bf16 elements of padding per shared row
constexpr float kLog2e = 1.4426950408889634f;

struct FlashArgs {
  const float* q;
  float* out;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  const int32_t* blocks;  // (first token, rows) pairs
  int32_t num_blocks;
  const int32_t* token_seq;
  const int32_t* token_pos;
  const int32_t* kv_indptr;
  const int32_t* kv_indices;
  int32_t num_q_heads, group, page_shift, window;  // pages of 1 << page_shift tokens
  int64_t kv_width;
  float scale_log2;  // softmax scale x log2(e), applied to q before it is rounded
};

// 2^x on the SFU (ex2.approx.ftz; exact enough next to bf16 probabilities); 2^-inf = 0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <int HD>
constexpr size_t smem_bytes() {
  return 2u * 2u * kKeys * (HD + kPad) * sizeof(__nv_bfloat16);  // K and V, two stages
}

__device__ __forceinline__ float2 load_q2(const float* p, bool ok, float scale) {
  if (!ok) return make_float2(0.0f, 0.0f);
  const float2 x = *reinterpret_cast<const float2*>(p);
  return make_float2(x.x * scale, x.y * scale);
}

// Two blocks per SM: an H100 step took 240 us at 2 (about 230 registers, no spills) against
// 320 us at 3 (168 registers with spills) and 250 us at 1 (1 x 2048 tokens, 32 heads).
template <int HD>
__global__ void __launch_bounds__(kWarps * 32, 2) flash_attention_kernel(FlashArgs a) {
  using M = Mma<__nv_bfloat16>;
  constexpr int LD = HD + kPad;
  constexpr int KS = HD / 16;  // k-steps of Q K^T; also pairs of 8-wide O column tiles
  constexpr int CH = HD / 8;   // 16-byte chunks of a key row
  extern __shared__ __align__(16) unsigned char smem[];
  auto* ks = reinterpret_cast<__nv_bfloat16*>(smem);  // [2][kKeys][LD]
  __nv_bfloat16* vs = ks + 2 * kKeys * LD;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, c = lane % 4;
  const int32_t bi = a.num_blocks - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h = static_cast<int32_t>(blockIdx.y);
  const int32_t t0 = a.blocks[2 * bi], cnt = a.blocks[2 * bi + 1];
  const int32_t seq = a.token_seq[t0], pos0 = a.token_pos[t0];
  const int32_t first_page = a.kv_indptr[seq];
  const int32_t capacity = (a.kv_indptr[seq + 1] - first_page) << a.page_shift;
  const int32_t end = min(pos0 + cnt, capacity);  // keys [begin, end) for the block
  const int32_t begin = a.window > 0 ? max(0, pos0 - a.window + 1) : 0;
  const int64_t head_off = static_cast<int64_t>(h / a.group) * HD;

  // This thread's two rows (g and g + 8 of the warp's 16) and the warp's key range.
  const int32_t r0 = warp * 16 + g, r1 = r0 + 8;
  const bool live0 = r0 < cnt, live1 = r1 < cnt;
  const int32_t p0 = pos0 + r0, p1 = pos0 + r1;
  const bool warp_live = warp * 16 < cnt;
  const int32_t w_first = pos0 + warp * 16, w_last = pos0 + min(warp * 16 + 15, cnt - 1);
  const int32_t w_begin = a.window > 0 ? max(0, w_first - a.window + 1) : 0;
  const int32_t w_end = min(w_last + 1, end);

  uint32_t qf[KS][4];
  {
    const float* q0 = a.q + (static_cast<int64_t>(t0 + r0) * a.num_q_heads + h) * HD + 2 * c;
    const float* q1 = a.q + (static_cast<int64_t>(t0 + r1) * a.num_q_heads + h) * HD + 2 * c;
#pragma unroll
    for (int s = 0; s < KS; ++s) {
      const float sl = a.scale_log2;
      const float2 x00 = load_q2(q0 + 16 * s, live0, sl), x10 = load_q2(q1 + 16 * s, live1, sl);
      const float2 x01 = load_q2(q0 + 16 * s + 8, live0, sl);
      const float2 x11 = load_q2(q1 + 16 * s + 8, live1, sl);
      qf[s][0] = M::pack(x00.x, x00.y);
      qf[s][1] = M::pack(x10.x, x10.y);
      qf[s][2] = M::pack(x01.x, x01.y);
      qf[s][3] = M::pack(x11.x, x11.y);
    }
  }
  float o[2 * KS][4];
#pragma unroll
  for (int t = 0; t < 2 * KS; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  // Each thread copies CH / 2 chunks of K and of V per step (kKeys * CH / 128). The page
  // lookups are issued together (unrolled, read-only cache) before any copy depends on them:
  // one at a time, their latency had stalled every warp once per chunk.
  constexpr int kPer = kKeys * CH / (kWarps * 32);
  static_assert(kKeys * CH % (kWarps * 32) == 0, "chunks must divide over the threads");
  auto load = [&](int step, int buf) {
    const int32_t kb = begin + step * kKeys;
    int64_t at[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int e = static_cast<int>(threadIdx.x) + i * kWarps * 32;
      const int32_t j = kb + e / CH;
      at[i] = j < end ? __ldg(a.kv_indices + first_page + (j >> a.page_shift)) : -1;
    }
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int e = static_cast<int>(threadIdx.x) + i * kWarps * 32;
      const int r = e / CH, ch = e % CH;
      const int32_t j = kb + r;
      const bool ok = at[i] >= 0;
      const int64_t slot = (at[i] << a.page_shift) + (j & ((1 << a.page_shift) - 1));
      const int64_t off = ok ? slot * a.kv_width + head_off + ch * 8 : 0;
      const int so = (buf * kKeys + r) * LD + ch * 8;
      cp_async16(ks + so, a.k + off, ok);
      cp_async16(vs + so, a.v + off, ok);
    }
    cp_async_commit();
  };

  const int steps = end > begin ? (end - begin + kKeys - 1) / kKeys : 0;
  if (steps > 0) load(0, 0);
  for (int step = 0; step < steps; ++step) {
    if (step + 1 < steps) {
      load(step + 1, (step + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int32_t kb = begin + step * kKeys;
    if (warp_live && kb < w_end && kb + kKeys > w_begin) {
      const __nv_bfloat16* kt = ks + (step & 1) * kKeys * LD;
      const __nv_bfloat16* vt = vs + (step & 1) * kKeys * LD;
      float sc[kKeys / 8][4];
#pragma unroll
      for (int t = 0; t < kKeys / 8; ++t) sc[t][0] = sc[t][1] = sc[t][2] = sc[t][3] = 0.0f;
#pragma unroll
      for (int s = 0; s < KS; ++s)
#pragma unroll
        for (int np = 0; np < kKeys / 16; ++np) {
          uint32_t b[4];
          ldmatrix_x4(b, kt + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + s * 16 +
                             ((lane >> 3) & 1) * 8);
          M::mma(sc[2 * np], qf[s], b[0], b[1]);
          M::mma(sc[2 * np + 1], qf[s], b[2], b[3]);
        }
      // Scale, mask (only where some key of the step is out of some row's reach), row maxima.
      const bool full = kb + kKeys - 1 <= w_first && kb + kKeys <= end &&
                        (a.window <= 0 || kb > w_last - a.window);
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int t = 0; t < kKeys / 8; ++t)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int32_t j = kb + t * 8 + 2 * c + e;
          float s0 = sc[t][e], s1 = sc[t][2 + e];
          if (!full) {
            const bool in = j < end;
            if (!(in && j <= p0 && (a.window <= 0 || j > p0 - a.window))) s0 = -INFINITY;
            if (!(in && j <= p1 && (a.window <= 0 || j > p1 - a.window))) s1 = -INFINITY;
          }
          sc[t][e] = s0;
          sc[t][2 + e] = s1;
          mx0 = fmaxf(mx0, s0);
          mx1 = fmaxf(mx1, s1);
        }
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
      // A row that has seen no key yet keeps -inf; 0 as its base keeps every exp2 at 0.
      const float base0 = n0 == -INFINITY ? 0.0f : n0, base1 = n1 == -INFINITY ? 0.0f : n1;
      const float corr0 = fast_exp2(m0 - base0), corr1 = fast_exp2(m1 - base1);
      m0 = n0;
      m1 = n1;
      float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
      for (int t = 0; t < kKeys / 8; ++t) {
        sc[t][0] = fast_exp2(sc[t][0] - base0);
        sc[t][1] = fast_exp2(sc[t][1] - base0);
        sc[t][2] = fast_exp2(sc[t][2] - base1);
        sc[t][3] = fast_exp2(sc[t][3] - base1);
        sum0 += sc[t][0] + sc[t][1];
        sum1 += sc[t][2] + sc[t][3];
      }
      l0 = l0 * corr0 + sum0;  // this lane's share; the row's four lanes add up at the end
      l1 = l1 * corr1 + sum1;
#pragma unroll
      for (int t = 0; t < 2 * KS; ++t) {
        o[t][0] *= corr0;
        o[t][1] *= corr0;
        o[t][2] *= corr1;
        o[t][3] *= corr1;
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t pa[4] = {M::pack(sc[2 * kk][0], sc[2 * kk][1]),
                                M::pack(sc[2 * kk][2], sc[2 * kk][3]),
                                M::pack(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                M::pack(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < KS; ++dp) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, vt + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 +
                                   (lane >> 4) * 8);
          M::mma(o[2 * dp], pa, b[0], b[1]);
          M::mma(o[2 * dp + 1], pa, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the buffer computed on here is the next load's target
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
  float* out0 = a.out + (static_cast<int64_t>(t0 + r0) * a.num_q_heads + h) * HD + 2 * c;
  float* out1 = a.out + (static_cast<int64_t>(t0 + r1) * a.num_q_heads + h) * HD + 2 * c;
#pragma unroll
  for (int t = 0; t < 2 * KS; ++t) {
    if (live0)
      *reinterpret_cast<float2*>(out0 + 8 * t) = make_float2(o[t][0] * inv0, o[t][1] * inv0);
    if (live1)
      *reinterpret_cast<float2*>(out1 + 8 * t) = make_float2(o[t][2] * inv1, o[t][3] * inv1);
  }
}

template <int HD>
cudaError_t launch(const FlashArgs& a, cudaStream_t stream) {
  constexpr size_t bytes = smem_bytes<HD>();
  if constexpr (bytes > 48u * 1024u) {
    static const cudaError_t set =
        cudaFuncSetAttribute(flash_attention_kernel<HD>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (set != cudaSuccess) return set;
  }
  const dim3 grid(static_cast<unsigned>(a.num_blocks), static_cast<unsigned>(a.num_q_heads));
  flash_attention_kernel<HD><<<grid, kWarps * 32, bytes, stream>>>(a);
  return cudaGetLastError();
}

bool aligned(const void* p, uintptr_t n) {
  return reinterpret_cast<uintptr_t>(p) % n == 0;
}

}  // namespace

bool flash_attention_fits(const float* q, const AttentionBatch& b, const LayerKv& kv,
                          const float* out) {
  const int ps = kv.page_size;
  return kv.dtype == DType::kBF16 && ps > 0 && (ps & (ps - 1)) == 0 && b.head_dim % 16 == 0 &&
         b.head_dim >= 16 && b.head_dim <= 128 && b.num_kv_heads > 0 &&
         b.num_q_heads % b.num_kv_heads == 0 && b.num_q_heads <= 65535 && kv.kv_width % 8 == 0 &&
         aligned(kv.k, 16) && aligned(kv.v, 16) && aligned(q, 8) && aligned(out, 8);
}

int32_t flash_attention_block_rows() {
  return kRows;
}

cudaError_t flash_attention(const float* q, const AttentionBatch& b, const LayerKv& kv,
                            const int32_t* blocks, int32_t num_blocks, float* out,
                            cudaStream_t stream) {
  if (num_blocks == 0) return cudaSuccess;
  if (!flash_attention_fits(q, b, kv, out) || num_blocks < 0) return cudaErrorInvalidValue;
  const FlashArgs a{q,
                    out,
                    static_cast<const __nv_bfloat16*>(kv.k),
                    static_cast<const __nv_bfloat16*>(kv.v),
                    blocks,
                    num_blocks,
                    b.token_seq,
                    b.token_pos,
                    b.kv_indptr,
                    b.kv_indices,
                    b.num_q_heads,
                    b.num_q_heads / b.num_kv_heads,
                    __builtin_ctz(static_cast<unsigned>(kv.page_size)),
                    b.sliding_window,
                    kv.kv_width,
                    b.scale * kLog2e};
  switch (b.head_dim) {
    case 16:
      return launch<16>(a, stream);
    case 32:
      return launch<32>(a, stream);
    case 48:
      return launch<48>(a, stream);
    case 64:
      return launch<64>(a, stream);
    case 80:
      return launch<80>(a, stream);
    case 96:
      return launch<96>(a, stream);
    case 112:
      return launch<112>(a, stream);
    default:
      return launch<128>(a, stream);
  }
}

}  // namespace ls::cuda
