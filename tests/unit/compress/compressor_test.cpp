// Whole-set compression: clusters recover groups of adapters that share subspaces and cut the
// error, --add projection leaves the bundle's bases alone, the bundle round-trips through disk,
// materialised adapters reproduce U S V^T, and every bad input or corrupt bundle is one message.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "compress/bundle_adapters.h"
#include "compress/compressor.h"
#include "compress/synthetic.h"
#include "model/safetensors.h"
#include "support/test_support.h"

namespace ls::compress {
namespace {

using Adapters = std::vector<std::shared_ptr<const LoraAdapter>>;
using T = LoraTarget;

ModelConfig small_config() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 12;
  return c;
}

// `groups` groups of `per_group` adapters; a group shares a subspace of each module.
Adapters grouped(const ModelConfig& c, int groups, int per_group, int32_t rank, double noise) {
  Adapters out;
  for (int g = 0; g < groups; ++g)
    for (int i = 0; i < per_group; ++i) {
      const std::string name = "g" + std::to_string(g) + "_" + std::to_string(i);
      out.push_back(std::make_shared<const LoraAdapter>(synthetic_adapter(
          c, name, rank, {T::kQ, T::kV, T::kDown}, 6, noise, 100 + g, 1000 * g + i)));
    }
  return out;
}

double mean_error(const Bundle& b) {
  return error_report(b)["mean_rel_error"].get<double>();
}

TEST(Compress, ClustersRecoverGroupsAndCutTheError) {
  const ModelConfig c = small_config();
  Adapters ads = grouped(c, 3, 4, 4, 0.05);
  for (Mode mode : {Mode::kFull, Mode::kDiag}) {
    SCOPED_TRACE(mode_name(mode));
    double prev = 2;
    for (int32_t clusters : {1, 2, 3}) {
      CompressOptions o;
      o.mode = mode;
      o.rank = 6;
      o.clusters = clusters;
      auto b = compress_adapters(c, ads, o);
      ASSERT_TRUE(b.ok()) << b.status().message();
      const double e = mean_error(b.value());
      EXPECT_LT(e, prev) << "C=" << clusters;
      prev = e;
      if (clusters == 3 && mode == Mode::kFull) {
        EXPECT_LT(e, 0.05);
        for (int g = 0; g < 3; ++g)
          for (int i = 1; i < 4; ++i)
            EXPECT_EQ(b.value().adapters[static_cast<size_t>(4 * g + i)].cluster,
                      b.value().adapters[static_cast<size_t>(4 * g)].cluster);
      }
    }
  }
}

TEST(Compress, ErrorFallsWithK) {
  const ModelConfig c = small_config();
  Adapters ads = grouped(c, 1, 6, 4, 0.3);
  double prev = 2;
  for (int32_t k : {1, 3, 6, 12}) {
    CompressOptions o;
    o.rank = k;
    auto b = compress_adapters(c, ads, o);
    ASSERT_TRUE(b.ok());
    EXPECT_LT(mean_error(b.value()), prev) << "K=" << k;
    prev = mean_error(b.value());
  }
}

TEST(Compress, BundleRoundTripsAndMaterialisesUSVt) {
  const ModelConfig c = small_config();
  Adapters ads = grouped(c, 2, 2, 3, 0.5);
  for (Mode mode : {Mode::kFull, Mode::kDiag}) {
    SCOPED_TRACE(mode_name(mode));
    CompressOptions o;
    o.mode = mode;
    o.rank = 5;
    o.clusters = 2;
    auto b = compress_adapters(c, ads, o);
    ASSERT_TRUE(b.ok());
    const std::string dir = test::temp_dir("bundle") + "/b";
    ASSERT_TRUE(write_bundle(dir, b.value()).ok());
    auto back = read_bundle(dir);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back.value().adapters.size(), 4u);
    EXPECT_EQ(back.value().num_clusters(), 2);
    auto loaded = load_bundle_adapters(dir, c);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    ASSERT_EQ(loaded.value().size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      const LoraAdapter& m = loaded.value()[i];
      EXPECT_EQ(m.name, ads[i]->name);
      const BundleAdapter& ba = back.value().adapters[i];
      const Bases& bases = *b.value().clusters[static_cast<size_t>(ba.cluster)][1][6];
      const LoraModule& lm = *m.layers[1][6];  // down_proj of layer 1
      const Coeffs& co = b.value().adapters[i].modules[1][6]->coeffs;
      // B'A' = U S V^T entry by entry.
      const int64_t in = 80, out = 48, ku = bases.ku(), kv = bases.kv();
      double worst = 0, scale = 0;
      for (int64_t r = 0; r < out; ++r)
        for (int64_t cc = 0; cc < in; ++cc) {
          double want = 0, got = 0;
          for (int64_t p = 0; p < ku; ++p) {
            for (int64_t q = 0; q < kv; ++q) {
              const double s = mode == Mode::kDiag ? (p == q ? co.s[static_cast<size_t>(p)] : 0)
                                                   : co.s[static_cast<size_t>(p * kv + q)];
              want += bases.u.at(r, p) * s * bases.v.at(cc, q);
            }
            got += double(lm.bt[static_cast<size_t>(p * out + r)]) *
                   lm.a[static_cast<size_t>(p * in + cc)];
          }
          worst = std::max(worst, std::fabs(want - got));
          scale = std::max(scale, std::fabs(want));
        }
      EXPECT_LT(worst, 1e-5 * scale);
      EXPECT_EQ(lm.scale, 1.0f);
    }
  }
}

TEST(Compress, AddProjectsOntoExistingBasesWithoutRefit) {
  const ModelConfig c = small_config();
  Adapters ads = grouped(c, 1, 3, 2, 1.0);
  CompressOptions o;
  o.rank = 6;  // = sum of ranks: lossless
  auto b = compress_adapters(c, ads, o);
  ASSERT_TRUE(b.ok());
  // A new adapter whose factors mix the old adapters' rows lies inside the bases.
  LoraAdapter mix = *ads[0];
  mix.name = "mix";
  for (auto& layer : mix.layers)
    for (size_t t = 0; t < kNumLoraTargets; ++t) {
      if (!layer[t]) continue;
      const auto& other = *ads[2]->layers[&layer - &mix.layers[0]][t];
      for (size_t k = 0; k < layer[t]->a.size(); ++k) layer[t]->a[k] = 0.5f * layer[t]->a[k];
      for (size_t k = 0; k < layer[t]->bt.size(); ++k)
        layer[t]->bt[k] = layer[t]->bt[k] - 2.0f * other.bt[k];
    }
  auto added = add_adapters(b.value(), c, {std::make_shared<const LoraAdapter>(mix)});
  ASSERT_TRUE(added.ok()) << added.status().message();
  ASSERT_EQ(added.value().adapters.size(), 4u);
  const auto rep = error_report(added.value());
  EXPECT_LT(rep["adapters"][3]["max_rel_error"].get<double>(), 1e-10);
  EXPECT_EQ(added.value().clusters[0][0][0]->u.data, b.value().clusters[0][0][0]->u.data);
  // Unrelated adapters are not exact, and names must be new.
  Adapters fresh = grouped(c, 1, 1, 2, 1.0);
  auto dup = add_adapters(b.value(), c, fresh);
  EXPECT_TRUE(test::FailsWith(dup.status(), {"g0_0", "twice"}));
  auto other =
      std::make_shared<LoraAdapter>(synthetic_adapter(c, "other", 2, {T::kQ}, 0, 0, 999, 5));
  auto proj = add_adapters(b.value(), c, {other});
  ASSERT_TRUE(proj.ok());
  EXPECT_GT(error_report(proj.value())["adapters"][3]["max_rel_error"].get<double>(), 0.1);
  // A module that no cluster has bases for.
  auto gate =
      std::make_shared<LoraAdapter>(synthetic_adapter(c, "gate", 2, {T::kGate}, 0, 0, 999, 6));
  EXPECT_TRUE(test::FailsWith(add_adapters(b.value(), c, {gate}).status(),
                              {"gate", "gate_proj", "no cluster"}));
}

TEST(Compress, BadInputsFailWithMessages) {
  const ModelConfig c = small_config();
  Adapters ads = grouped(c, 1, 2, 2, 1.0);
  CompressOptions o;
  o.rank = 0;
  EXPECT_TRUE(test::FailsWith(compress_adapters(c, ads, o).status(), {"rank", "at least 1"}));
  o.rank = 4;
  o.clusters = 3;
  EXPECT_TRUE(test::FailsWith(compress_adapters(c, ads, o).status(), {"3 clusters", "2 adapters"}));
  o.clusters = 1;
  EXPECT_TRUE(test::FailsWith(compress_adapters(c, {}, o).status(), {"no adapters"}));
  Adapters twice = {ads[0], ads[0]};
  EXPECT_TRUE(test::FailsWith(compress_adapters(c, twice, o).status(), {"g0_0", "twice"}));
  ModelConfig other = c;
  other.hidden_size = 64;
  EXPECT_TRUE(test::FailsWith(compress_adapters(other, ads, o).status(), {"g0_0", "shape"}));
  auto b = compress_adapters(c, ads, o);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(test::FailsWith(add_adapters(b.value(), other, ads).status(), {"hidden_size"}));
}

// Rewrites bundle.safetensors through `edit` (which may drop, add or change tensors).
template <typename Edit>
void edit_tensors(const std::string& dir, Edit edit) {
  std::vector<TensorToWrite> out;
  {
    auto f = SafetensorsFile::open(dir + "/bundle.safetensors");
    ASSERT_TRUE(f.ok());
    for (const TensorRef& t : f.value().tensors())
      out.push_back(
          {t.name, *t.dtype, t.shape, std::vector<unsigned char>(t.data, t.data + t.bytes)});
  }
  edit(out);
  ASSERT_TRUE(write_safetensors(dir + "/bundle.safetensors", out).ok());
}

template <typename Edit>
void edit_json(const std::string& dir, Edit edit) {
  auto j = nlohmann::ordered_json::parse(test::read_file(dir + "/bundle.json"));
  edit(j);
  test::write_file(dir + "/bundle.json", j.dump());
}

TEST(Compress, CorruptBundlesFailWithMessages) {
  const ModelConfig c = small_config();
  CompressOptions o;
  o.rank = 3;
  auto b = compress_adapters(c, grouped(c, 1, 2, 2, 1.0), o);
  ASSERT_TRUE(b.ok());
  const std::string root = test::temp_dir("corrupt");
  int n = 0;
  auto fresh = [&] {
    const std::string d = root + "/b" + std::to_string(n++);
    EXPECT_TRUE(write_bundle(d, b.value()).ok());
    return d;
  };
  const std::string s0 = "adapter.0.layers.0.q_proj.S";
  EXPECT_TRUE(test::FailsWith(read_bundle(root + "/none").status(), {"bundle.json", "no such"}));
  {
    auto d = fresh();
    test::write_file(d + "/bundle.json", "{not json");
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"bundle.json"}));
  }
  {
    auto d = fresh();
    edit_json(d, [](auto& j) { j["format_version"] = 2; });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"format_version 2"}));
  }
  {
    auto d = fresh();
    edit_json(d, [](auto& j) { j["mode"] = "svd"; });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"mode", "svd"}));
  }
  {
    auto d = fresh();
    edit_json(d, [](auto& j) { j["adapters"][1]["cluster"] = 4; });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"g0_1", "cluster", "out of range"}));
  }
  {
    auto d = fresh();
    edit_json(d, [](auto& j) { j["adapters"][1]["name"] = "g0_0"; });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"g0_0", "twice"}));
  }
  {
    auto d = fresh();
    edit_tensors(d, [&](auto& ts) {
      std::erase_if(ts, [&](const TensorToWrite& t) { return t.name == s0; });
    });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"missing tensor", s0}));
  }
  {
    auto d = fresh();
    edit_tensors(d, [&](auto& ts) {
      for (auto& t : ts)
        if (t.name == s0) t.shape = {t.shape[1], t.shape[0], 1};
    });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {s0, "shape"}));
  }
  {
    auto d = fresh();
    edit_tensors(d, [&](auto& ts) {
      ts.push_back({"extra", DType::kF32, {1}, std::vector<unsigned char>(4, 0)});
    });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"unexpected tensor 'extra'"}));
  }
  {
    auto d = fresh();
    edit_tensors(d, [&](auto& ts) {
      for (auto& t : ts)
        if (t.name == s0) {
          const float nan = std::nanf("");
          std::memcpy(t.bytes.data(), &nan, 4);
        }
    });
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {s0, "NaN"}));
  }
  {
    auto d = fresh();
    test::write_file(d + "/bundle.safetensors", "garbage");
    EXPECT_TRUE(test::FailsWith(read_bundle(d).status(), {"bundle.safetensors"}));
  }
  {
    auto d = fresh();
    ModelConfig other = c;
    other.num_layers = 3;
    EXPECT_TRUE(test::FailsWith(load_bundle_adapters(d, other).status(), {"num_layers"}));
  }
}

}  // namespace
}  // namespace ls::compress
