// Uniform(-sqrt 3, sqrt 3) entries (unit variance; fast, and the distribution does not matter).
#include "compress/synthetic.h"

#include <algorithm>
#include <cmath>

namespace ls::compress {

namespace {
double unit(Rng& rng) {
  return (rng.uniform() * 2.0 - 1.0) * 1.7320508075688772;
}
void fill(Mat* m, Rng& rng) {
  for (double& v : m->data) v = unit(rng);
}
}  // namespace

SubspaceGenerator::SubspaceGenerator(int64_t in, int64_t out, int32_t shared_dim, double noise,
                                     uint64_t seed)
    : in_(in), out_(out), shared_dim_(shared_dim), noise_(noise) {
  if (shared_dim_ <= 0) return;
  Rng rng(seed);
  ga_ = Mat(shared_dim_, in_);
  gb_ = Mat(shared_dim_, out_);
  fill(&ga_, rng);
  fill(&gb_, rng);
}

void SubspaceGenerator::make(int32_t rank, uint64_t adapter_seed, float* a, float* bt) const {
  Rng rng(adapter_seed * 0x9e3779b97f4a7c15ull + 12345);
  auto emit = [&](const Mat& basis, int64_t width, float* dst) {
    const double row_scale = 1.0 / std::sqrt(static_cast<double>(width));
    if (shared_dim_ <= 0) {
      for (int64_t i = 0; i < rank * width; ++i) dst[i] = static_cast<float>(unit(rng) * row_scale);
      return;
    }
    Mat coef(rank, shared_dim_);
    fill(&coef, rng);
    Mat rows = matmul(coef, basis);
    const double c = row_scale / std::sqrt(static_cast<double>(shared_dim_));
    for (int64_t i = 0; i < rank * width; ++i)
      dst[i] = static_cast<float>((rows.data[static_cast<size_t>(i)] * c) +
                                  noise_ * row_scale * unit(rng));
  };
  emit(ga_, in_, a);
  emit(gb_, out_, bt);
}

LoraAdapter synthetic_adapter(const ModelConfig& config, const std::string& name, int32_t rank,
                              const std::vector<LoraTarget>& targets, int32_t shared_dim,
                              double noise, uint64_t group_seed, uint64_t adapter_seed) {
  LoraAdapter ad;
  ad.name = name;
  ad.dir = "synthetic:" + name;
  ad.max_rank = rank;
  ad.layers.resize(static_cast<size_t>(config.num_layers));
  for (int32_t l = 0; l < config.num_layers; ++l)
    for (LoraTarget t : targets) {
      const int64_t in = lora_in_dim(config, t), out = lora_out_dim(config, t);
      const uint64_t module_seed =
          group_seed * 1000003ull + static_cast<uint64_t>(l) * 131ull + static_cast<uint64_t>(t);
      SubspaceGenerator gen(in, out, shared_dim, noise, module_seed);
      LoraModule m;
      m.rank = rank;
      m.scale = 2.0f;
      m.a.resize(static_cast<size_t>(rank * in));
      m.bt.resize(static_cast<size_t>(rank * out));
      gen.make(rank, adapter_seed * 7919ull + module_seed, m.a.data(), m.bt.data());
      ad.layers[static_cast<size_t>(l)][static_cast<size_t>(t)] = std::move(m);
    }
  return ad;
}

Bundle synthetic_bundle(const ModelConfig& config, const std::vector<std::string>& names, int32_t k,
                        int32_t clusters, const std::vector<LoraTarget>& targets, uint64_t seed) {
  Bundle b;
  b.mode = Mode::kFull;
  b.rank = k;
  b.shape = BundleShape::of(config);
  const auto layers = static_cast<size_t>(config.num_layers);
  clusters = std::max(1, clusters);
  Rng rng(seed);
  auto fill = [&](Mat& m, double scale) {
    for (double& v : m.data) v = rng.normal() * scale;
  };
  b.clusters.resize(static_cast<size_t>(clusters));
  for (auto& cluster : b.clusters) {
    cluster.resize(layers);
    for (size_t l = 0; l < layers; ++l)
      for (LoraTarget t : targets) {
        const int64_t in = b.shape.in_dim(t), out = b.shape.out_dim(t);
        Bases bases;
        bases.mode = Mode::kFull;
        bases.u = Mat(out, std::min<int64_t>(k, out));
        bases.v = Mat(in, std::min<int64_t>(k, in));
        fill(bases.u, 1.0 / std::sqrt(static_cast<double>(out)));
        fill(bases.v, 1.0 / std::sqrt(static_cast<double>(in)));
        cluster[l][static_cast<size_t>(t)] = std::move(bases);
      }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    BundleAdapter a;
    a.name = names[i];
    a.source = "synthetic";
    a.cluster = static_cast<int32_t>(i % static_cast<size_t>(clusters));
    a.modules.resize(layers);
    for (size_t l = 0; l < layers; ++l)
      for (LoraTarget t : targets) {
        const Bases& bases = *b.clusters[static_cast<size_t>(a.cluster)][l][static_cast<size_t>(t)];
        AdapterModule m;
        m.source_rank = k;
        m.source_scale = 1.0;
        m.coeffs.s.resize(static_cast<size_t>(bases.ku() * bases.kv()));
        for (double& v : m.coeffs.s) v = rng.normal() * 0.1;
        a.modules[l][static_cast<size_t>(t)] = std::move(m);
      }
    b.adapters.push_back(std::move(a));
  }
  return b;
}

}  // namespace ls::compress
