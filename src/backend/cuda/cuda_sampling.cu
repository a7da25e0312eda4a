// Log-softmax and sampling on the device. Our own kernels because sampling must pick exactly
// the token the CPU reference picks for the same caller-drawn uniform: the row is sorted
// descending with ties to the lower id (a stable segmented radix sort from CUB), then one block
// per row walks the sorted probabilities in double with block scans: top-k, top-p (smallest
// prefix whose mass reaches p), then the first token whose cumulative mass exceeds
// uniform * total. Greedy rows take the first argmax. Log-sum-exp in double as on the CPU.
// Penalties: one block per row over its distinct seen ids. Top log-probs: k (<= 20) block
// argmax passes per row, each excluding what earlier passes took.
#include <cub/cub.cuh>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_ops.h"

namespace ls::cuda {

namespace {

constexpr int kRowThreads = 1024;

// One block per row: max, then sum of exp(x - max) in double.
__device__ double row_lse(const float* x, int64_t vocab) {
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += kRowThreads) mx = fmaxf(mx, x[i]);
  mx = block_max<kRowThreads>(mx);
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += kRowThreads)
    sum += exp(static_cast<double>(x[i]) - mx);
  sum = block_sum<kRowThreads>(sum);
  return mx + log(sum);
}

__global__ void __launch_bounds__(kRowThreads)
    log_softmax_kernel(const float* logits, int64_t vocab, float* out) {
  const float* x = logits + blockIdx.x * vocab;
  const double lse = row_lse(x, vocab);
  for (int64_t i = threadIdx.x; i < vocab; i += kRowThreads)
    out[blockIdx.x * vocab + i] = static_cast<float>(x[i] - lse);
}

__global__ void __launch_bounds__(kRowThreads)
    argmax_lse_kernel(const float* logits, int64_t vocab, int32_t* tokens, double* lse) {
  const float* x = logits + blockIdx.x * vocab;
  // First max: the largest value, the lowest index among equals.
  float best = -INFINITY;
  int64_t best_i = vocab;
  for (int64_t i = threadIdx.x; i < vocab; i += kRowThreads)
    if (x[i] > best || (best_i == vocab && !(x[i] < best))) {
      best = x[i];
      best_i = i;
    }
  for (int off = 16; off > 0; off >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, off);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, best_i, off);
    if (ob > best || (ob == best && oi < best_i)) {
      best = ob;
      best_i = oi;
    }
  }
  __shared__ float wb[kRowThreads / 32];
  __shared__ int64_t wi[kRowThreads / 32];
  if (threadIdx.x % 32 == 0) {
    wb[threadIdx.x / 32] = best;
    wi[threadIdx.x / 32] = best_i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kRowThreads / 32; ++w)
      if (wb[w] > best || (wb[w] == best && wi[w] < best_i)) {
        best = wb[w];
        best_i = wi[w];
      }
    tokens[blockIdx.x] = static_cast<int32_t>(best_i < vocab ? best_i : 0);
  }
  __syncthreads();
  const double l = row_lse(x, vocab);
  if (threadIdx.x == 0) lse[blockIdx.x] = l;
}

__global__ void sort_inputs_kernel(const float* logits, int64_t rows, int64_t vocab, float* keys,
                                   int32_t* ids, int32_t* offsets) {
  const int64_t total = rows * vocab;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    keys[i] = logits[i] + 0.0f;  // -0 -> +0: radix order must treat them as equal
    ids[i] = static_cast<int32_t>(i % vocab);
  }
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r <= rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x)
    offsets[r] = static_cast<int32_t>(r * vocab);
}

using BlockScan = cub::BlockScan<double, kRowThreads>;

// Index of the first i in [0, count) with carry + prefix(term[0..i]) satisfying `hit`, where
// term(i) is computed per element; returns count when none. Also returns the total mass.
template <typename Term, typename Hit>
__device__ int64_t first_crossing(int64_t count, Term term, Hit hit, double* total_out) {
  __shared__ typename BlockScan::TempStorage scan_tmp;
  __shared__ int64_t found;
  __shared__ double carry_sh;
  if (threadIdx.x == 0) {
    found = count;
    carry_sh = 0.0;
  }
  __syncthreads();
  for (int64_t c0 = 0; c0 < count; c0 += kRowThreads) {
    const int64_t i = c0 + threadIdx.x;
    const double t = i < count ? term(i) : 0.0;
    double incl, agg;
    BlockScan(scan_tmp).InclusiveSum(t, incl, agg);
    const double carry = carry_sh;
    if (i < count && hit(carry + incl))
      atomicMin(reinterpret_cast<unsigned long long*>(&found), static_cast<unsigned long long>(i));
    __syncthreads();
    if (threadIdx.x == 0) carry_sh = carry + agg;
    __syncthreads();
    if (found < count) break;
  }
  if (total_out) *total_out = carry_sh;
  return found;
}

__global__ void __launch_bounds__(kRowThreads)
    pick_kernel(const float* sorted_keys, const int32_t* sorted_ids, int64_t vocab,
                const SampleParams* params, int32_t* tokens) {
  const SampleParams p = params[blockIdx.x];
  if (!(p.temperature > 0.0f)) return;  // greedy rows were set by argmax_lse
  const float* key = sorted_keys + blockIdx.x * vocab;
  const int32_t* id = sorted_ids + blockIdx.x * vocab;
  int64_t keep = vocab;
  if (p.top_k > 0 && p.top_k < keep) keep = p.top_k;
  const double inv_t = 1.0 / p.temperature;
  const double mx = key[0];
  auto prob = [&](int64_t i) { return exp((static_cast<double>(key[i]) - mx) * inv_t); };
  // total mass of the kept tokens
  double total = 0.0;
  for (int64_t i = threadIdx.x; i < keep; i += kRowThreads) total += prob(i);
  total = block_sum<kRowThreads>(total);
  if (p.min_p > 0.0f) {  // prob(0) is the top token's (1); keep those >= min_p of it
    const double floor_p = static_cast<double>(p.min_p) * prob(0);
    int64_t above = 0;
    for (int64_t i = 1 + threadIdx.x; i < keep; i += kRowThreads) above += prob(i) >= floor_p;
    keep = 1 + block_sum<kRowThreads>(above);
    total = 0.0;
    for (int64_t i = threadIdx.x; i < keep; i += kRowThreads) total += prob(i);
    total = block_sum<kRowThreads>(total);
  }
  if (p.top_p < 1.0f) {
    const double top_p = p.top_p;
    const int64_t at = first_crossing(
        keep, [&](int64_t i) { return prob(i) / total; }, [&](double c) { return c >= top_p; },
        nullptr);
    if (at < keep) keep = at + 1;
    total = 0.0;
    for (int64_t i = threadIdx.x; i < keep; i += kRowThreads) total += prob(i);
    total = block_sum<kRowThreads>(total);
  }
  const double target = p.uniform * total;
  const int64_t at = first_crossing(
      keep, prob, [&](double c) { return target < c; }, nullptr);
  if (threadIdx.x == 0) tokens[blockIdx.x] = id[at < keep ? at : keep - 1];
}

// One block per row; threads stride over the row's distinct ids (no two threads share one).
__global__ void penalties_kernel(float* logits, int64_t vocab, PenaltyBatch p) {
  const int64_t r = blockIdx.x;
  float* x = logits + r * vocab;
  const float rep = p.repetition[r], freq = p.frequency[r], pres = p.presence[r];
  for (int32_t e = p.indptr[r] + threadIdx.x; e < p.indptr[r + 1]; e += blockDim.x) {
    const int32_t id = p.ids[e];
    if (id < 0 || id >= vocab) continue;
    float v = x[id];
    if (rep != 1.0f) v = v > 0.0f ? v / rep : v * rep;
    if (p.output_counts[e] > 0) v -= freq * static_cast<float>(p.output_counts[e]) + pres;
    x[id] = v;
  }
}

// (value, id) order: a before b when a's value is larger, or equal with the lower id.
__device__ __forceinline__ bool ranks_before(float av, int64_t ai, float bv, int64_t bi) {
  return av > bv || (av == bv && ai < bi);
}

// One block per row: k passes, each the best entry ranked after the previous pick.
__global__ void __launch_bounds__(kRowThreads)
    top_logprobs_kernel(const float* logits, int64_t vocab, int32_t k, int32_t* ids,
                        float* logprobs) {
  const float* x = logits + blockIdx.x * vocab;
  const double lse = row_lse(x, vocab);
  __shared__ float wb[kRowThreads / 32];
  __shared__ int64_t wi[kRowThreads / 32];
  __shared__ float prev_v;
  __shared__ int64_t prev_i;
  for (int32_t j = 0; j < k; ++j) {
    float best = -INFINITY;
    int64_t best_i = vocab;  // none
    for (int64_t i = threadIdx.x; i < vocab; i += kRowThreads) {
      const float v = x[i];
      if (j > 0 && !ranks_before(prev_v, prev_i, v, i)) continue;  // already taken
      if (best_i == vocab || ranks_before(v, i, best, best_i)) {
        best = v;
        best_i = i;
      }
    }
    for (int off = 16; off > 0; off >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, off);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, best_i, off);
      if (oi != vocab && (best_i == vocab || ranks_before(ob, oi, best, best_i))) {
        best = ob;
        best_i = oi;
      }
    }
    if (threadIdx.x % 32 == 0) {
      wb[threadIdx.x / 32] = best;
      wi[threadIdx.x / 32] = best_i;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kRowThreads / 32; ++w)
        if (wi[w] != vocab && (best_i == vocab || ranks_before(wb[w], wi[w], best, best_i))) {
          best = wb[w];
          best_i = wi[w];
        }
      prev_v = best;
      prev_i = best_i;
      ids[blockIdx.x * k + j] = static_cast<int32_t>(best_i < vocab ? best_i : 0);
      logprobs[blockIdx.x * k + j] = best_i < vocab ? static_cast<float>(best - lse) : -INFINITY;
    }
    __syncthreads();
  }
}

__global__ void token_logprob_kernel(const float* logits, int64_t rows, int64_t vocab,
                                     const int32_t* tokens, const double* lse, float* out) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r < rows) out[r] = static_cast<float>(logits[r * vocab + tokens[r]] - lse[r]);
}

size_t align_up(size_t b) {
  return (b + 255) / 256 * 256;
}

size_t cub_temp_bytes(int64_t rows, int64_t vocab) {
  size_t bytes = 0;
  cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
      static_cast<int64_t>(rows * vocab), static_cast<int64_t>(rows),
      static_cast<const int32_t*>(nullptr), static_cast<const int32_t*>(nullptr));
  return bytes;
}

}  // namespace

cudaError_t log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out,
                        cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  log_softmax_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(logits, vocab, out);
  return cudaGetLastError();
}

cudaError_t argmax_lse(const float* logits, int64_t rows, int64_t vocab, int32_t* tokens,
                       double* lse, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  argmax_lse_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(logits, vocab, tokens,
                                                                             lse);
  return cudaGetLastError();
}

size_t sample_scratch_bytes(int64_t rows, int64_t vocab) {
  const size_t items = static_cast<size_t>(rows * vocab);
  return 2 * align_up(items * 4) + 2 * align_up(items * 4) +
         align_up(static_cast<size_t>(rows + 1) * 4) + align_up(cub_temp_bytes(rows, vocab));
}

cudaError_t sample_sorted(const float* logits, int64_t rows, int64_t vocab,
                          const SampleParams* params, int32_t* tokens, void* scratch,
                          size_t scratch_bytes, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (vocab > INT32_MAX || rows * vocab > INT32_MAX) return cudaErrorInvalidValue;
  if (scratch_bytes < sample_scratch_bytes(rows, vocab)) return cudaErrorInvalidValue;
  const size_t items = static_cast<size_t>(rows * vocab);
  char* p = static_cast<char*>(scratch);
  float* keys_in = reinterpret_cast<float*>(p);
  p += align_up(items * 4);
  float* keys_out = reinterpret_cast<float*>(p);
  p += align_up(items * 4);
  int32_t* ids_in = reinterpret_cast<int32_t*>(p);
  p += align_up(items * 4);
  int32_t* ids_out = reinterpret_cast<int32_t*>(p);
  p += align_up(items * 4);
  int32_t* offsets = reinterpret_cast<int32_t*>(p);
  p += align_up(static_cast<size_t>(rows + 1) * 4);
  size_t temp_bytes = cub_temp_bytes(rows, vocab);
  sort_inputs_kernel<<<grid_1d(static_cast<int64_t>(items), 256), 256, 0, stream>>>(
      logits, rows, vocab, keys_in, ids_in, offsets);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  err = cub::DeviceSegmentedRadixSort::SortPairsDescending(
      p, temp_bytes, keys_in, keys_out, ids_in, ids_out, static_cast<int64_t>(items),
      static_cast<int64_t>(rows), offsets, offsets + 1, 0, 32, stream);
  if (err != cudaSuccess) return err;
  pick_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(keys_out, ids_out, vocab,
                                                                       params, tokens);
  return cudaGetLastError();
}

cudaError_t apply_penalties(float* logits, int64_t vocab, const PenaltyBatch& p,
                            cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  penalties_kernel<<<static_cast<unsigned>(p.rows), 256, 0, stream>>>(logits, vocab, p);
  return cudaGetLastError();
}

cudaError_t top_logprobs(const float* logits, int64_t rows, int64_t vocab, int32_t k, int32_t* ids,
                         float* logprobs, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (k < 1 || k > vocab) return cudaErrorInvalidValue;
  top_logprobs_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(logits, vocab, k,
                                                                               ids, logprobs);
  return cudaGetLastError();
}

cudaError_t token_logprobs(const float* logits, int64_t rows, int64_t vocab, const int32_t* tokens,
                           const double* lse, float* logprobs, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  token_logprob_kernel<<<grid_1d(rows, 256), 256, 0, stream>>>(logits, rows, vocab, tokens, lse,
                                                               logprobs);
  return cudaGetLastError();
}

}  // namespace ls::cuda
