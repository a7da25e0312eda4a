// dtype names/sizes and the bf16/f16 <-> f32 conversions: known bit patterns, round to nearest
// even (ties, subnormals, overflow), inf and NaN, exhaustive round trips over every 16-bit
// pattern, f32 -> half against an independent brute-force nearest-value reference, and
// convert_to_f32 from unaligned sources.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "base/dtype.h"
#include "base/rng.h"

namespace ls {
namespace {

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

uint32_t to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// IEEE binary16 value of a finite pattern, computed with ldexp (independent of the code under
// test).
double f16_value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

// The f16 pattern nearest to `f` (ties to the even pattern), by binary search over the
// monotonic positive patterns; overflow rounds as if 0x7c00 were the finite value 65536.
uint16_t f16_reference(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  auto value = [](uint32_t p) {
    return p == 0x7c00 ? 65536.0 : f16_value(static_cast<uint16_t>(p));
  };
  if (a >= 65536.0) return sign | 0x7c00;
  uint32_t lo = 0, hi = 0x7c00;  // value(lo) <= a < value(hi)
  while (hi - lo > 1) {
    uint32_t mid = (lo + hi) / 2;
    if (value(mid) <= a)
      lo = mid;
    else
      hi = mid;
  }
  const double dlo = a - value(lo), dhi = value(hi) - a;
  uint32_t p = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
  return static_cast<uint16_t>(sign | p);
}

// The bf16 pattern nearest to finite `f` (ties to even), measured in double.
uint16_t bf16_reference(float f) {
  const uint32_t b = to_bits(f);
  const uint32_t lo = b >> 16, hi = lo + 1;  // |value| of hi >= |value| of lo
  auto value = [](uint32_t p) {
    if ((p & 0x7fff) == 0x7f80) return std::ldexp((p & 0x8000) ? -1.0 : 1.0, 128);
    return static_cast<double>(from_bits(p << 16));
  };
  const double dlo = std::fabs(static_cast<double>(f) - value(lo));
  const double dhi = std::fabs(value(hi) - static_cast<double>(f));
  return static_cast<uint16_t>(dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo));
}

TEST(DType, NamesSizesAndSafetensorsSpelling) {
  struct Case {
    DType t;
    const char* name;
    size_t size;
  };
  for (const Case& c :
       {Case{DType::kF32, "F32", 4}, Case{DType::kF16, "F16", 2}, Case{DType::kBF16, "BF16", 2},
        Case{DType::kI32, "I32", 4}, Case{DType::kI64, "I64", 8}}) {
    EXPECT_EQ(dtype_name(c.t), c.name);
    EXPECT_EQ(dtype_size(c.t), c.size);
    auto parsed = dtype_from_safetensors(c.name);
    ASSERT_TRUE(parsed.has_value()) << c.name;
    EXPECT_EQ(*parsed, c.t);
  }
  for (const char* other : {"F64", "f32", "bf16", "U8", "BOOL", "F8_E4M3", "", "F32 "})
    EXPECT_FALSE(dtype_from_safetensors(other).has_value()) << "'" << other << "'";
}

TEST(Bf16, KnownPatterns) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x7f80), INFINITY);
  EXPECT_EQ(bf16_to_f32(0xff80), -INFINITY);
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
  EXPECT_EQ(bf16_to_f32(0x7f7f), from_bits(0x7f7f0000u));  // largest finite
  EXPECT_TRUE(std::signbit(bf16_to_f32(0x8000)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0xffc1)));
}

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between 0x3f80 and 0x3f81: ties go to the even 0x3f80.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 0x3f81 and 0x3f82: ties go to the even 0x3f82.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // just above the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fffu)), 0x3f80);  // just below the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0xbf818000u)), 0xbf82);  // sign does not change the rule
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f80ffffu)), 0x3f81);
  // The carry propagates into the exponent: 0x3fffffff rounds up to 2.0.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3fffffffu)), 0x4000);
  // Largest float is above the last tie before 2^128: overflows to inf as torch does.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f);  // below the tie: stays finite
  // f32 subnormals keep their top bits.
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000u)), 0x0001);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000);  // tie -> even 0
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);  // tie -> even 2
}

TEST(Bf16, NanStaysNan) {
  for (uint32_t bits : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fffffffu, 0xff800001u,
                        0x7f80ffffu, 0x7f808000u}) {
    uint16_t h = f32_to_bf16(from_bits(bits));
    EXPECT_TRUE(std::isnan(bf16_to_f32(h))) << std::hex << bits << " -> " << h;
    EXPECT_EQ(static_cast<uint32_t>(h & 0x8000), (bits >> 16) & 0x8000u)
        << "sign of NaN " << std::hex << bits;
  }
}

TEST(Bf16, ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    EXPECT_EQ(to_bits(f), h << 16);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << std::hex << h;
    } else {
      ASSERT_EQ(f32_to_bf16(f), static_cast<uint16_t>(h)) << std::hex << h;
    }
  }
}

TEST(Bf16, RandomFloatsMatchNearestReference) {
  Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = static_cast<uint32_t>(rng.next_u64());
    const float f = from_bits(bits);
    if (!std::isfinite(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), bf16_reference(f)) << std::hex << bits;
  }
}

TEST(F16, KnownPatterns) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0xfbff), -65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0200), std::ldexp(1.0f, -15));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f16_to_f32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfe00)));

  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::max()), 0x7c00);
}

TEST(F16, RoundsToNearestEven) {
  const float ulp1 = std::ldexp(1.0f, -10);            // spacing just above 1.0
  EXPECT_EQ(f32_to_f16(1.0f + ulp1 / 2), 0x3c00);      // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * ulp1 / 2), 0x3c02);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + ulp1 / 2 + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(f32_to_f16(1.0f + ulp1 / 2 - std::ldexp(1.0f, -20)), 0x3c00);
  EXPECT_EQ(f32_to_f16(-(1.0f + 3 * ulp1 / 2)), 0xbc02);
  EXPECT_EQ(f32_to_f16(2.0f - std::ldexp(1.0f, -12)), 0x4000);  // carry into the exponent
  // Overflow: 65520 is the tie between 65504 and 2^16, which rounds to even (inf).
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-65520.0f), 0xfc00);
  EXPECT_EQ(f32_to_f16(65505.0f), 0x7bff);
  // Subnormals, in units of 2^-24.
  const float tiny = std::ldexp(1.0f, -24);
  EXPECT_EQ(f32_to_f16(tiny / 2), 0x0000);      // tie -> even 0
  EXPECT_EQ(f32_to_f16(-tiny / 2), 0x8000);     // keeps its sign
  EXPECT_EQ(f32_to_f16(3 * tiny / 2), 0x0002);  // tie -> even 2
  EXPECT_EQ(f32_to_f16(5 * tiny / 2), 0x0002);  // tie -> even 2
  EXPECT_EQ(f32_to_f16(tiny / 2 * 1.001f), 0x0001);
  EXPECT_EQ(f32_to_f16(tiny / 4), 0x0000);
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -149)), 0x0000);  // f32 subnormal input
  EXPECT_EQ(f32_to_f16(1023.5f * tiny), 0x0400);          // largest subnormal + 1/2: tie -> 0x0400
  EXPECT_EQ(f32_to_f16(1022.5f * tiny), 0x03fe);          // tie -> even 0x3fe
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -30)), 0x0400);
}

TEST(F16, NanStaysNan) {
  for (uint32_t bits : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fffffffu, 0x7f802000u}) {
    uint16_t h = f32_to_f16(from_bits(bits));
    EXPECT_EQ(h & 0x7c00, 0x7c00) << std::hex << bits;
    EXPECT_NE(h & 0x03ff, 0) << std::hex << bits << ": NaN must not become inf";
  }
}

TEST(F16, ExhaustiveDecodeAndRoundTrip) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t p = static_cast<uint16_t>(h);
    const float f = f16_to_f32(p);
    const double ref = f16_value(p);
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), ref) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    ASSERT_EQ(f32_to_f16(f), p) << std::hex << h;
  }
}

TEST(F16, RandomFloatsMatchNearestReference) {
  Rng rng(11);
  for (int i = 0; i < 100000; ++i) {
    // Exponents that cover zero-flush, subnormal, normal and overflow ranges of f16.
    const int e = static_cast<int>(rng.uniform() * 50) - 32;
    const float mant = static_cast<float>(1.0 + rng.uniform());
    float f = std::ldexp(mant, e) * (rng.uniform() < 0.5 ? -1.0f : 1.0f);
    ASSERT_EQ(f32_to_f16(f), f16_reference(f)) << f;
  }
  // Exact ties between every pair of neighbouring finite f16 values (f32 holds them exactly).
  for (uint32_t p = 0; p < 0x7bff; ++p) {
    const float mid = static_cast<float>(
        (f16_value(static_cast<uint16_t>(p)) + f16_value(static_cast<uint16_t>(p + 1))) / 2);
    const uint16_t even = static_cast<uint16_t>((p & 1) ? p + 1 : p);
    ASSERT_EQ(f32_to_f16(mid), even) << std::hex << p;
    ASSERT_EQ(f32_to_f16(-mid), even | 0x8000) << std::hex << p;
  }
}

TEST(ConvertToF32, ReadsUnalignedSourcesOfEveryFloatType) {
  Rng rng(3);
  const size_t n = 37;
  std::vector<float> values(n);
  for (auto& v : values) v = static_cast<float>(rng.normal() * 100.0 + 0.5);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    const size_t es = dtype_size(t);
    for (size_t offset : {0u, 1u, 2u, 3u}) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " offset " + std::to_string(offset));
      std::vector<unsigned char> raw(n * es + 8, 0xab);
      std::vector<float> expected(n);
      for (size_t i = 0; i < n; ++i) {
        unsigned char* dst = raw.data() + offset + i * es;
        if (t == DType::kF32) {
          std::memcpy(dst, &values[i], 4);
          expected[i] = values[i];
        } else {
          uint16_t h = t == DType::kF16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
          std::memcpy(dst, &h, 2);
          expected[i] = t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
      }
      std::vector<float> out(n + 1, -7.0f);
      convert_to_f32(t, raw.data() + offset, out.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], expected[i]) << "element " << i;
      EXPECT_EQ(out[n], -7.0f) << "wrote past the end";
      if (t != DType::kF32) {
        for (size_t i = 0; i < n; ++i)
          EXPECT_NEAR(out[i], values[i], std::fabs(values[i]) * (t == DType::kF16 ? 1e-3 : 8e-3));
      }
    }
  }
  // n == 0 touches nothing.
  float sentinel = 5.0f;
  convert_to_f32(DType::kBF16, nullptr, &sentinel, 0);
  EXPECT_EQ(sentinel, 5.0f);
}

TEST(ConvertToF32DeathTest, IntegerTypesAreAnInvariantViolation) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  int32_t src[2] = {1, 2};
  float dst[2];
  EXPECT_DEATH(convert_to_f32(DType::kI32, src, dst, 2), "convert_to_f32 on an integer type");
}

}  // namespace
}  // namespace ls
