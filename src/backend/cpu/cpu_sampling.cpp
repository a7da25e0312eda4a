// CPU log-softmax, penalties, top log-probs and sampling (greedy, temperature, top-k, min-p,
// top-p) with caller-drawn uniforms.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/check.h"

namespace ls {

namespace {
// log-sum-exp of one row, in double.
double row_lse(const float* x, int64_t vocab) {
  float mx = *std::max_element(x, x + vocab);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(sum);
}

int32_t sample_row(const float* x, int64_t vocab, const SampleParams& p) {
  if (p.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(x, x + vocab) - x);  // first max wins
  }
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  size_t keep = order.size();
  if (p.top_k > 0) keep = std::min(keep, static_cast<size_t>(p.top_k));
  const double inv_t = 1.0 / p.temperature;
  const double mx = x[order[0]];
  std::vector<double> probs(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((x[order[i]] - mx) * inv_t);
    total += probs[i];
  }
  if (p.min_p > 0.0f) {  // probs[0] is the top token's; drop what falls below min_p of it
    size_t cut = 1;
    while (cut < keep && probs[cut] >= p.min_p * probs[0]) ++cut;
    keep = cut;
    total = std::accumulate(probs.begin(), probs.begin() + static_cast<int64_t>(keep), 0.0);
  }
  if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p (at least one token)
    double cum = 0.0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      cum += probs[i] / total;
      if (cum >= p.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = std::accumulate(probs.begin(), probs.begin() + static_cast<int64_t>(keep), 0.0);
  }
  double target = p.uniform * total;
  double cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += probs[i];
    if (target < cum) return order[i];
  }
  return order[keep - 1];
}
}  // namespace

void CpuBackend::log_softmax(const float* logits, int64_t rows, int64_t vocab, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    double lse = row_lse(x, vocab);
    for (int64_t i = 0; i < vocab; ++i) out[r * vocab + i] = static_cast<float>(x[i] - lse);
  }
}

void CpuBackend::apply_penalties(float* logits, int64_t vocab, const PenaltyBatch& p) {
  for (int64_t r = 0; r < p.rows; ++r) {
    float* x = logits + r * vocab;
    for (int32_t e = p.indptr[r]; e < p.indptr[r + 1]; ++e) {
      const int32_t id = p.ids[e];
      LS_CHECK(id >= 0 && id < vocab);
      float v = x[id];
      if (p.repetition[r] != 1.0f) v = v > 0.0f ? v / p.repetition[r] : v * p.repetition[r];
      if (p.output_counts[e] > 0)
        v -= p.frequency[r] * static_cast<float>(p.output_counts[e]) + p.presence[r];
      x[id] = v;
    }
  }
}

void CpuBackend::top_logprobs(const float* logits, int64_t rows, int64_t vocab, int32_t k,
                              int32_t* ids, float* logprobs) {
  LS_CHECK(k >= 1 && k <= kMaxTopLogprobs && k <= vocab);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    const double lse = row_lse(x, vocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    for (int32_t j = 0; j < k; ++j) {
      ids[r * k + j] = order[static_cast<size_t>(j)];
      logprobs[r * k + j] = static_cast<float>(x[order[static_cast<size_t>(j)]] - lse);
    }
  }
}

void CpuBackend::sample(const float* logits, int64_t rows, int64_t vocab,
                        const SampleParams* params, int32_t* tokens, float* logprobs) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    int32_t tok = sample_row(x, vocab, params[r]);
    tokens[r] = tok;
    logprobs[r] = static_cast<float>(x[tok] - row_lse(x, vocab));
  }
}

}  // namespace ls
