// CPU backend ops against naive double-precision references written here: norms, GEMM,
// embedding, RoPE (HF rotate_half), SiLU-mul, log-softmax, paged KV write + attention (page
// sizes 1 and >1, shuffled pages, GQA, mid-sequence queries, sliding window) and LoRA
// shrink/expand with heterogeneous ranks. Inputs are random non-zero values from ls::Rng.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "base/rng.h"

namespace ls {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Uniform in +-[0.1, 1]: never zero, so a skipped term always changes the result.
std::vector<float> random_vec(Rng& rng, size_t n, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) {
    double m = 0.1 + 0.9 * rng.uniform();
    x = static_cast<float>((rng.uniform() < 0.5 ? -m : m) * scale);
  }
  return v;
}

// |got - ref| <= rel * mag + abs for every element; mag defaults to |ref|.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double rel,
                  const std::vector<double>* mag = nullptr, double abs = 1e-7) {
  ASSERT_EQ(got.size(), ref.size());
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double m = mag ? (*mag)[i] : std::fabs(ref[i]);
    const double excess = std::fabs(got[i] - ref[i]) - (rel * m + abs);
    if (!(excess <= worst)) {  // also catches NaN
      worst = std::isnan(excess) ? INFINITY : excess;
      worst_i = i;
    }
  }
  EXPECT_EQ(worst, 0.0) << "element " << worst_i << ": got " << got[worst_i] << ", want "
                        << ref[worst_i];
}

class CpuOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend();
  Rng rng{20240601};
  Weight weight(const std::vector<float>& data, int64_t rows, int64_t cols) {
    return be->make_weight(DType::kF32, data.data(), rows, cols);
  }
};

TEST_F(CpuOps, RmsNorm) {
  const float eps = 1e-5f;
  for (int64_t n : {1, 5, 20}) {  // 20 rows takes the parallel path
    const int64_t d = 96;
    auto x = random_vec(rng, static_cast<size_t>(n * d), 3.0);
    auto w = random_vec(rng, static_cast<size_t>(d));
    const auto x_copy = x;
    std::vector<float> out(static_cast<size_t>(n * d), kNaN);
    be->rms_norm(x.data(), weight(w, 1, d), eps, n, out.data());
    std::vector<double> ref(out.size());
    for (int64_t r = 0; r < n; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += double(x[r * d + i]) * x[r * d + i];
      const double inv = 1.0 / std::sqrt(ss / d + eps);
      for (int64_t i = 0; i < d; ++i) ref[r * d + i] = w[i] * x[r * d + i] * inv;
    }
    expect_close(out, ref, 1e-5);
    EXPECT_EQ(x, x_copy) << "rms_norm must not modify its input";
  }
}

TEST_F(CpuOps, AddRmsNormUpdatesResidualInPlace) {
  const float eps = 1e-6f;
  for (int64_t n : {3, 17}) {
    const int64_t d = 64;
    auto res = random_vec(rng, static_cast<size_t>(n * d));
    auto delta = random_vec(rng, static_cast<size_t>(n * d), 2.0);
    auto w = random_vec(rng, static_cast<size_t>(d));
    const auto res0 = res;
    std::vector<float> out(static_cast<size_t>(n * d), kNaN);
    be->add_rms_norm(res.data(), delta.data(), weight(w, 1, d), eps, n, out.data());
    std::vector<double> ref(out.size());
    for (int64_t r = 0; r < n; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) {
        const float sum = res0[r * d + i] + delta[r * d + i];  // the fp32 residual add
        EXPECT_EQ(res[r * d + i], sum) << "residual row " << r << " col " << i;
        ss += double(sum) * sum;
      }
      const double inv = 1.0 / std::sqrt(ss / d + eps);
      for (int64_t i = 0; i < d; ++i)
        ref[r * d + i] = w[i] * double(res0[r * d + i] + delta[r * d + i]) * inv;
    }
    expect_close(out, ref, 1e-5);
  }
}

TEST_F(CpuOps, GemmWithAndWithoutBiasAndAccumulate) {
  const int64_t n = 7, k = 96, m = 40;
  auto x = random_vec(rng, n * k);
  auto wv = random_vec(rng, m * k);
  auto bv = random_vec(rng, m);
  const Weight w = weight(wv, m, k), bias = weight(bv, 1, m);
  for (bool with_bias : {false, true}) {
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(testing::Message() << "bias " << with_bias << " accumulate " << accumulate);
      auto out = accumulate ? random_vec(rng, n * m) : std::vector<float>(n * m, kNaN);
      const auto out0 = out;
      be->gemm(x.data(), n, w, with_bias ? &bias : nullptr, out.data(), accumulate);
      std::vector<double> ref(out.size()), mag(out.size());
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t j = 0; j < m; ++j) {
          double s = 0, a = 0;
          for (int64_t i = 0; i < k; ++i) {
            s += double(x[r * k + i]) * wv[j * k + i];
            a += std::fabs(double(x[r * k + i]) * wv[j * k + i]);
          }
          if (with_bias) s += bv[j], a += std::fabs(bv[j]);
          if (accumulate) s += out0[r * m + j], a += std::fabs(out0[r * m + j]);
          ref[r * m + j] = s;
          mag[r * m + j] = a;
        }
      }
      expect_close(out, ref, 1e-5, &mag);
    }
  }
  // An empty bias Weight counts as no bias; n == 0 touches nothing.
  std::vector<float> out(n * m, kNaN);
  Weight no_bias;
  be->gemm(x.data(), n, w, &no_bias, out.data(), false);
  for (float f : out) ASSERT_FALSE(std::isnan(f));
  std::vector<float> untouched(4, 3.0f);
  be->gemm(x.data(), 0, w, &bias, untouched.data(), false);
  EXPECT_EQ(untouched, std::vector<float>(4, 3.0f));
}

TEST_F(CpuOps, GemmOnHalfWeightsConvertedAtLoad) {
  const int64_t n = 3, k = 48, m = 24;
  auto x = random_vec(rng, n * k);
  auto wv = random_vec(rng, m * k);
  for (DType t : {DType::kBF16, DType::kF16}) {
    std::vector<uint16_t> half(wv.size());
    std::vector<double> wq(wv.size());
    for (size_t i = 0; i < wv.size(); ++i) {
      half[i] = t == DType::kBF16 ? f32_to_bf16(wv[i]) : f32_to_f16(wv[i]);
      wq[i] = t == DType::kBF16 ? bf16_to_f32(half[i]) : f16_to_f32(half[i]);
    }
    Weight w = be->make_weight(t, half.data(), m, k);
    EXPECT_EQ(w.rows, m);
    EXPECT_EQ(w.cols, k);
    std::vector<float> out(n * m, kNaN);
    be->gemm(x.data(), n, w, nullptr, out.data(), false);
    std::vector<double> ref(out.size()), mag(out.size());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < m; ++j)
        for (int64_t i = 0; i < k; ++i) {
          ref[r * m + j] += x[r * k + i] * wq[j * k + i];
          mag[r * m + j] += std::fabs(x[r * k + i] * wq[j * k + i]);
        }
    expect_close(out, ref, 1e-5, &mag);
  }
}

TEST_F(CpuOps, StackedWeightRowsAndGemmPartsEqualSeparateGemms) {
  // q, k, v stacked by rows: each part's output (with its own bias) equals a gemm() on the part
  // alone, bit for bit, and the views name the right rows.
  const int64_t n = 5, k = 40;
  const std::vector<int64_t> rows = {24, 8, 8};
  auto x = random_vec(rng, n * k);
  std::vector<Weight> parts, biases;
  for (int64_t r : rows) {
    parts.push_back(weight(random_vec(rng, r * k), r, k));
    biases.push_back(weight(random_vec(rng, r), 1, r));
  }
  const Weight stacked = be->stack_rows(parts.data(), 3);
  ASSERT_EQ(stacked.rows, 40);
  ASSERT_EQ(stacked.cols, k);
  const Weight kv = weight_rows(stacked, 24, 8);
  EXPECT_EQ(0, std::memcmp(kv.data, parts[1].data, 8 * k * sizeof(float)));
  std::vector<std::vector<float>> got(3), want(3);
  GemmPart gp[3];
  for (size_t i = 0; i < 3; ++i) {
    got[i].assign(static_cast<size_t>(n * rows[i]), kNaN);
    want[i].assign(static_cast<size_t>(n * rows[i]), kNaN);
    gp[i] = {rows[i], &biases[i], got[i].data()};
    be->gemm(x.data(), n, parts[i], &biases[i], want[i].data(), false);
  }
  be->gemm_parts(x.data(), n, stacked, gp, 3);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got[i], want[i]) << "part " << i;
}

TEST_F(CpuOps, GemmPartsRefusesRowsThatDoNotAddUp) {
  const Weight w = weight(random_vec(rng, 10 * 8), 10, 8);
  std::vector<float> x(8, 1.0f), a(4), b(4);
  GemmPart gp[2] = {{4, nullptr, a.data()}, {4, nullptr, b.data()}};
  EXPECT_DEATH(be->gemm_parts(x.data(), 1, w, gp, 2), "do not add up");
  const std::vector<Weight> mixed = {w, weight(random_vec(rng, 2 * 6), 2, 6)};
  EXPECT_DEATH(be->stack_rows(mixed.data(), 2), "different dtypes or widths");
}

TEST_F(CpuOps, Embedding) {
  const int64_t vocab = 50, d = 24;
  auto table = random_vec(rng, vocab * d);
  const Weight w = weight(table, vocab, d);
  const std::vector<int32_t> ids = {0, 49, 7, 7, 13, 0, 31};
  std::vector<float> out(ids.size() * d, kNaN);
  be->embedding(w, ids.data(), static_cast<int64_t>(ids.size()), out.data());
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t i = 0; i < d; ++i)
      ASSERT_EQ(out[t * d + i], table[ids[t] * d + i]) << "token " << t << " col " << i;
}

TEST_F(CpuOps, RopeRotateHalf) {
  const int32_t hd = 32, half = hd / 2, hq = 4, hkv = 2;
  std::vector<float> inv_freq(half);
  for (int32_t i = 0; i < half; ++i)  // the default Llama schedule, as transformers builds it
    inv_freq[i] = 1.0f / static_cast<float>(std::pow(10000.0, double(2 * i) / hd));
  const std::vector<int32_t> pos = {0, 1, 5, 100, 1023, 4095};
  const int64_t n = static_cast<int64_t>(pos.size());
  auto q = random_vec(rng, n * hq * hd);
  auto k = random_vec(rng, n * hkv * hd);
  const auto q0 = q, k0 = k;
  RopeParams p{inv_freq.data(), hd, hq, hkv};
  be->rope(q.data(), k.data(), p, pos.data(), n);
  auto reference = [&](const std::vector<float>& x0, int32_t heads) {
    std::vector<double> ref(x0.size());
    for (int64_t t = 0; t < n; ++t)
      for (int32_t h = 0; h < heads; ++h) {
        const float* x = x0.data() + (t * heads + h) * hd;
        double* y = ref.data() + (t * heads + h) * hd;
        for (int32_t i = 0; i < half; ++i) {
          // HF: freqs = inv_freq * pos in fp32; out = x * cos + rotate_half(x) * sin, where
          // rotate_half(x) = [-x[half:], x[:half]] (pairs i and i + half, not 2i and 2i+1).
          const float angle = inv_freq[i] * static_cast<float>(pos[t]);
          const double c = std::cos(double(angle)), s = std::sin(double(angle));
          y[i] = x[i] * c - x[i + half] * s;
          y[i + half] = x[i + half] * c + x[i] * s;
        }
      }
    return ref;
  };
  expect_close(q, reference(q0, hq), 0, nullptr, 2e-6);
  expect_close(k, reference(k0, hkv), 0, nullptr, 2e-6);
  // Position 0 is the identity.
  for (int32_t i = 0; i < hq * hd; ++i) ASSERT_EQ(q[i], q0[i]);
}

TEST_F(CpuOps, SiluMulIncludingInPlace) {
  for (int64_t inter : {50, 40000}) {  // the second size takes the parallel path
    const int64_t n = 2;
    auto gate = random_vec(rng, n * inter, 6.0);
    auto up = random_vec(rng, n * inter);
    std::vector<double> ref(gate.size());
    for (size_t i = 0; i < gate.size(); ++i)
      ref[i] = gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i];
    std::vector<float> out(gate.size(), kNaN);
    be->silu_mul(gate.data(), up.data(), n, inter, out.data());
    expect_close(out, ref, 1e-6, nullptr, 1e-7);
    be->silu_mul(gate.data(), up.data(), n, inter, gate.data());  // the model runs it in place
    expect_close(gate, ref, 1e-6, nullptr, 1e-7);
  }
}

TEST_F(CpuOps, LogSoftmax) {
  const int64_t rows = 4, vocab = 1000;
  auto logits = random_vec(rng, rows * vocab, 30.0);
  for (int64_t i = 0; i < vocab; ++i) logits[vocab + i] += 5000.0f;     // stability: huge offset
  for (int64_t i = 0; i < vocab; ++i) logits[2 * vocab + i] *= 0.001f;  // nearly uniform
  std::vector<float> out(logits.size(), kNaN);
  be->log_softmax(logits.data(), rows, vocab, out.data());
  std::vector<double> ref(out.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits.data() + r * vocab;
    double mx = *std::max_element(x, x + vocab), sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(x[i] - mx);
    for (int64_t i = 0; i < vocab; ++i) ref[r * vocab + i] = x[i] - mx - std::log(sum);
  }
  expect_close(out, ref, 1e-6, nullptr, 1e-6);
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0;
    for (int64_t i = 0; i < vocab; ++i) total += std::exp(double(out[r * vocab + i]));
    EXPECT_NEAR(total, 1.0, 1e-4) << "row " << r;
  }
}

// ---- paged KV + attention ----

struct AttnCase {
  const char* name;
  int32_t page_size, num_q_heads, num_kv_heads, head_dim, sliding_window;
  std::vector<int32_t> seq_lens;
};

void PrintTo(const AttnCase& c, std::ostream* os) {
  *os << c.name;
}

// A KV cache (or adapter pages) of `n` elements of `t` (fp32 or bf16), NaN everywhere at first:
// reading an element that was never written poisons the output.
struct KvBuf {
  DType t;
  std::vector<float> f32;
  std::vector<uint16_t> b16;
  KvBuf(DType dtype, size_t n) : t(dtype) {
    if (t == DType::kF32)
      f32.assign(n, kNaN);
    else
      b16.assign(n, f32_to_bf16(kNaN));
  }
  void* data() { return t == DType::kF32 ? static_cast<void*>(f32.data()) : b16.data(); }
  float at(size_t i) const { return t == DType::kF32 ? f32[i] : bf16_to_f32(b16[i]); }
};

// x as a cache of dtype t stores it (bf16: rounded to nearest even).
float stored_as(DType t, float x) {
  return t == DType::kF32 ? x : bf16_to_f32(f32_to_bf16(x));
}

std::string dtype_suffix(DType t) {
  return t == DType::kF32 ? "fp32" : "bf16";
}

class PagedAttention : public CpuOps,
                       public ::testing::WithParamInterface<std::tuple<AttnCase, DType>> {};

TEST_P(PagedAttention, MatchesNaiveCausalAttention) {
  const AttnCase& c = std::get<0>(GetParam());
  const DType kv_dtype = std::get<1>(GetParam());
  const int32_t ps = c.page_size, hd = c.head_dim, hq = c.num_q_heads, hkv = c.num_kv_heads;
  const int32_t width = hkv * hd, num_seqs = static_cast<int32_t>(c.seq_lens.size());
  // Page table: every sequence gets its pages from a shuffled list (plus spare pages nobody owns).
  int32_t needed = 0;
  for (int32_t len : c.seq_lens) needed += (len + ps - 1) / ps;
  const int32_t num_pages = needed + 3;
  std::vector<int32_t> order(num_pages);
  for (int32_t i = 0; i < num_pages; ++i) order[i] = i;
  for (int32_t i = num_pages - 1; i > 0; --i)
    std::swap(order[i], order[static_cast<int32_t>(rng.uniform() * (i + 1))]);
  std::vector<int32_t> indptr = {0}, indices;
  for (int32_t len : c.seq_lens) {
    for (int32_t p = 0; p < (len + ps - 1) / ps; ++p) indices.push_back(order[indices.size()]);
    indptr.push_back(static_cast<int32_t>(indices.size()));
  }
  KvBuf kc(kv_dtype, static_cast<size_t>(num_pages * ps * width)),
      vc(kv_dtype, static_cast<size_t>(num_pages * ps * width));
  LayerKv kv{kc.data(), vc.data(), kv_dtype, ps, width};
  auto slot = [&](int32_t s, int32_t pos) -> int64_t {
    return int64_t{indices[indptr[s] + pos / ps]} * ps + pos % ps;
  };
  // Keys/values of every position, written by kv_write in an interleaved order over sequences.
  std::vector<std::vector<float>> keys(num_seqs), vals(num_seqs);
  std::vector<float> kbuf, vbuf;
  std::vector<int64_t> slots;
  for (int32_t s = 0; s < num_seqs; ++s) {
    keys[s] = random_vec(rng, c.seq_lens[s] * width);
    vals[s] = random_vec(rng, c.seq_lens[s] * width);
  }
  const int32_t max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());
  for (int32_t pos = 0; pos < max_len; ++pos)
    for (int32_t s = num_seqs - 1; s >= 0; --s) {
      if (pos >= c.seq_lens[s]) continue;
      kbuf.insert(kbuf.end(), keys[s].begin() + pos * width, keys[s].begin() + (pos + 1) * width);
      vbuf.insert(vbuf.end(), vals[s].begin() + pos * width, vals[s].begin() + (pos + 1) * width);
      slots.push_back(slot(s, pos));
    }
  be->kv_write(kbuf.data(), vbuf.data(), slots.data(), static_cast<int64_t>(slots.size()), kv);
  for (int32_t s = 0; s < num_seqs; ++s)
    for (int32_t pos = 0; pos < c.seq_lens[s]; ++pos)
      for (int32_t i = 0; i < width; ++i) {
        float& key = keys[s][pos * width + i];
        float& val = vals[s][pos * width + i];
        key = stored_as(kv_dtype, key), val = stored_as(kv_dtype, val);  // what the ref reads
        ASSERT_EQ(kc.at(slot(s, pos) * width + i), key);
        ASSERT_EQ(vc.at(slot(s, pos) * width + i), val);
      }
  // Queries: every position of sequence 0 (prefill), the last of each other sequence (decode),
  // and a middle position of the longer ones (keys after it are in the cache but masked).
  std::vector<int32_t> tseq, tpos;
  for (int32_t pos = 0; pos < c.seq_lens[0]; ++pos) tseq.push_back(0), tpos.push_back(pos);
  for (int32_t s = 1; s < num_seqs; ++s) {
    tseq.push_back(s), tpos.push_back(c.seq_lens[s] - 1);
    if (c.seq_lens[s] > 2) tseq.push_back(s), tpos.push_back(c.seq_lens[s] / 2);
  }
  // Interleave the token order too: an op must not assume tokens are grouped by sequence.
  for (size_t i = tseq.size() - 1; i > 0; --i) {
    size_t j = static_cast<size_t>(rng.uniform() * double(i + 1));
    std::swap(tseq[i], tseq[j]);
    std::swap(tpos[i], tpos[j]);
  }
  const int64_t n = static_cast<int64_t>(tseq.size());
  auto q = random_vec(rng, n * hq * hd, 2.0);
  AttentionBatch b;
  b.num_tokens = n;
  b.num_seqs = num_seqs;
  b.token_seq = tseq.data();
  b.token_pos = tpos.data();
  b.kv_indptr = indptr.data();
  b.kv_indices = indices.data();
  b.num_q_heads = hq;
  b.num_kv_heads = hkv;
  b.head_dim = hd;
  b.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  b.sliding_window = c.sliding_window;
  std::vector<float> out(n * hq * hd, kNaN);
  be->attention(q.data(), b, kv, out.data());

  std::vector<double> ref(out.size());
  const int32_t group = hq / hkv;
  for (int64_t t = 0; t < n; ++t) {
    const int32_t s = tseq[t], pos = tpos[t];
    const int32_t start = c.sliding_window > 0 ? std::max(0, pos - c.sliding_window + 1) : 0;
    for (int32_t h = 0; h < hq; ++h) {
      const int32_t kh = h / group;  // HF repeat_kv: q head h reads kv head h / group
      std::vector<double> sc;
      double mx = -INFINITY;
      for (int32_t j = start; j <= pos; ++j) {
        double dot = 0;
        for (int32_t i = 0; i < hd; ++i)
          dot += double(q[(t * hq + h) * hd + i]) * keys[s][j * width + kh * hd + i];
        sc.push_back(dot * b.scale);
        mx = std::max(mx, sc.back());
      }
      double sum = 0;
      for (double& x : sc) sum += (x = std::exp(x - mx));
      for (int32_t i = 0; i < hd; ++i) {
        double acc = 0;
        for (int32_t j = start; j <= pos; ++j)
          acc += sc[j - start] * vals[s][j * width + kh * hd + i];
        ref[(t * hq + h) * hd + i] = acc / sum;
      }
    }
  }
  expect_close(out, ref, 0, nullptr, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PagedAttention,
    ::testing::Combine(
        ::testing::Values(AttnCase{"page1_mha", 1, 2, 2, 16, 0, {6, 1, 9}},
                          AttnCase{"page4_gqa", 4, 8, 2, 32, 0, {13, 3, 4, 17}},
                          AttnCase{"page3_gqa_window", 3, 6, 3, 16, 4, {16, 2, 10, 7}},
                          AttnCase{"page1_window", 1, 4, 2, 8, 3, {9, 5}},
                          AttnCase{"page16_mqa", 16, 4, 1, 16, 0, {5, 20, 33}},
                          AttnCase{"window_longer_than_seq", 2, 4, 4, 8, 64, {11, 6}}),
        ::testing::Values(DType::kF32, DType::kBF16)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param).name) + "_" +
             dtype_suffix(std::get<1>(info.param));
    });

// ---- LoRA ----

struct LoraSlot {
  int32_t rank;
  float scale;
  std::vector<float> a, bt;  // [rank, in], [rank, out]
};

class Lora : public CpuOps, public ::testing::WithParamInterface<std::tuple<int32_t, DType>> {};

TEST_P(Lora, ShrinkExpandHeterogeneousRanks) {
  // The v stride (at least the largest rank in the call), and the pages' element type.
  const int32_t max_rank = std::get<0>(GetParam());
  const DType page_dtype = std::get<1>(GetParam());
  const int64_t in = 48, out_dim = 40;
  std::vector<LoraSlot> slots;
  const std::vector<std::pair<int32_t, float>> rank_scale = {
      {8, 2.0f}, {16, 0.5f}, {64, 0.25f}, {128, 0.125f}, {0, 1.0f}};
  for (auto [r, sc] : rank_scale) {
    LoraSlot s{r, sc, {}, {}};
    if (r > 0) s.a = random_vec(rng, r * in, 0.3), s.bt = random_vec(rng, r * out_dim, 0.3);
    for (float& e : s.a) e = stored_as(page_dtype, e);  // the reference reads what is stored
    for (float& e : s.bt) e = stored_as(page_dtype, e);
    slots.push_back(std::move(s));
  }
  // Runs of one slot, alternating single tokens, tokens without an adapter, and slot 4 whose
  // rank for this module is 0 (the adapter does not touch it).
  const std::vector<int32_t> token_slot = {0, 0, 0,  1, 2, 1, 2, -1, -1, 3, 3, 3, 3,  4,
                                           4, 0, -1, 3, 1, 1, 2, 2,  2,  0, 4, 3, -1, 2};
  const int64_t n = static_cast<int64_t>(token_slot.size());
  // Rows live in chunks of 16 floats scattered (shuffled) over one page buffer, as adapter rows
  // do in the page pool; 48 = 3 whole chunks, 40 = 2 chunks and a partial one.
  const int64_t chunk = 16;
  const int64_t in_chunks = (in + chunk - 1) / chunk, out_chunks = (out_dim + chunk - 1) / chunk;
  int64_t total_chunks = 0;
  for (const auto& s : slots) total_chunks += s.rank * (in_chunks + out_chunks);
  KvBuf pages(page_dtype, static_cast<size_t>(total_chunks * chunk));
  std::vector<int64_t> order(static_cast<size_t>(total_chunks));
  for (int64_t i = 0; i < total_chunks; ++i) order[i] = i;
  for (int64_t i = total_chunks - 1; i > 0; --i)
    std::swap(order[i], order[static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(i + 1))]);
  std::vector<const void*> chunks;
  auto add_rows = [&](const std::vector<float>& m, int32_t rank, int64_t dim) {
    for (int32_t j = 0; j < rank; ++j)
      for (int64_t k = 0; k * chunk < dim; ++k) {
        const int64_t at = order[chunks.size()] * chunk;
        const int64_t len = std::min(chunk, dim - k * chunk);
        for (int64_t i = 0; i < len; ++i) {
          const float e = m[static_cast<size_t>(j * dim + k * chunk + i)];
          if (page_dtype == DType::kF32)
            pages.f32[static_cast<size_t>(at + i)] = e;
          else
            pages.b16[static_cast<size_t>(at + i)] = f32_to_bf16(e);
        }
        chunks.push_back(page_dtype == DType::kF32 ? static_cast<const void*>(&pages.f32[at])
                                                   : &pages.b16[at]);
      }
  };
  std::vector<int64_t> a_first, bt_first;
  std::vector<int32_t> ranks;
  std::vector<float> scales;
  for (const auto& s : slots) {
    a_first.push_back(static_cast<int64_t>(chunks.size()));
    add_rows(s.a, s.rank, in);
    bt_first.push_back(static_cast<int64_t>(chunks.size()));
    add_rows(s.bt, s.rank, out_dim);
    ranks.push_back(s.rank);
    scales.push_back(s.scale);
  }
  std::vector<int32_t> seg_start, seg_slot;
  for (int64_t t = 0; t < n; ++t)
    if (t == 0 || token_slot[t] != token_slot[t - 1])
      seg_start.push_back(static_cast<int32_t>(t)), seg_slot.push_back(token_slot[t]);
  const int32_t num_segments = static_cast<int32_t>(seg_slot.size());
  seg_start.push_back(static_cast<int32_t>(n));
  LoraModuleBatch lb;
  lb.num_slots = static_cast<int32_t>(slots.size());
  lb.max_rank = max_rank;
  lb.in_dim = in;
  lb.out_dim = out_dim;
  lb.chunk_elems = chunk;
  lb.dtype = page_dtype;
  lb.chunks = chunks.data();
  lb.a_first = a_first.data();
  lb.bt_first = bt_first.data();
  lb.rank = ranks.data();
  lb.scale = scales.data();
  lb.token_slot = token_slot.data();
  lb.num_segments = num_segments;
  lb.seg_start = seg_start.data();
  lb.seg_slot = seg_slot.data();

  auto x = random_vec(rng, n * in);
  auto y = random_vec(rng, n * out_dim);
  const auto y0 = y;
  // NaN in v: expand must read only the columns shrink wrote for that token's rank.
  std::vector<float> v(n * max_rank, kNaN);
  be->lora_shrink(x.data(), n, lb, v.data());
  be->lora_expand(v.data(), n, lb, y.data());

  std::vector<double> ref(y.size()), mag(y.size());
  for (int64_t t = 0; t < n; ++t) {
    const int32_t si = token_slot[t];
    const int32_t r = si >= 0 ? slots[si].rank : 0;
    std::vector<double> vt(r), vmag(r);
    for (int32_t j = 0; j < r; ++j) {
      for (int64_t i = 0; i < in; ++i) {
        vt[j] += double(x[t * in + i]) * slots[si].a[j * in + i];
        vmag[j] += std::fabs(double(x[t * in + i]) * slots[si].a[j * in + i]);
      }
      EXPECT_NEAR(v[t * max_rank + j], vt[j], 1e-5 * vmag[j] + 1e-7) << "v token " << t;
    }
    for (int64_t o = 0; o < out_dim; ++o) {
      double acc = 0, m = 0;
      for (int32_t j = 0; j < r; ++j) {
        acc += vt[j] * slots[si].bt[j * out_dim + o];
        m += vmag[j] * std::fabs(slots[si].bt[j * out_dim + o]);
      }
      if (r == 0) {  // no adapter, or rank 0 here: y must be bit-for-bit untouched
        ASSERT_EQ(y[t * out_dim + o], y0[t * out_dim + o]) << "token " << t << " slot " << si;
      }
      ref[t * out_dim + o] = y0[t * out_dim + o] + slots[si < 0 ? 0 : si].scale * acc;
      mag[t * out_dim + o] =
          std::fabs(y0[t * out_dim + o]) + std::fabs(slots[si < 0 ? 0 : si].scale) * m;
    }
  }
  expect_close(y, ref, 1e-5, &mag);

  // Each token alone (decode-style, n = 1 per call) gives the same y as the batched call.
  for (int64_t t = 0; t < n; ++t) {
    LoraModuleBatch one = lb;
    one.token_slot = token_slot.data() + t;
    const int32_t one_start[2] = {0, 1};
    one.num_segments = 1;
    one.seg_start = one_start;
    one.seg_slot = token_slot.data() + t;
    std::vector<float> v1(max_rank, kNaN),
        y1(y0.begin() + t * out_dim, y0.begin() + (t + 1) * out_dim);
    be->lora_shrink(x.data() + t * in, 1, one, v1.data());
    be->lora_expand(v1.data(), 1, one, y1.data());
    for (int64_t o = 0; o < out_dim; ++o)
      ASSERT_NEAR(y1[o], y[t * out_dim + o], 1e-5 * mag[t * out_dim + o] + 1e-7) << "token " << t;
  }

  // gemm_parts with the LoRA on the part (the forward's path): the GEMM, then the same shrink
  // and expand, bit for bit; a part whose LoRA has other columns than its rows is refused.
  auto wv = random_vec(rng, out_dim * in, 0.2);
  const Weight w = be->make_weight(DType::kF32, wv.data(), out_dim, in);
  std::vector<float> want(y0.size(), kNaN), got(y0.size(), kNaN), vw(v.size(), kNaN),
      vg(v.size(), kNaN);
  be->gemm(x.data(), n, w, nullptr, want.data(), false);
  be->lora_shrink(x.data(), n, lb, vw.data());
  be->lora_expand(vw.data(), n, lb, want.data());
  GemmPart part{out_dim, nullptr, got.data(), &lb, vg.data()};
  be->gemm_parts(x.data(), n, w, &part, 1);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
  LoraModuleBatch wide = lb;
  wide.out_dim = out_dim + 1;
  part.lora = &wide;
  EXPECT_DEATH(be->gemm_parts(x.data(), n, w, &part, 1), "LoRA must have its rows");
}

INSTANTIATE_TEST_SUITE_P(VStride, Lora,
                         ::testing::Combine(::testing::Values(128, 160),
                                            ::testing::Values(DType::kF32, DType::kBF16)),
                         [](const auto& info) {
                           return std::to_string(std::get<0>(info.param)) + "_" +
                                  dtype_suffix(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace ls
