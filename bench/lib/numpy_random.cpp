// numpy legacy distributions; see numpy_random.h. Each function mirrors numpy's arithmetic
// step for step (the same operations in the same order), so results match to the last bit on
// the same libm.
#include "numpy_random.h"

#include <cmath>

namespace ls::bench {

double NumpyLegacyRandom::next_double() {
  const int32_t a = static_cast<int32_t>(next_u32() >> 5);
  const int32_t b = static_cast<int32_t>(next_u32() >> 6);
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

double NumpyLegacyRandom::standard_exponential() {
  return -std::log(1.0 - next_double());
}

double NumpyLegacyRandom::power(double a) {
  return std::pow(1 - std::exp(-standard_exponential()), 1. / a);
}

int64_t NumpyLegacyRandom::randint(int64_t lo, int64_t hi) {
  // numpy draws rng = hi - 1 - lo through the 32-bit generator while rng fits 32 bits.
  const uint64_t rng = static_cast<uint64_t>(hi - 1 - lo);
  if (rng == 0) return lo;
  if (rng == 0xFFFFFFFFull) return lo + next_u32();
  uint64_t mask = rng;
  for (int shift : {1, 2, 4, 8, 16, 32}) mask |= mask >> shift;
  if (rng < 0xFFFFFFFFull) {
    uint32_t v;
    while ((v = next_u32() & static_cast<uint32_t>(mask)) > rng) {
    }
    return lo + v;
  }
  uint64_t v;  // 64-bit ranges: two 32-bit draws, high word first
  do {
    const uint64_t hi_word = next_u32();
    v = ((hi_word << 32) | next_u32()) & mask;
  } while (v > rng);
  return lo + static_cast<int64_t>(v);
}

double NumpyLegacyRandom::gauss() {
  if (has_gauss_) {
    has_gauss_ = false;
    const double t = gauss_;
    gauss_ = 0.0;
    return t;
  }
  double f, x1, x2, r2;
  do {
    x1 = 2.0 * next_double() - 1.0;
    x2 = 2.0 * next_double() - 1.0;
    r2 = x1 * x1 + x2 * x2;
  } while (r2 >= 1.0 || r2 == 0.0);
  f = std::sqrt(-2.0 * std::log(r2) / r2);
  gauss_ = f * x1;
  has_gauss_ = true;
  return f * x2;
}

double NumpyLegacyRandom::standard_gamma(double shape) {
  if (shape == 1.0) return standard_exponential();
  if (shape == 0.0) return 0.0;
  if (shape < 1.0) {  // Johnk / Ahrens-Dieter as numpy's legacy code
    for (;;) {
      const double u = next_double();
      const double v = standard_exponential();
      if (u <= 1.0 - shape) {
        const double x = std::pow(u, 1. / shape);
        if (x <= v) return x;
      } else {
        const double y = -std::log((1 - u) / shape);
        const double x = std::pow(1.0 - shape + shape * y, 1. / shape);
        if (x <= (v + y)) return x;
      }
    }
  }
  const double b = shape - 1. / 3.;  // Marsaglia and Tsang
  const double c = 1. / std::sqrt(9 * b);
  for (;;) {
    double x, v;
    do {
      x = gauss();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = next_double();
    if (u < 1.0 - 0.0331 * (x * x) * (x * x)) return b * v;
    if (std::log(u) < 0.5 * x * x + b * (1. - v + std::log(v))) return b * v;
  }
}

}  // namespace ls::bench
