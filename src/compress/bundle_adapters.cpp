// Materialising compressed adapters as rank-ku LoRA factors (fp32, as LoraAdapter holds them).
#include "compress/bundle_adapters.h"

namespace ls {

namespace compress {

LoraAdapter materialize(const Bundle& bundle, const BundleAdapter& adapter,
                        const std::string& bundle_dir) {
  LoraAdapter out;
  out.name = adapter.name;
  out.dir = bundle_dir + "#" + adapter.name;
  out.layers.resize(adapter.modules.size());
  const auto& bases_of = bundle.clusters[static_cast<size_t>(adapter.cluster)];
  for (size_t l = 0; l < adapter.modules.size(); ++l)
    for (size_t t = 0; t < kNumLoraTargets; ++t) {
      const auto& am = adapter.modules[l][t];
      if (!am) continue;
      const Bases& b = *bases_of[l][t];
      const int64_t ku = b.ku(), kv = b.kv(), in = b.v.rows, outd = b.u.rows;
      LoraModule m;
      m.rank = static_cast<int32_t>(ku);
      m.scale = 1.0f;
      m.a.assign(static_cast<size_t>(ku * in), 0.0f);
      m.bt.resize(static_cast<size_t>(ku * outd));
      const std::vector<double>& s = am->coeffs.s;
      for (int64_t r = 0; r < ku; ++r) {
        // A row r = sum_j S[r, j] V[:, j]  (diag: s_r V[:, r])
        std::vector<double> row(static_cast<size_t>(in), 0.0);
        for (int64_t j = 0; j < kv; ++j) {
          const double sij = bundle.mode == Mode::kDiag ? (j == r ? s[static_cast<size_t>(r)] : 0.0)
                                                        : s[static_cast<size_t>(r * kv + j)];
          if (sij == 0.0) continue;
          for (int64_t c = 0; c < in; ++c) row[static_cast<size_t>(c)] += sij * b.v.at(c, j);
        }
        for (int64_t c = 0; c < in; ++c)
          m.a[static_cast<size_t>(r * in + c)] = static_cast<float>(row[static_cast<size_t>(c)]);
        for (int64_t o = 0; o < outd; ++o)
          m.bt[static_cast<size_t>(r * outd + o)] = static_cast<float>(b.u.at(o, r));
      }
      out.max_rank = std::max(out.max_rank, m.rank);
      out.layers[l][t] = std::move(m);
    }
  return out;
}

}  // namespace compress

Result<std::vector<LoraAdapter>> load_bundle_adapters(const std::string& bundle_dir,
                                                      const ModelConfig& model) {
  LS_ASSIGN_OR_RETURN(compress::Bundle bundle, compress::read_bundle(bundle_dir));
  Status st = bundle.shape.check(model);
  if (!st.ok()) return st.with_context(bundle_dir);
  std::vector<LoraAdapter> out;
  out.reserve(bundle.adapters.size());
  for (const auto& a : bundle.adapters) out.push_back(compress::materialize(bundle, a, bundle_dir));
  return out;
}

}  // namespace ls
