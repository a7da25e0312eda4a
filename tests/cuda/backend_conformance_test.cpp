// Backend conformance: every op of a backend under test against the CPU reference on the same
// random inputs, through the Backend interface only (upload, op, download). Parameterised by
// backend name; the CUDA backend is the one instantiated here (skipped without a GPU).
// Outputs are poisoned (NaN or sentinels) before each op, and whole buffers are compared, so
// an element written that should not be, or not written that should, fails.
//
// Tolerances (relative to the CPU's fp32/double results):
// - exact: embedding, kv_write, penalties, greedy and sampled token ids, top-k ids, untouched
//   LoRA entries;
// - 1e-5 relative norm error: norms, RoPE, SiLU-mul, attention, LoRA, f32 GEMM (fp32 with a
//   different summation order);
// - bf16/f16 GEMM: 2e-5. The CUDA backend feeds fp32 activations to the tensor cores as two
//   halves of the weight type (hi + lo: ~16 mantissa bits for bf16, worst 2^-17 = 7.6e-6 per
//   element), so it stays within a few 1e-6 of the fp32 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "base/dtype.h"
#include "base/rng.h"
#include "cuda/conformance_support.h"
#include "model/model_config.h"
#ifdef LORASERVE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace)

std::unique_ptr<Backend> make_named_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
#ifdef LORASERVE_HAS_CUDA
  if (name == "cuda" && cuda_device_available()) {
    auto b = make_cuda_backend();
    if (b.ok()) return std::move(b).value();
  }
#endif
  return nullptr;
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dut_ = make_named_backend(GetParam());
    if (!dut_) GTEST_SKIP() << "backend " << GetParam() << " not available here";
    ref_ = make_cpu_backend();
  }
  // Runs fn on the reference and on the backend under test.
  template <typename Fn>
  auto both(Fn fn) {
    return std::make_pair(fn(*ref_), fn(*dut_));
  }
  std::unique_ptr<Backend> ref_, dut_;
  Rng rng_{0x5eed};
};

TEST_P(Conformance, MemoryRoundTripAndCopyFromAnotherThread) {
  Dev d{*dut_};
  auto v = random_vec(rng_, 100000);
  Buffer b = d.put(v);
  EXPECT_EQ(d.get<float>(b, v.size()), v);
  dut_->fill_zero(b.data, 4000);
  auto z = d.get<float>(b, v.size());
  EXPECT_TRUE(std::all_of(z.begin(), z.begin() + 1000, [](float x) { return x == 0.0f; }));
  EXPECT_TRUE(std::equal(z.begin() + 1000, z.end(), v.begin() + 1000));
  // An op on this thread, then an upload from another thread (the adapter loader's path),
  // then an op reading what it uploaded: the copy must be ordered before the op.
  Buffer x = d.put(random_vec(rng_, 64 * 32));
  Buffer out = d.put(std::vector<float>(64 * 32, kNaN));
  dut_->silu_mul(x.as<float>(), x.as<float>(), 64, 32, out.as<float>());
  auto big = random_vec(rng_, 8 << 20);  // 32 MB: several staging pieces
  Buffer target = dut_->alloc(big.size() * 4);
  std::thread([&] { dut_->upload(target.data, big.data(), big.size() * 4); }).join();
  Buffer copy = dut_->alloc(big.size() * 4);
  dut_->silu_mul(target.as<float>(), target.as<float>(), 1, static_cast<int64_t>(big.size()),
                 copy.as<float>());
  auto got = d.get<float>(copy, big.size());
  std::vector<float> want(big.size());
  ref_->silu_mul(big.data(), big.data(), 1, static_cast<int64_t>(big.size()), want.data());
  EXPECT_LT(rel_err(got, want), 1e-6);
}

// upload_scatter from another thread (the adapter loader): thousands of pieces of odd sizes and
// alignments, some over 1 MiB, 48 MiB in all (several staging batches), into one buffer in
// shuffled order; every byte must land, and bytes between pieces must stay as they were. Then
// pieces that round fp32 to bf16 on the way, against the CPU reference's rounding.
TEST_P(Conformance, UploadScatterManyPiecesFromAnotherThread) {
  Dev d{*dut_};
  const size_t total = 48u << 20;
  std::vector<uint8_t> host(total), before(total);
  for (size_t i = 0; i < total; ++i) {
    host[i] = static_cast<uint8_t>(rng_.next_u64());
    before[i] = static_cast<uint8_t>(i * 7 + 3);
  }
  Buffer dst = d.put(before);
  std::vector<UploadPiece> pieces;
  std::vector<uint8_t> want = before;
  for (size_t at = 0; at < total;) {
    // sizes from 1 byte to 3 MiB, a gap of 0-40 bytes after each
    const double u = rng_.uniform();
    size_t len = u < 0.3     ? 1 + static_cast<size_t>(rng_.uniform() * 64)
                 : u < 0.995 ? 8192 + static_cast<size_t>(rng_.uniform() * 8)
                             : static_cast<size_t>(rng_.uniform() * (3u << 20));
    len = std::max<size_t>(1, std::min(len, total - at));
    pieces.push_back({dst.as<uint8_t>() + at, host.data() + at, len});
    std::memcpy(want.data() + at, host.data() + at, len);
    at += len + static_cast<size_t>(rng_.uniform() * 41);
  }
  for (size_t i = pieces.size() - 1; i > 0; --i)
    std::swap(pieces[i], pieces[static_cast<size_t>(rng_.uniform() * static_cast<double>(i + 1))]);
  ASSERT_GT(pieces.size(), 2000u);
  // upload_scatter is not ordered after earlier work: let the fill land first.
  (void)d.get<uint8_t>(dst, 1);
  std::thread([&] { dut_->upload_scatter(pieces.data(), pieces.size()); }).join();
  EXPECT_TRUE(d.get<uint8_t>(dst, total) == want);

  const size_t n = 3u << 20;  // floats; one piece over the 1 MiB split, the rest 4096 each
  auto f = random_vec(rng_, n);
  f[5] = kNaN;
  f[6] = std::numeric_limits<float>::infinity();
  f[7] = 1.0f + 0x1.0p-8f;  // a tie: rounds to even
  std::vector<uint16_t> rounded(n);
  for (size_t i = 0; i < n; ++i) rounded[i] = f32_to_bf16(f[i]);
  Buffer b16 = d.put(std::vector<uint16_t>(n, 0xffff));
  (void)d.get<uint16_t>(b16, 1);
  std::vector<UploadPiece> rp;
  rp.push_back({b16.as<uint16_t>(), f.data(), 2 * (1u << 20) + 6, true});
  for (size_t at = (1u << 20) + 8; at + 4096 <= n; at += 4096 + 8)
    rp.push_back({b16.as<uint16_t>() + at, f.data() + at, 2 * 4096, true});
  std::vector<uint16_t> want16(n, 0xffff);
  for (const UploadPiece& p : rp) {
    const size_t at = static_cast<size_t>(static_cast<const float*>(p.src) - f.data());
    std::copy(rounded.begin() + static_cast<std::ptrdiff_t>(at),
              rounded.begin() + static_cast<std::ptrdiff_t>(at + p.bytes / 2),
              want16.begin() + static_cast<std::ptrdiff_t>(at));
  }
  std::thread([&] { dut_->upload_scatter(rp.data(), rp.size()); }).join();
  EXPECT_TRUE(d.get<uint16_t>(b16, n) == want16);
  // The same from the op thread (ordered on the compute stream).
  Buffer c16 = d.put(std::vector<uint16_t>(n, 0xffff));
  for (UploadPiece& p : rp)
    p.dst = c16.as<uint16_t>() + (static_cast<uint16_t*>(p.dst) - b16.as<uint16_t>());
  Buffer ones = d.put(std::vector<float>(4, 1.0f)), out4 = d.put(std::vector<float>(4, 0.0f));
  dut_->silu_mul(ones.as<float>(), ones.as<float>(), 1, 4, out4.as<float>());  // marks this thread
  dut_->upload_scatter(rp.data(), rp.size());
  EXPECT_TRUE(d.get<uint16_t>(c16, n) == want16);
}

TEST_P(Conformance, EmbeddingAllDtypes) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int64_t vocab = 3001, dim = 520;
    HostWeight w = host_weight(rng_, t, vocab * dim, 1.0);
    std::vector<int32_t> ids = {0, 3000, 17, 17, 1234, 5, 2999};
    auto [ref, got] = both([&](Backend& be) {
      Dev d{be};
      Weight tw = be.make_weight(t, w.bytes.data(), vocab, dim);
      Buffer di = d.put(ids);
      Buffer out = d.put(std::vector<float>(ids.size() * dim, kNaN));
      be.embedding(tw, di.as<int32_t>(), static_cast<int64_t>(ids.size()), out.as<float>());
      return d.get<float>(out, ids.size() * dim);
    });
    EXPECT_EQ(got, ref) << dtype_name(t);
  }
}

TEST_P(Conformance, RmsNormAndFusedResidualAllDtypes) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t dim : {48, 4096, 5000, 4099, 8200}) {  // the last two: the plain kernel
      const int64_t n = 37;
      HostWeight w = host_weight(rng_, t, dim, 1.0);
      auto x = random_vec(rng_, n * dim, 3.0), delta = random_vec(rng_, n * dim);
      auto [ref, got] = both([&](Backend& be) {
        Dev d{be};
        Weight nw = be.make_weight(t, w.bytes.data(), 1, dim);
        Buffer dx = d.put(x), dd = d.put(delta);
        Buffer o1 = d.put(std::vector<float>(n * dim, kNaN));
        Buffer o2 = d.put(std::vector<float>(n * dim, kNaN));
        be.rms_norm(dx.as<float>(), nw, 1e-5f, n, o1.as<float>());
        be.add_rms_norm(dx.as<float>(), dd.as<float>(), nw, 1e-6f, n, o2.as<float>());
        auto r = d.get<float>(o1, n * dim);
        auto r2 = d.get<float>(o2, n * dim);
        auto res = d.get<float>(dx, n * dim);
        r.insert(r.end(), r2.begin(), r2.end());
        r.insert(r.end(), res.begin(), res.end());
        return r;
      });
      EXPECT_LT(rel_err(got, ref), 1e-5) << dtype_name(t) << " dim " << dim;
    }
  }
}

TEST_P(Conformance, GemmAllDtypesBiasAndAccumulate) {
  // k = 257: cuBLAS everywhere; k = 264 (a multiple of 8): rows up to 16 take CUDA's skinny
  // decode kernel, an odd m leaves a half-filled last warp.
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 257},
                                                                {7, 257},
                                                                {130, 257},
                                                                {600, 257},
                                                                {1, 264},
                                                                {3, 264},
                                                                {8, 264},
                                                                {16, 264},
                                                                {17, 264},
                                                                {5, 4104}}) {
      const int64_t m = 301;
      HostWeight w = host_weight(rng_, t, m * k, 0.05);
      HostWeight bias = host_weight(rng_, t, m, 1.0);
      auto x = random_vec(rng_, n * k);
      auto y0 = random_vec(rng_, n * m);
      auto got = gemm_bias_and_accumulate(*dut_, t, w, bias, x, y0, n, m, k);
      auto ref = gemm_bias_and_accumulate(*ref_, t, w, bias, x, y0, n, m, k);
      EXPECT_LT(rel_err(got, ref), t == DType::kF32 ? 1e-5 : 2e-5)
          << dtype_name(t) << " n " << n << " k " << k;
    }
  }
}

TEST_P(Conformance, GemmPartsOfStackedWeights) {
  // q, k, v (with biases) and gate, up (without) stacked by rows: every row count from the
  // skinny kernel's through the decode GEMM's to cuBLAS's, against the CPU; outputs poisoned.
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t n : {1, 2, 8, 16, 17, 64, 65, 200}) {
      for (bool with_bias : {true, false}) {
        const int64_t k = 256;
        const std::vector<int64_t> rows =
            with_bias ? std::vector<int64_t>{96, 32, 32} : std::vector<int64_t>{200, 200};
        std::vector<HostWeight> ws, bs;
        for (int64_t r : rows) {
          ws.push_back(host_weight(rng_, t, r * k, 0.05));
          bs.push_back(host_weight(rng_, t, r, 1.0));
        }
        auto x = random_vec(rng_, n * k);
        auto run = [&](Backend& be) {
          Dev d{be};
          std::vector<Weight> parts, biases;
          for (size_t i = 0; i < rows.size(); ++i) {
            parts.push_back(be.make_weight(t, ws[i].bytes.data(), rows[i], k));
            biases.push_back(be.make_weight(t, bs[i].bytes.data(), 1, rows[i]));
          }
          const Weight stacked = be.stack_rows(parts.data(), static_cast<int32_t>(parts.size()));
          Buffer dx = d.put(x);
          std::vector<Buffer> outs;
          std::vector<GemmPart> gp;
          for (size_t i = 0; i < rows.size(); ++i) {
            outs.push_back(d.put(std::vector<float>(n * rows[i], kNaN)));
            gp.push_back({rows[i], with_bias ? &biases[i] : nullptr, outs.back().as<float>()});
          }
          be.gemm_parts(dx.as<float>(), n, stacked, gp.data(), static_cast<int32_t>(gp.size()));
          std::vector<float> r;
          for (size_t i = 0; i < rows.size(); ++i) {
            auto o = d.get<float>(outs[i], n * rows[i]);
            r.insert(r.end(), o.begin(), o.end());
          }
          return r;
        };
        auto [ref, got] = both(run);
        EXPECT_LT(rel_err(got, ref), t == DType::kF32 ? 1e-5 : 2e-5)
            << dtype_name(t) << " n " << n << (with_bias ? " q,k,v with bias" : " gate,up");
      }
    }
  }
}

#ifdef LORASERVE_HAS_CUDA
// The tensor-core decode GEMM (2 to 64 rows, k a multiple of 32) in a backend where it takes
// every row count, against the CPU: bias and accumulate, a last row tile cut short (m = 301),
// one split (k = 256) and many (k = 4,128, so each block adds a part and the last one of a row
// tile sums them). The same call twice gives the same bits (the split counters are left at
// zero), and a row's result does not depend on how many rows share the call.
TEST_P(Conformance, DecodeGemmAllRowCountsSplitsAndBatchInvariance) {
  if (GetParam() != "cuda") GTEST_SKIP() << "CUDA's own GEMM path";
  CudaBackendOptions o;
  o.skinny_gemm_max_rows = 0;
  o.decode_gemm_max_rows = 64;
  auto made = make_cuda_backend(o);
  ASSERT_TRUE(made.ok()) << made.status().message();
  Backend& dut = *made.value();
  for (DType t : {DType::kBF16, DType::kF16}) {
    for (int64_t k : {256, 4128}) {
      for (int64_t m : {301, 64}) {
        HostWeight w = host_weight(rng_, t, m * k, 0.05);
        HostWeight bias = host_weight(rng_, t, m, 1.0);
        const int64_t max_n = 64;
        auto x = random_vec(rng_, max_n * k);
        auto y0 = random_vec(rng_, max_n * m);
        for (int64_t n : {1, 2, 7, 8, 9, 16, 17, 31, 32, 33, 64}) {
          auto run = [&](Backend& be, int reps) {
            Dev d{be};
            Weight W = be.make_weight(t, w.bytes.data(), m, k);
            Weight B = be.make_weight(t, bias.bytes.data(), 1, m);
            Buffer dx = d.put(x);
            std::vector<float> r;
            for (int i = 0; i < reps; ++i) {
              Buffer o1 = d.put(std::vector<float>(n * m, kNaN));
              Buffer o2 = d.put(std::vector<float>(y0.begin(), y0.begin() + n * m));
              be.gemm(dx.as<float>(), n, W, &B, o1.as<float>(), false);
              be.gemm(dx.as<float>(), n, W, nullptr, o2.as<float>(), true);
              auto a = d.get<float>(o1, n * m);
              auto b = d.get<float>(o2, n * m);
              r.insert(r.end(), a.begin(), a.end());
              r.insert(r.end(), b.begin(), b.end());
            }
            return r;
          };
          const auto got = run(dut, 2);
          const auto ref = run(*ref_, 1);
          const size_t half = got.size() / 2;
          const std::vector<float> first(got.begin(), got.begin() + half);
          EXPECT_LT(rel_err(first, ref), 2e-5)
              << dtype_name(t) << " n " << n << " k " << k << " m " << m;
          EXPECT_EQ(0, std::memcmp(got.data(), got.data() + half, half * sizeof(float)))
              << "repeat differs: " << dtype_name(t) << " n " << n << " k " << k;
          // Batch invariance: the first row alone equals the first row of every batch.
          if (n > 1) {
            Dev d{dut};
            Weight W = dut.make_weight(t, w.bytes.data(), m, k);
            Buffer dx = d.put(x), o = d.put(std::vector<float>(m, kNaN));
            dut.gemm(dx.as<float>(), 1, W, nullptr, o.as<float>(), false);
            const auto alone = d.get<float>(o, m);
            Buffer ob = d.put(std::vector<float>(n * m, kNaN));
            dut.gemm(dx.as<float>(), n, W, nullptr, ob.as<float>(), false);
            const auto batch = d.get<float>(ob, m);
            EXPECT_EQ(0, std::memcmp(alone.data(), batch.data(), m * sizeof(float)))
                << "row 0 alone differs from row 0 of " << n << " rows, k " << k;
          }
        }
      }
    }
  }
}
#endif

TEST_P(Conformance, RopeWithLlama3ScalingAndLongPositions) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  for (int32_t hd : {128, 64}) {
    c.head_dim = hd;
    std::vector<float> inv = rope_inv_freq(c);
    const int32_t qh = 8, kh = 2;
    std::vector<int32_t> pos = {0, 1, 2, 17, 4095, 8191, 8192, 30000, 131071};
    const int64_t n = static_cast<int64_t>(pos.size());
    auto q = random_vec(rng_, n * qh * hd), k = random_vec(rng_, n * kh * hd);
    auto [ref, got] = both([&](Backend& be) {
      Dev d{be};
      Buffer dq = d.put(q), dk = d.put(k), dpos = d.put(pos), dinv = d.put(inv);
      RopeParams p{dinv.as<float>(), hd, qh, kh};
      be.rope(dq.as<float>(), dk.as<float>(), p, dpos.as<int32_t>(), n);
      auto r = d.get<float>(dq, q.size());
      auto rk = d.get<float>(dk, k.size());
      r.insert(r.end(), rk.begin(), rk.end());
      return r;
    });
    EXPECT_LT(rel_err(got, ref), 1e-5) << "head_dim " << hd;
  }
}

TEST_P(Conformance, SiluMul) {
  const int64_t n = 333, inter = 1000;
  auto g = random_vec(rng_, n * inter, 4.0), u = random_vec(rng_, n * inter);
  auto [ref, got] = both([&](Backend& be) {
    Dev d{be};
    Buffer dg = d.put(g), du = d.put(u);
    be.silu_mul(dg.as<float>(), du.as<float>(), n, inter, dg.as<float>());  // in place
    return d.get<float>(dg, g.size());
  });
  EXPECT_LT(rel_err(got, ref), 1e-6);
}

TEST_P(Conformance, PagedAttentionPrefillDecodeGqaWindow) {
  const std::vector<AttnCase> cases = {
      // decode: one query per sequence, long contexts (split along the keys)
      {32, 8, 128, 1, 0, {1, 700, 2049, 33}, 1},
      {8, 2, 64, 16, 0, {5000, 16, 17, 1}, 1},
      // prefill: every position queries (many rows, one split)
      {4, 4, 128, 1, 0, {300, 57}, 300},
      {8, 1, 96, 16, 0, {190, 1}, 190},
      // mixed chunk: the last 40 positions of each; sliding window
      {8, 2, 128, 4, 64, {500, 40, 1000}, 40},
      {6, 2, 256, 1, 0, {129, 3}, 3},
      {4, 2, 16, 2, 7, {64, 9}, 64},
      // tiles: runs of 8..16+ tokens, a partial last tile, a run shorter than a tile beside
      // decode tokens, sliding window across tile boundaries, GQA groups of 4
      {8, 2, 64, 16, 0, {37, 1, 24, 5}, 21},
      {16, 4, 128, 1, 45, {300, 100}, 77},
      {4, 4, 32, 3, 0, {9, 8, 1000}, 9},
      // long runs (the GEMM path): query chunks of 256 rows over 1,100 keys, a prefix already
      // cached (chunked prefill), GQA groups of 4 and 8, a window shorter than a chunk
      {16, 4, 128, 16, 0, {1100, 700, 1}, 1100},
      {8, 1, 64, 1, 0, {900, 300}, 500},
      {16, 4, 128, 16, 100, {800, 70}, 700},
      {4, 2, 80, 3, 0, {130, 129}, 129},
  };
  const char* names[] = {"", " (prefill tiles)", " (prefill runs)"};
  // A bf16 cache stores the same rounded keys on both backends, so the math still agrees to
  // fp32 accuracy.
  for (DType t : {DType::kF32, DType::kBF16})
    for (size_t i = 0; i < cases.size(); ++i)
      for (Hints h : {Hints::kNone, Hints::kTiles, Hints::kRuns}) {
        auto [ref, got] =
            both([&](Backend& be) { return run_attention(be, cases[i], 100 + i, h, t); });
        EXPECT_LT(rel_err(got, ref), 1e-5)
            << "case " << i << names[static_cast<int>(h)] << " " << dtype_name(t);
      }
}

// LoRA over scattered chunks: `ranks` per slot (0 = module untouched), tokens in segments.
struct LoraCase {
  std::vector<int32_t> ranks;
  int64_t in_dim, out_dim, chunk_elems;
  int32_t max_rank;  // v stride
  // (slot, tokens) per segment; slot -1 = base model; tokens 0 = an empty segment
  std::vector<std::pair<int32_t, int32_t>> segments;
};

// `modules` > 1: that many modules read the same x and tokens (module i has its own adapter
// rows, out_dim - 3i columns, and ranks rotated by i) through Backend::lora_group; the CPU's
// default runs them one by one, CUDA fuses them at decode. via_gemm_parts: the modules are the
// parts of one stacked bf16 weight, each carrying its LoRA into Backend::gemm_parts (CUDA runs
// the decode LoRA beside the GEMM).
std::vector<float> run_lora(Backend& be, const LoraCase& c, uint64_t seed, DType page_dtype,
                            int32_t modules = 1, bool group = false, bool via_gemm_parts = false) {
  Rng rng(seed);
  Dev d{be};
  const int32_t ns = static_cast<int32_t>(c.ranks.size());
  const int64_t cf = c.chunk_elems;
  const int64_t eb = static_cast<int64_t>(dtype_size(page_dtype));
  std::vector<int32_t> token_slot, seg_start, seg_slot;
  for (auto [slot, len] : c.segments) {
    seg_start.push_back(static_cast<int32_t>(token_slot.size()));
    seg_slot.push_back(slot);
    for (int32_t i = 0; i < len; ++i) token_slot.push_back(slot);
  }
  seg_start.push_back(static_cast<int32_t>(token_slot.size()));
  const int64_t n = static_cast<int64_t>(token_slot.size());
  auto x = random_vec(rng, static_cast<size_t>(n * c.in_dim));
  std::vector<Buffer> keep;  // every module's tables, alive until the ops ran
  Buffer dtok = d.put(token_slot), dss = d.put(seg_start), dsl = d.put(seg_slot), dx = d.put(x);
  std::vector<LoraModuleBatch> mods;
  std::vector<Buffer> dvs, dys;
  std::vector<size_t> v_len, y_len;
  for (int32_t m = 0; m < modules; ++m) {
    const int64_t out_dim = c.out_dim - 3 * m;
    std::vector<int32_t> ranks(c.ranks);
    std::rotate(ranks.begin(), ranks.begin() + m % ns, ranks.end());
    const int64_t a_row = (c.in_dim + cf - 1) / cf, b_row = (out_dim + cf - 1) / cf;
    int64_t total_chunks = 0;
    for (int32_t r : ranks) total_chunks += r * (a_row + b_row);
    // The chunks live in one pool in shuffled order, as adapter pages do.
    std::vector<int64_t> place(static_cast<size_t>(total_chunks));
    std::iota(place.begin(), place.end(), 0);
    for (size_t i = place.size() - 1; i > 0; --i)
      std::swap(place[i], place[static_cast<size_t>(rng.uniform() * static_cast<double>(i + 1))]);
    auto pool = random_vec(rng, static_cast<size_t>(std::max<int64_t>(1, total_chunks) * cf), 0.1);
    Buffer dpool;
    if (page_dtype == DType::kF32) {
      dpool = d.put(pool);
    } else {
      std::vector<uint16_t> p16(pool.size());
      for (size_t i = 0; i < pool.size(); ++i) p16[i] = f32_to_bf16(pool[i]);
      dpool = d.put(p16);
    }
    std::vector<const void*> chunks;
    std::vector<int64_t> a_first, bt_first;
    std::vector<float> scales;
    for (int32_t s = 0; s < ns; ++s) {
      const int32_t r = ranks[static_cast<size_t>(s)];
      a_first.push_back(static_cast<int64_t>(chunks.size()));
      for (int64_t i = 0; i < r * a_row; ++i)
        chunks.push_back(dpool.as<char>() + place[chunks.size()] * cf * eb);
      bt_first.push_back(static_cast<int64_t>(chunks.size()));
      for (int64_t i = 0; i < r * b_row; ++i)
        chunks.push_back(dpool.as<char>() + place[chunks.size()] * cf * eb);
      scales.push_back(static_cast<float>(0.5 + s + m));
    }
    auto y = random_vec(rng, static_cast<size_t>(n * out_dim));
    Buffer dchunks = d.put(chunks), dfa = d.put(a_first), dfb = d.put(bt_first),
           drank = d.put(ranks), dscale = d.put(scales);
    // Sentinels where no rank row is written; expand reads v only for j < rank.
    v_len.push_back(static_cast<size_t>(n * c.max_rank));
    y_len.push_back(y.size());
    dvs.push_back(d.put(std::vector<float>(v_len.back(), kNaN)));
    dys.push_back(d.put(y));
    LoraModuleBatch l;
    l.num_slots = ns;
    l.max_rank = c.max_rank;
    l.in_dim = c.in_dim;
    l.out_dim = out_dim;
    l.chunk_elems = cf;
    l.dtype = page_dtype;
    l.chunks = dchunks.as<const void*>();
    l.a_first = dfa.as<int64_t>();
    l.bt_first = dfb.as<int64_t>();
    l.rank = drank.as<int32_t>();
    l.scale = dscale.as<float>();
    l.token_slot = dtok.as<int32_t>();
    l.num_segments = static_cast<int32_t>(seg_slot.size());
    l.seg_start = dss.as<int32_t>();
    l.seg_slot = dsl.as<int32_t>();
    mods.push_back(l);
    for (Buffer* b : {&dpool, &dchunks, &dfa, &dfb, &drank, &dscale}) keep.push_back(*b);
  }
  if (via_gemm_parts) {
    int64_t rows = 0;
    for (const LoraModuleBatch& l : mods) rows += l.out_dim;
    const auto wv =
        encode(random_vec(rng, static_cast<size_t>(rows * c.in_dim), 0.05), DType::kBF16);
    const Weight w = be.make_weight(DType::kBF16, wv.data(), rows, c.in_dim);
    std::vector<GemmPart> parts;
    for (int32_t m = 0; m < modules; ++m) {
      const auto i = static_cast<size_t>(m);
      parts.push_back({mods[i].out_dim, nullptr, dys[i].as<float>(), &mods[i], dvs[i].as<float>()});
    }
    be.gemm_parts(dx.as<float>(), n, w, parts.data(), modules);
  } else if (modules == 1 && !group) {
    be.lora_shrink(dx.as<float>(), n, mods[0], dvs[0].as<float>());
    be.lora_expand(dvs[0].as<float>(), n, mods[0], dys[0].as<float>());
  } else {
    std::vector<float*> vs, ys;
    for (int32_t m = 0; m < modules; ++m) {
      vs.push_back(dvs[static_cast<size_t>(m)].as<float>());
      ys.push_back(dys[static_cast<size_t>(m)].as<float>());
    }
    be.lora_group(dx.as<float>(), n, mods.data(), modules, vs.data(), ys.data());
  }
  std::vector<float> r;
  for (int32_t m = 0; m < modules; ++m) {
    auto rv = d.get<float>(dvs[static_cast<size_t>(m)], v_len[static_cast<size_t>(m)]);
    auto ry = d.get<float>(dys[static_cast<size_t>(m)], y_len[static_cast<size_t>(m)]);
    r.insert(r.end(), rv.begin(), rv.end());
    r.insert(r.end(), ry.begin(), ry.end());
  }
  return r;
}

// n decode tokens, one segment each, cycling over `slots` slots and the base model (-1).
std::vector<std::pair<int32_t, int32_t>> decode_segments(int32_t n, int32_t slots) {
  std::vector<std::pair<int32_t, int32_t>> s;
  for (int32_t i = 0; i < n; ++i) s.push_back({(i * 5) % (slots + 1) - 1, 1});
  return s;
}

TEST_P(Conformance, LoraMixedAdaptersRanks8To128EmptySegmentsAndNoAdapter) {
  const std::vector<int32_t> ranks = {8, 128, 0, 16, 64, 32};
  const std::vector<LoraCase> cases = {
      // decode: one token per segment, slots mixed, base-model tokens in between
      {ranks,
       4096,
       1024,
       1024,
       128,
       {{0, 1},
        {1, 1},
        {-1, 1},
        {2, 1},
        {3, 1},
        {1, 1},
        {4, 1},
        {5, 1},
        {-1, 1},
        {0, 1},
        {5, 1},
        {1, 1}}},
      // prefill: long runs, empty segments, a run with no adapter, chunks not dividing rows
      {ranks,
       1000,
       1500,
       96,
       130,
       {{1, 70}, {0, 0}, {3, 33}, {-1, 20}, {4, 0}, {5, 47}, {0, 5}, {2, 9}, {1, 1}, {4, 64}}},
      // GQA-shaped k/v projection, chunk bigger than the row
      {ranks, 512, 128, 4096, 128, {{4, 40}, {5, 40}, {-1, 3}, {1, 17}}},
      // decode with widths and chunks not multiples of 4 (the kernels' scalar paths)
      {ranks, 1001, 1003, 77, 128, {{1, 1}, {3, 1}, {-1, 1}, {5, 1}, {0, 1}, {4, 1}}},
      // decode, rows longer than the float4 loop's stride with a tail (4100 = 4 x 1025)
      {ranks, 4100, 2052, 8192, 128, {{4, 1}, {1, 1}, {0, 1}, {3, 1}, {5, 1}}},
      // decode with small ranks only (the one-row-per-block shrink), vector and scalar paths
      {{8, 16, 0, 4, 16, 12},
       4096,
       1024,
       1024,
       16,
       {{0, 1}, {1, 1}, {-1, 1}, {2, 1}, {3, 1}, {5, 1}, {4, 1}, {1, 1}}},
      {{8, 16, 0, 4, 16, 12}, 1001, 1003, 77, 16, {{1, 1}, {3, 1}, {-1, 1}, {5, 1}, {0, 1}}},
      // decode with ranks up to 64 and odd ranks (the 16-rows-per-block shrink's partial groups)
      {{8, 64, 0, 16, 48, 33},
       4096,
       4096,
       4096,
       64,
       {{1, 1}, {4, 1}, {-1, 1}, {5, 1}, {0, 1}, {3, 1}, {1, 1}}},
      // a prompt admitted next to decode tokens: few long segments, so the segment shrink
      // splits in_dim over blocks (and in_dim not a multiple of the split span)
      {ranks, 4160, 4096, 4096, 128, {{-1, 64}, {1, 128}, {4, 37}}},
      {ranks, 11008, 512, 4096, 128, {{-1, 40}, {5, 100}}},
      // decode past the decode GEMM's 16 rows (cuBLAS's split path, LoRA added by its combine)
      {ranks, 4096, 1024, 1024, 128, decode_segments(40, 6)},
      {{8, 16, 0, 4, 16, 12}, 1024, 3000, 4096, 16, decode_segments(130, 6)},
  };
  for (DType t : {DType::kF32, DType::kBF16})
    for (size_t i = 0; i < cases.size(); ++i) {
      auto [ref, got] = both([&](Backend& be) { return run_lora(be, cases[i], 7 + i, t); });
      EXPECT_LT(rel_err(got, ref), 1e-5) << "case " << i << " " << dtype_name(t);
      // The same case as q, k and v (3 modules sharing x), as gate and up (2), and as o alone
      // through lora_group (1).
      for (int32_t modules : {3, 2, 1}) {
        auto [gref, ggot] =
            both([&](Backend& be) { return run_lora(be, cases[i], 7 + i, t, modules, true); });
        EXPECT_LT(rel_err(ggot, gref), 1e-5)
            << "case " << i << " " << dtype_name(t) << ", lora_group of " << modules;
        // The same modules as parts of one stacked weight, their LoRA through gemm_parts.
        auto [pref, pgot] = both(
            [&](Backend& be) { return run_lora(be, cases[i], 7 + i, t, modules, true, true); });
        EXPECT_LT(rel_err(pgot, pref), 2e-5)
            << "case " << i << " " << dtype_name(t) << ", gemm_parts of " << modules;
      }
    }
}

// The shared-basis op on `be`: groups of different K (full, diagonal, ku != kv), slots of
// each group plus an ordinary slot and a slot whose S is null (adapter without the module),
// tokens of all of them and of the base model interleaved; returns y after the op.
struct CompressedCase {
  int64_t in, out, n;
  std::vector<std::array<int32_t, 3>> groups;  // ku, kv, diag
  std::vector<int32_t> slot_group;             // -1: ordinary
  std::vector<bool> slot_null;                 // S null
};
std::vector<float> run_compressed(Backend& be, const CompressedCase& c, uint64_t seed) {
  Rng rng(seed);
  Dev d{be};
  std::vector<Buffer> keep;
  std::vector<const float*> vt, ut, slot_s;
  std::vector<int32_t> dims;
  int32_t k_max = 0;
  for (const auto& g : c.groups) {
    keep.push_back(d.put(random_vec(rng, static_cast<size_t>(g[1] * c.in), 0.1)));
    vt.push_back(keep.back().as<const float>());
    keep.push_back(d.put(random_vec(rng, static_cast<size_t>(g[0] * c.out), 0.1)));
    ut.push_back(keep.back().as<const float>());
    dims.insert(dims.end(), g.begin(), g.end());
    k_max = std::max({k_max, g[0], g[1]});
  }
  for (size_t s = 0; s < c.slot_group.size(); ++s) {
    const int32_t g = c.slot_group[s];
    if (g < 0 || c.slot_null[s]) {
      slot_s.push_back(nullptr);
      continue;
    }
    const auto& gd = c.groups[static_cast<size_t>(g)];
    keep.push_back(d.put(random_vec(rng, static_cast<size_t>(gd[2] ? gd[0] : gd[0] * gd[1]))));
    slot_s.push_back(keep.back().as<const float>());
  }
  std::vector<int32_t> token_slot, token_group;
  for (int64_t t = 0; t < c.n; ++t) {
    const auto s = static_cast<int32_t>(rng.uniform() * (c.slot_group.size() + 1)) - 1;
    token_slot.push_back(s);
    token_group.push_back(s < 0 ? -1 : c.slot_group[static_cast<size_t>(s)]);
  }
  const CompressedTiles tiles =
      build_compressed_tiles(token_group, static_cast<int32_t>(c.groups.size()));
  Buffer x = d.put(random_vec(rng, static_cast<size_t>(c.n * c.in)));
  Buffer y = d.put(random_vec(rng, static_cast<size_t>(c.n * c.out)));
  Buffer b_vt = d.put(vt), b_ut = d.put(ut), b_dims = d.put(dims), b_s = d.put(slot_s),
         b_sg = d.put(c.slot_group), b_ts = d.put(token_slot), b_rows = d.put(tiles.rows),
         b_tiles = d.put(tiles.tiles);
  Buffer scratch = d.put(std::vector<float>(static_cast<size_t>(c.n * k_max), kNaN));
  CompressedLoraBatch b;
  b.in_dim = c.in;
  b.out_dim = c.out;
  b.num_groups = static_cast<int32_t>(c.groups.size());
  b.num_slots = static_cast<int32_t>(c.slot_group.size());
  b.k_max = k_max;
  b.vt = b_vt.as<const float* const>();
  b.ut = b_ut.as<const float* const>();
  b.dims = b_dims.as<int32_t>();
  b.slot_s = b_s.as<const float* const>();
  b.slot_group = b_sg.as<int32_t>();
  b.token_slot = b_ts.as<int32_t>();
  b.rows = b_rows.as<int32_t>();
  b.num_tiles = tiles.num_tiles();
  b.tiles = b_tiles.as<int32_t>();
  b.scratch = scratch.as<float>();
  be.compressed_lora(x.as<float>(), c.n, b, y.as<float>());
  return d.get<float>(y, static_cast<size_t>(c.n * c.out));
}

TEST_P(Conformance, CompressedLoraGroupsDiagFullNullSAndOrdinarySlots) {
  const std::vector<CompressedCase> cases = {
      // decode-sized: a few tokens, every kind of slot
      {4096,
       4096,
       13,
       {{16, 16, 0}, {32, 32, 1}, {20, 8, 0}},
       {0, 1, -1, 2, 0, 2},
       {false, false, false, true, false, false}},
      // prefill-sized: partial tiles, widths not multiples of 32, one large K
      {1000,
       1500,
       300,
       {{64, 64, 0}, {128, 128, 1}},
       {0, 0, 1, -1, 1},
       {false, false, false, false, true}},
      // GQA-shaped k/v projection
      {4096, 1024, 70, {{32, 32, 0}}, {0, 0, 0, -1}, {false, false, false, false}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto [ref, got] = both([&](Backend& be) { return run_compressed(be, cases[i], 11 + i); });
    EXPECT_LT(rel_err(got, ref), 1e-5) << "case " << i;
  }
}

TEST_P(Conformance, LogSoftmaxSampleTopLogprobsPenalties) {
  for (int64_t vocab : {1000, 32007, 128256}) {
    const int64_t rows = 12;
    auto logits = random_vec(rng_, static_cast<size_t>(rows * vocab), 3.0);
    // Ties: row 0's max appears twice (greedy takes the lower id); row 1 has many equal values.
    logits[100] = logits[700] = 50.0f;
    for (int64_t i = 0; i < 50; ++i) logits[static_cast<size_t>(vocab + 3 * i)] = 9.0f;
    std::vector<SampleParams> params(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      SampleParams& p = params[static_cast<size_t>(r)];
      p.uniform = rng_.uniform();
      p.temperature = r < 2 ? 0.0f : 0.3f + 0.2f * static_cast<float>(r % 5);
      if (r % 3 == 0) p.top_k = 1 + static_cast<int32_t>(r * 7);
      if (r % 4 == 1) p.top_p = 0.9f;
      if (r % 5 == 2) p.min_p = 0.05f;
      if (r == 11) p.top_p = 0.5f, p.min_p = 0.01f, p.top_k = 40;
    }
    // Penalties on rows 2.. with some ids generated several times.
    std::vector<int32_t> indptr{0}, ids, counts;
    std::vector<float> pres, freq, rep;
    for (int64_t r = 0; r < rows; ++r) {
      for (int32_t j = 0; j < 30 && r >= 2; ++j) {
        ids.push_back(static_cast<int32_t>((r * 131 + j * 977) % vocab));
        counts.push_back(j % 3);
      }
      indptr.push_back(static_cast<int32_t>(ids.size()));
      pres.push_back(r % 2 ? 0.5f : 0.0f);
      freq.push_back(r % 3 ? 0.25f : 0.0f);
      rep.push_back(r % 4 ? 1.3f : 1.0f);
    }
    const int32_t k = 20;
    auto run = [&](Backend& be) {
      Dev d{be};
      Buffer dl = d.put(logits);
      Buffer lsm = d.put(std::vector<float>(logits.size(), kNaN));
      Buffer dptr = d.put(indptr), dids = d.put(ids), dcnt = d.put(counts), dpres = d.put(pres),
             dfreq = d.put(freq), drep = d.put(rep);
      PenaltyBatch pb{rows,
                      dptr.as<int32_t>(),
                      dids.as<int32_t>(),
                      dcnt.as<int32_t>(),
                      dpres.as<float>(),
                      dfreq.as<float>(),
                      drep.as<float>()};
      be.apply_penalties(dl.as<float>(), vocab, pb);
      be.log_softmax(dl.as<float>(), rows, vocab, lsm.as<float>());
      Buffer dp = d.put(params);
      Buffer toks = d.put(std::vector<int32_t>(static_cast<size_t>(rows), -7));
      Buffer lps = d.put(std::vector<float>(static_cast<size_t>(rows), kNaN));
      be.sample(dl.as<float>(), rows, vocab, dp.as<SampleParams>(), toks.as<int32_t>(),
                lps.as<float>());
      Buffer tids = d.put(std::vector<int32_t>(static_cast<size_t>(rows * k), -7));
      Buffer tlps = d.put(std::vector<float>(static_cast<size_t>(rows * k), kNaN));
      be.top_logprobs(dl.as<float>(), rows, vocab, k, tids.as<int32_t>(), tlps.as<float>());
      struct Out {
        std::vector<float> penalized, lsm, lps, tlps;
        std::vector<int32_t> toks, tids;
      } o;
      o.penalized = d.get<float>(dl, logits.size());
      o.lsm = d.get<float>(lsm, logits.size());
      o.toks = d.get<int32_t>(toks, static_cast<size_t>(rows));
      o.lps = d.get<float>(lps, static_cast<size_t>(rows));
      o.tids = d.get<int32_t>(tids, static_cast<size_t>(rows * k));
      o.tlps = d.get<float>(tlps, static_cast<size_t>(rows * k));
      return o;
    };
    auto ref = run(*ref_);
    auto got = run(*dut_);
    EXPECT_EQ(got.penalized, ref.penalized) << "vocab " << vocab;
    EXPECT_LT(rel_err(got.lsm, ref.lsm), 1e-6) << "vocab " << vocab;
    EXPECT_EQ(got.toks, ref.toks) << "vocab " << vocab;
    EXPECT_LT(rel_err(got.lps, ref.lps), 1e-5) << "vocab " << vocab;
    EXPECT_EQ(got.tids, ref.tids) << "vocab " << vocab;
    EXPECT_LT(rel_err(got.tlps, ref.tlps), 1e-5) << "vocab " << vocab;
  }
}

TEST_P(Conformance, SamplingMatchesCpuOverManyUniforms) {
  // One row, many draws: every uniform must map to the CPU's token (the sorted walk).
  const int64_t vocab = 5000, rows = 256;
  auto row = random_vec(rng_, static_cast<size_t>(vocab), 2.0);
  std::vector<float> logits;
  std::vector<SampleParams> params(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    logits.insert(logits.end(), row.begin(), row.end());
    SampleParams& p = params[static_cast<size_t>(r)];
    p.temperature = 1.0f;
    p.uniform = (static_cast<double>(r) + 0.5) / static_cast<double>(rows);
    if (r % 2) p.top_p = 0.8f;
    if (r % 3 == 0) p.min_p = 0.02f;
  }
  auto [ref, got] = both([&](Backend& be) {
    Dev d{be};
    Buffer dl = d.put(logits), dp = d.put(params);
    Buffer toks = d.put(std::vector<int32_t>(static_cast<size_t>(rows), -7));
    Buffer lps = d.put(std::vector<float>(static_cast<size_t>(rows), kNaN));
    be.sample(dl.as<float>(), rows, vocab, dp.as<SampleParams>(), toks.as<int32_t>(),
              lps.as<float>());
    return d.get<int32_t>(toks, static_cast<size_t>(rows));
  });
  EXPECT_EQ(got, ref);
}

INSTANTIATE_TEST_SUITE_P(Backends, Conformance, ::testing::Values("cuda"));

}  // namespace
}  // namespace ls
