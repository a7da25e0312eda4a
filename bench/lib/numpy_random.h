// numpy's legacy RandomState (np.random.seed / power / randint / gamma), bit for bit: S-LoRA's
// trace generator draws its workloads from it, so the same seed gives the same requests here.
// MT19937 is std::mt19937 (its output sequence is fixed by the C++ standard); the transforms
// follow numpy's legacy-distributions.c and distributions.c.
#pragma once

#include <cstdint>
#include <random>

namespace ls::bench {

class NumpyLegacyRandom {
 public:
  // np.random.seed(seed) for an integer seed in [0, 2^32): MT19937's init_genrand.
  explicit NumpyLegacyRandom(uint32_t seed) : mt_(seed) {}

  uint32_t next_u32() { return static_cast<uint32_t>(mt_()); }
  // 53-bit double in [0, 1): two draws, 27 + 26 bits (numpy's random_sample).
  double next_double();
  // np.random.standard_exponential
  double standard_exponential();
  // np.random.power(a): density a * x^(a-1) on [0, 1].
  double power(double a);
  // np.random.randint(lo, hi) with the default int64 dtype: masked rejection sampling.
  int64_t randint(int64_t lo, int64_t hi);
  // np.random.standard_normal: polar Box-Muller, the second value kept for the next call.
  double gauss();
  // np.random.standard_gamma(shape) and gamma(shape, scale).
  double standard_gamma(double shape);
  double gamma(double shape, double scale) { return scale * standard_gamma(shape); }

 private:
  std::mt19937 mt_;
  bool has_gauss_ = false;
  double gauss_ = 0.0;
};

}  // namespace ls::bench
