// The CPU backend's shared-basis LoRA op against a double-precision reference: a JD-Full and a
// JD-Diag bundle with two clusters, tokens of several adapters (and of none) interleaved in one
// batch; y += U_g S_t V_g^T x_t must match, and equal the materialised LoRA's B'(A' x).
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "compress/bundle_adapters.h"
#include "compress/compressor.h"
#include "compress/synthetic.h"

namespace ls::compress {
namespace {

ModelConfig config() {
  ModelConfig c;
  c.hidden_size = 40;
  c.intermediate_size = 64;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 10;
  return c;
}

std::vector<float> to_f32(const std::vector<double>& v) {
  return {v.begin(), v.end()};
}

TEST(CompressedLoraOp, CpuMatchesReferenceAndMaterialisedLora) {
  const ModelConfig c = config();
  std::vector<std::shared_ptr<const LoraAdapter>> ads;
  for (int i = 0; i < 4; ++i)
    ads.push_back(std::make_shared<const LoraAdapter>(synthetic_adapter(
        c, "a" + std::to_string(i), 3, {LoraTarget::kDown}, 5, 0.2, 10 + (i % 2), i)));
  auto backend = make_cpu_backend();
  for (Mode mode : {Mode::kFull, Mode::kDiag}) {
    SCOPED_TRACE(mode_name(mode));
    CompressOptions o;
    o.mode = mode;
    o.rank = 4;
    o.clusters = 2;
    auto b = compress_adapters(c, ads, o);
    ASSERT_TRUE(b.ok()) << b.status().message();
    const Bundle& bundle = b.value();
    const int64_t in = 64, out = 40;
    const size_t l = 0, t = static_cast<size_t>(LoraTarget::kDown);
    // Group tables: V^T and U^T per cluster in fp32.
    std::vector<std::vector<float>> vt(2), ut(2);
    std::vector<const float*> vt_p, ut_p;
    std::vector<int32_t> dims;  // ku, kv, diag per group
    for (size_t g = 0; g < 2; ++g) {
      const Bases& bs = *bundle.clusters[g][l][t];
      for (int64_t k = 0; k < bs.kv(); ++k)
        for (int64_t i = 0; i < in; ++i) vt[g].push_back(static_cast<float>(bs.v.at(i, k)));
      for (int64_t k = 0; k < bs.ku(); ++k)
        for (int64_t o2 = 0; o2 < out; ++o2) ut[g].push_back(static_cast<float>(bs.u.at(o2, k)));
      vt_p.push_back(vt[g].data());
      ut_p.push_back(ut[g].data());
      dims.insert(dims.end(), {static_cast<int32_t>(bs.ku()), static_cast<int32_t>(bs.kv()),
                               mode == Mode::kDiag ? 1 : 0});
    }
    // Slots: adapters 0..3 then slot 4, an ordinary LoRA (no group); tokens interleaved, some
    // on the base model.
    const std::vector<int> token_adapter = {2, 0, -1, 1, 3, 3, 0, -1, 2, 1, 4,
                                            0, 0, 0,  0, 0, 0, 0, 0,  0, 2, 1};
    const auto n = static_cast<int64_t>(token_adapter.size());
    std::vector<std::vector<float>> s_f32(4);
    std::vector<const float*> slot_s;
    std::vector<int32_t> slot_group, token_slot, token_group;
    for (size_t a = 0; a < 4; ++a) {
      s_f32[a] = to_f32(bundle.adapters[a].modules[l][t]->coeffs.s);
      slot_s.push_back(s_f32[a].data());
      slot_group.push_back(bundle.adapters[a].cluster);
    }
    slot_s.push_back(nullptr);
    slot_group.push_back(-1);
    for (int a : token_adapter) {
      token_slot.push_back(a);
      token_group.push_back(a < 0 ? -1 : slot_group[static_cast<size_t>(a)]);
    }
    const CompressedTiles tiles = build_compressed_tiles(token_group, 2);
    Rng rng(3);
    std::vector<float> x(static_cast<size_t>(n * in)), y(static_cast<size_t>(n * out));
    for (float& v : x) v = static_cast<float>(rng.normal());
    for (float& v : y) v = static_cast<float>(rng.normal());
    const std::vector<float> y0 = y;
    std::vector<float> scratch(static_cast<size_t>(n * 4));
    CompressedLoraBatch batch;
    batch.in_dim = in;
    batch.out_dim = out;
    batch.num_groups = 2;
    batch.num_slots = static_cast<int32_t>(slot_s.size());
    batch.k_max = 4;
    batch.vt = vt_p.data();
    batch.ut = ut_p.data();
    batch.dims = dims.data();
    batch.slot_s = slot_s.data();
    batch.slot_group = slot_group.data();
    batch.token_slot = token_slot.data();
    batch.rows = tiles.rows.data();
    batch.num_tiles = tiles.num_tiles();
    batch.tiles = tiles.tiles.data();
    batch.scratch = scratch.data();
    backend->compressed_lora(x.data(), n, batch, y.data());
    for (int64_t tok = 0; tok < n; ++tok) {
      const int a = token_adapter[static_cast<size_t>(tok)];
      for (int64_t o2 = 0; o2 < out; ++o2) {
        double want = y0[static_cast<size_t>(tok * out + o2)];
        if (a >= 0 && a < 4) {
          const BundleAdapter& ba = bundle.adapters[static_cast<size_t>(a)];
          const LoraAdapter lora = materialize(bundle, ba, "test");
          const LoraModule& m = *lora.layers[l][t];
          for (int32_t r = 0; r < m.rank; ++r) {
            double ax = 0;
            for (int64_t i = 0; i < in; ++i)
              ax += double(m.a[static_cast<size_t>(r * in + i)]) *
                    x[static_cast<size_t>(tok * in + i)];
            want += ax * m.bt[static_cast<size_t>(r * out + o2)];
          }
        }
        EXPECT_NEAR(y[static_cast<size_t>(tok * out + o2)], want, 1e-4 * (1 + std::fabs(want)))
            << "token " << tok << " out " << o2;
      }
    }
  }
}

}  // namespace
}  // namespace ls::compress
