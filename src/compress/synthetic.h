// Synthetic LoRA factors for the compression tests, quality tables and the scale benchmark:
// rank-r updates whose rows lie in a subspace shared by every adapter made from the same
// generator (plus independent noise), or independent random ones. Generated in memory from
// seeds, so 1,000 adapters of a 7B-shaped model never need to exist on disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/bundle.h"
#include "compress/dense.h"
#include "model/lora_adapter.h"

namespace ls::compress {

class SubspaceGenerator {
 public:
  // shared_dim 0: independent random factors (noise is then ignored).
  SubspaceGenerator(int64_t in, int64_t out, int32_t shared_dim, double noise, uint64_t seed);
  // A [rank, in] and B^T [rank, out] of one adapter: A = C_a G_a + noise N, B^T likewise, rows
  // scaled to O(1/sqrt(width)).
  void make(int32_t rank, uint64_t adapter_seed, float* a, float* bt) const;

 private:
  int64_t in_, out_;
  int32_t shared_dim_;
  double noise_;
  Mat ga_, gb_;  // [shared_dim, in], [shared_dim, out]
};

// An in-memory adapter for `config`: every layer's `targets` at `rank`, each module from a
// generator seeded by (group_seed, layer, target), so adapters of one group share subspaces.
LoraAdapter synthetic_adapter(const ModelConfig& config, const std::string& name, int32_t rank,
                              const std::vector<LoraTarget>& targets, int32_t shared_dim,
                              double noise, uint64_t group_seed, uint64_t adapter_seed);

// A JD-Full bundle with the given adapter names and no source adapters: random bases of width
// K (ku = kv = K) per cluster and module of `targets`, random S per adapter (adapter i in
// cluster i % clusters). For serving benchmarks, whose cost depends only on the shapes; its
// adapters are not compressions of anything.
Bundle synthetic_bundle(const ModelConfig& config, const std::vector<std::string>& names, int32_t k,
                        int32_t clusters, const std::vector<LoraTarget>& targets, uint64_t seed);

}  // namespace ls::compress
