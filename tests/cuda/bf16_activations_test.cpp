// CudaBackendOptions::bf16_activations against the CPU reference (skipped without a GPU).
//
// GEMMs: with x rounded to bf16/f16 first, the CPU computes the same exact products with fp32
// accumulation, so cuBLAS's bf16-activation GEMMs (more than decode_gemm_max_rows rows) must
// equal the CPU on the rounded x to fp32 accuracy (2e-5), and must differ from the CPU on the
// unrounded x by about the rounding (checked too, so a path that silently stayed exact fails).
// Up to 16 rows the decode GEMM stays exact. Stacked weights go through the stacked GEMM below
// 512 rows and one GEMM per part from there, both with biases and with a LoRA on a part.
//
// Prefill LoRA: segment tiles on the tensor cores (bf16 operands), against the CPU at 1e-2.
//
// Attention: prefill runs over a bf16 cache take the flash kernel (q and the probabilities in
// bf16, fp32 accumulation). Against the CPU's fp32 softmax the relative error is a few 1e-3;
// the bound is 1e-2, and every case of the conformance list runs, including a head dim (256)
// the kernel does not take (it falls back to the exact path).
#include <gtest/gtest.h>

#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda/conformance_support.h"

namespace ls {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace)

class Bf16Activations : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
    CudaBackendOptions o;
    o.bf16_activations = true;
    auto made = make_cuda_backend(o);
    ASSERT_TRUE(made.ok()) << made.status().message();
    dut_ = std::move(made).value();
    ref_ = make_cpu_backend();
  }
  std::unique_ptr<Backend> dut_, ref_;
  Rng rng_{0xbf16};
};

std::vector<float> rounded(const std::vector<float>& x, DType t) {
  const auto e = encode(x, t);
  std::vector<float> out(x.size());
  convert_to_f32(t, e.data(), out.data(), x.size());
  return out;
}

TEST_F(Bf16Activations, GemmEqualsCpuOnRoundedActivations) {
  for (DType t : {DType::kBF16, DType::kF16}) {
    for (int64_t n : {1, 16, 17, 130, 600}) {
      const int64_t m = 301, k = 256;  // k % 32 == 0: up to 16 rows take the decode GEMM
      HostWeight w = host_weight(rng_, t, m * k, 0.05);
      HostWeight bias = host_weight(rng_, t, m, 1.0);
      auto x = random_vec(rng_, n * k);
      auto y0 = random_vec(rng_, n * m);
      auto run = [&](Backend& be, const std::vector<float>& xin) {
        return gemm_bias_and_accumulate(be, t, w, bias, xin, y0, n, m, k);
      };
      const auto got = run(*dut_, x);
      const auto exact = run(*ref_, x);
      const bool decode = n <= 16;  // the decode GEMM: exact fp32 activations
      const auto ref = decode ? exact : run(*ref_, rounded(x, t));
      EXPECT_LT(rel_err(got, ref), 2e-5) << dtype_name(t) << " n " << n;
      if (!decode) {
        EXPECT_GT(rel_err(got, exact), 1e-4) << dtype_name(t) << " n " << n << ": not rounded";
      }
    }
  }
}

TEST_F(Bf16Activations, StackedPartsWithBiasAndLoraEqualCpuOnRoundedActivations) {
  const DType t = DType::kBF16;
  const int64_t k = 256, rank = 8;
  const std::vector<int64_t> rows{96, 32, 32};
  for (int64_t n : {17, 64, 200, 512, 700}) {
    std::vector<HostWeight> ws, bs;
    for (int64_t r : rows) {
      ws.push_back(host_weight(rng_, t, r * k, 0.05));
      bs.push_back(host_weight(rng_, t, r, 1.0));
    }
    // One adapter (fp32 rows, one chunk per row) on the middle part, every token in slot 0.
    auto a = random_vec(rng_, rank * k, 0.1), bt = random_vec(rng_, rank * rows[1], 0.1);
    auto x = random_vec(rng_, n * k);
    auto run = [&](Backend& be, const std::vector<float>& xin) {
      Dev d{be};
      std::vector<Weight> parts, biases;
      for (size_t i = 0; i < rows.size(); ++i) {
        parts.push_back(be.make_weight(t, ws[i].bytes.data(), rows[i], k));
        biases.push_back(be.make_weight(t, bs[i].bytes.data(), 1, rows[i]));
      }
      const Weight stacked = be.stack_rows(parts.data(), static_cast<int32_t>(parts.size()));
      Buffer dx = d.put(xin), da = d.put(a), dbt = d.put(bt);
      std::vector<const void*> chunks;
      for (int64_t j = 0; j < rank; ++j) chunks.push_back(da.as<float>() + j * k);
      for (int64_t j = 0; j < rank; ++j) chunks.push_back(dbt.as<float>() + j * rows[1]);
      Buffer dchunks = d.put(chunks);
      Buffer first_a = d.put(std::vector<int64_t>{0}), first_bt = d.put(std::vector<int64_t>{rank});
      Buffer drank = d.put(std::vector<int32_t>{static_cast<int32_t>(rank)});
      Buffer dscale = d.put(std::vector<float>{0.5f});
      Buffer dslot = d.put(std::vector<int32_t>(static_cast<size_t>(n), 0));
      Buffer dv = d.put(std::vector<float>(static_cast<size_t>(n * rank), kNaN));
      LoraModuleBatch l;
      l.num_slots = 1;
      l.max_rank = static_cast<int32_t>(rank);
      l.in_dim = k;
      l.out_dim = rows[1];
      l.chunk_elems = std::max(k, rows[1]);
      l.dtype = DType::kF32;
      l.chunks = dchunks.as<const void*>();
      l.a_first = first_a.as<int64_t>();
      l.bt_first = first_bt.as<int64_t>();
      l.rank = drank.as<int32_t>();
      l.scale = dscale.as<float>();
      l.token_slot = dslot.as<int32_t>();
      std::vector<Buffer> outs;
      std::vector<GemmPart> gp;
      for (size_t i = 0; i < rows.size(); ++i) {
        outs.push_back(d.put(std::vector<float>(n * rows[i], kNaN)));
        gp.push_back({rows[i], &biases[i], outs.back().as<float>()});
      }
      gp[1].lora = &l;
      gp[1].lora_v = dv.as<float>();
      be.gemm_parts(dx.as<float>(), n, stacked, gp.data(), static_cast<int32_t>(gp.size()));
      std::vector<float> r;
      for (size_t i = 0; i < rows.size(); ++i) {
        auto o = d.get<float>(outs[i], n * rows[i]);
        r.insert(r.end(), o.begin(), o.end());
      }
      return r;
    };
    const auto got = run(*dut_, x);
    // The LoRA reads the fp32 x on the GPU, the reference's LoRA the rounded one: the LoRA
    // term (about a quarter of the output here) differs by its input's rounding, so the bound
    // against the rounded reference is 2e-3 (a missing LoRA term is off by ~0.3).
    const auto ref = run(*ref_, rounded(x, t));
    const auto exact = run(*ref_, x);
    EXPECT_LT(rel_err(got, ref), 2e-3) << "n " << n;
    EXPECT_LT(rel_err(got, exact), 2e-2) << "n " << n;
    EXPECT_GT(rel_err(got, exact), 1e-4) << "n " << n << ": not rounded";
  }
}

// Prefill LoRA (segment tiles) on the tensor cores: three adapters of ranks 16, 64 and 8, a
// run of base-model tokens, rows cut into 100-element chunks (a chunk boundary inside every
// 32-column step), out_dim not a multiple of the 64-column tile. x, v and the rows are rounded
// to bf16 there, so the bound against the CPU's fp32 result is 1e-2; above 1e-5 shows the
// bf16 path ran (the fp32 kernels land near 1e-6).
TEST_F(Bf16Activations, SegmentLoraOnTensorCoresAgainstCpu) {
  const int64_t in = 512, out = 390, chunk = 100;
  const std::vector<int32_t> ranks{16, 64, 8};
  const std::vector<std::pair<int32_t, int32_t>> segs{{0, 300}, {1, 200}, {-1, 50}, {2, 150}};
  int64_t n = 0;
  std::vector<int32_t> seg_start{0}, seg_slot, token_slot;
  for (auto [slot, len] : segs) {
    n += len;
    seg_start.push_back(static_cast<int32_t>(n));
    seg_slot.push_back(slot);
    token_slot.insert(token_slot.end(), static_cast<size_t>(len), slot);
  }
  const int32_t max_rank = 64;
  std::vector<std::vector<float>> a_rows, bt_rows;  // per slot: A [r, in], B^T [r, out]
  for (int32_t r : ranks) {
    a_rows.push_back(random_vec(rng_, static_cast<size_t>(r * in), 0.05));
    bt_rows.push_back(random_vec(rng_, static_cast<size_t>(r * out), 0.05));
  }
  const auto x = random_vec(rng_, static_cast<size_t>(n * in));
  const auto y0 = random_vec(rng_, static_cast<size_t>(n * out));
  auto run = [&](Backend& be) {
    Dev d{be};
    std::vector<Buffer> keep;
    std::vector<const void*> chunks;
    std::vector<int64_t> a_first, bt_first;
    // Each row of each matrix cut into chunks of `chunk` elements, every chunk its own buffer.
    auto put_rows = [&](const std::vector<float>& m, int64_t r, int64_t width) {
      for (int64_t j = 0; j < r; ++j)
        for (int64_t c0 = 0; c0 < width; c0 += chunk) {
          const auto b = m.begin() + j * width;
          keep.push_back(d.put(std::vector<float>(b + c0, b + std::min(width, c0 + chunk))));
          chunks.push_back(keep.back().data);
        }
    };
    for (size_t s = 0; s < ranks.size(); ++s) {
      a_first.push_back(static_cast<int64_t>(chunks.size()));
      put_rows(a_rows[s], ranks[s], in);
      bt_first.push_back(static_cast<int64_t>(chunks.size()));
      put_rows(bt_rows[s], ranks[s], out);
    }
    Buffer dchunks = d.put(chunks), da = d.put(a_first), db = d.put(bt_first);
    Buffer drank = d.put(ranks), dscale = d.put(std::vector<float>{0.5f, 2.0f, 1.0f});
    Buffer dslot = d.put(token_slot), dstart = d.put(seg_start), dsegslot = d.put(seg_slot);
    Buffer dx = d.put(x), dy = d.put(y0);
    Buffer dv = d.put(std::vector<float>(static_cast<size_t>(n * max_rank), 0.0f));
    LoraModuleBatch l;
    l.num_slots = static_cast<int32_t>(ranks.size());
    l.max_rank = max_rank;
    l.in_dim = in;
    l.out_dim = out;
    l.chunk_elems = chunk;
    l.dtype = DType::kF32;
    l.chunks = dchunks.as<const void*>();
    l.a_first = da.as<int64_t>();
    l.bt_first = db.as<int64_t>();
    l.rank = drank.as<int32_t>();
    l.scale = dscale.as<float>();
    l.token_slot = dslot.as<int32_t>();
    l.num_segments = static_cast<int32_t>(segs.size());
    l.seg_start = dstart.as<int32_t>();
    l.seg_slot = dsegslot.as<int32_t>();
    be.lora_shrink(dx.as<float>(), n, l, dv.as<float>());
    be.lora_expand(dv.as<float>(), n, l, dy.as<float>());
    return d.get<float>(dy, static_cast<size_t>(n * out));
  };
  auto got = run(*dut_), ref = run(*ref_);
  // Compare the LoRA terms (y - y0), not y, so the bound is on what the kernels computed.
  for (size_t i = 0; i < got.size(); ++i) got[i] -= y0[i], ref[i] -= y0[i];
  const double err = rel_err(got, ref);
  EXPECT_LT(err, 1e-2);
  EXPECT_GT(err, 1e-5) << "the fp32 kernels ran, not the tensor-core ones";
  for (int64_t t = 500; t < 550; ++t)  // the base-model run is left alone
    for (int64_t o = 0; o < out; ++o) ASSERT_EQ(got[static_cast<size_t>(t * out + o)], 0.0f);
  std::printf("[ lora     ] segment LoRA on the tensor cores: rel err %.3g\n", err);
}

TEST_F(Bf16Activations, FlashAttentionAgainstCpu) {
  const std::vector<AttnCase> cases = {
      {4, 4, 128, 1, 0, {300, 57}, 300},
      {8, 1, 96, 16, 0, {190, 1}, 190},
      {8, 2, 128, 4, 64, {500, 40, 1000}, 40},
      {6, 2, 256, 1, 0, {129, 3}, 3},
      {4, 2, 16, 2, 7, {64, 9}, 64},
      {8, 2, 64, 16, 0, {37, 1, 24, 5}, 21},
      {16, 4, 128, 1, 45, {300, 100}, 77},
      {4, 4, 32, 3, 0, {9, 8, 1000}, 9},
      {16, 4, 128, 16, 0, {1100, 700, 1}, 1100},
      {8, 1, 64, 1, 0, {900, 300}, 500},
      {16, 4, 128, 16, 100, {800, 70}, 700},
      {4, 2, 80, 3, 0, {130, 129}, 129},
      {2, 1, 48, 5, 200, {2100}, 2100},
      {2, 2, 112, 8, 0, {65, 64, 63}, 65},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ref = run_attention(*ref_, cases[i], 300 + i, Hints::kRuns, DType::kBF16);
    const auto got = run_attention(*dut_, cases[i], 300 + i, Hints::kRuns, DType::kBF16);
    const double err = rel_err(got, ref);
    EXPECT_LT(err, 1e-2) << "case " << i;
    std::printf("[ flash    ] case %zu: head dim %d, rel err %.3g\n", i, cases[i].head_dim, err);
  }
}

}  // namespace
}  // namespace ls
