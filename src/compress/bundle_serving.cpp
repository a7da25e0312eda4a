// Lays a bundle out in one backend buffer: per cluster and (layer, module) V^T then U^T, then
// per adapter and module its S, all fp32; each adapter's CompressedAdapter points into it.
#include "compress/bundle_serving.h"

#include <algorithm>

namespace ls {

namespace {

// The shared ownership of a served bundle: its device buffer and one marker per cluster (the
// cluster's identity for grouping tokens).
struct BundleMemory {
  Buffer buffer;
  std::vector<char> cluster_ids;
};

}  // namespace

int64_t served_bundle_bytes(const compress::Bundle& bundle) {
  int64_t floats = 0;
  for (const auto& cluster : bundle.clusters)
    for (const auto& layer : cluster)
      for (const auto& bases : layer)
        if (bases) floats += bases->kv() * bases->v.rows + bases->ku() * bases->u.rows;
  for (const auto& a : bundle.adapters)
    for (const auto& layer : a.modules)
      for (const auto& m : layer)
        if (m) floats += static_cast<int64_t>(m->coeffs.s.size());
  return floats * static_cast<int64_t>(sizeof(float));
}

Result<ServedBundle> serve_bundle(const compress::Bundle& bundle, const ModelConfig& model,
                                  Backend& backend) {
  LS_RETURN_IF_ERROR(bundle.shape.check(model));
  const auto layers = static_cast<size_t>(model.num_layers);
  for (const auto& cluster : bundle.clusters)
    for (const auto& layer : cluster)
      for (const auto& bases : layer)
        if (bases && (bases->ku() > kMaxServedBundleRank || bases->kv() > kMaxServedBundleRank))
          return invalid_argument("bundle rank " + std::to_string(bundle.rank) +
                                  " is above the largest servable K (" +
                                  std::to_string(kMaxServedBundleRank) + ")");
  // Host image of the buffer, and where each piece goes.
  std::vector<float> image;
  image.reserve(static_cast<size_t>(served_bundle_bytes(bundle) / 4));
  // [cluster][layer][target] offsets of V^T and U^T.
  std::vector<std::vector<std::array<std::pair<int64_t, int64_t>, kNumLoraTargets>>> base_at(
      bundle.clusters.size());
  for (size_t c = 0; c < bundle.clusters.size(); ++c) {
    base_at[c].resize(layers);
    for (size_t l = 0; l < layers; ++l)
      for (size_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& bases = bundle.clusters[c][l][t];
        if (!bases) continue;
        const int64_t in = bases->v.rows, out = bases->u.rows;
        base_at[c][l][t].first = static_cast<int64_t>(image.size());
        for (int64_t k = 0; k < bases->kv(); ++k)
          for (int64_t i = 0; i < in; ++i) image.push_back(static_cast<float>(bases->v.at(i, k)));
        base_at[c][l][t].second = static_cast<int64_t>(image.size());
        for (int64_t k = 0; k < bases->ku(); ++k)
          for (int64_t o = 0; o < out; ++o) image.push_back(static_cast<float>(bases->u.at(o, k)));
      }
  }
  std::vector<std::vector<std::array<int64_t, kNumLoraTargets>>> s_at(bundle.adapters.size());
  for (size_t a = 0; a < bundle.adapters.size(); ++a) {
    s_at[a].resize(layers);
    for (size_t l = 0; l < layers; ++l)
      for (size_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& m = bundle.adapters[a].modules[l][t];
        if (!m) continue;
        s_at[a][l][t] = static_cast<int64_t>(image.size());
        for (double v : m->coeffs.s) image.push_back(static_cast<float>(v));
      }
  }
  auto memory = std::make_shared<BundleMemory>();
  memory->buffer = backend.alloc(std::max<size_t>(1, image.size()) * sizeof(float));
  backend.upload(memory->buffer.data, image.data(), image.size() * sizeof(float));
  memory->cluster_ids.resize(std::max<size_t>(1, bundle.clusters.size()));
  const float* base = memory->buffer.as<const float>();

  ServedBundle out;
  out.device_bytes = static_cast<int64_t>(image.size() * sizeof(float));
  for (size_t a = 0; a < bundle.adapters.size(); ++a) {
    const compress::BundleAdapter& ba = bundle.adapters[a];
    const auto c = static_cast<size_t>(ba.cluster);
    auto comp = std::make_shared<CompressedAdapter>();
    comp->cluster = &memory->cluster_ids[c];
    comp->diag = bundle.mode == compress::Mode::kDiag;
    comp->layers.resize(layers);
    comp->owner = memory;
    auto res = std::make_shared<ResidentAdapter>();
    res->name = ba.name;
    res->layers.resize(layers);
    for (size_t l = 0; l < layers; ++l)
      for (size_t t = 0; t < kNumLoraTargets; ++t) {
        const auto& m = ba.modules[l][t];
        if (!m) continue;
        const compress::Bases& bases = *bundle.clusters[c][l][t];
        CompressedModule& cm = comp->layers[l][t];
        cm.vt = base + base_at[c][l][t].first;
        cm.ut = base + base_at[c][l][t].second;
        cm.s = base + s_at[a][l][t];
        cm.ku = static_cast<int32_t>(bases.ku());
        cm.kv = static_cast<int32_t>(bases.kv());
        comp->max_k = std::max({comp->max_k, cm.ku, cm.kv});
        res->used_elems += static_cast<int64_t>(m->coeffs.s.size());
      }
    res->max_rank = comp->max_k;
    res->compressed = std::move(comp);
    out.adapters.push_back(std::move(res));
  }
  return out;
}

Result<ServedBundle> serve_bundle_dir(const std::string& bundle_dir, const ModelConfig& model,
                                      Backend& backend) {
  LS_ASSIGN_OR_RETURN(compress::Bundle bundle, compress::read_bundle(bundle_dir));
  auto served = serve_bundle(bundle, model, backend);
  if (!served.ok()) return served.status().with_context(bundle_dir);
  return served;
}

}  // namespace ls
