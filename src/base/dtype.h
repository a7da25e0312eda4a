// Element types of stored weights and their conversions to fp32 (our math is always fp32).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ls {

enum class DType { kF32, kF16, kBF16, kI32, kI64 };

// Safetensors spelling ("F32", "BF16", ...); nullopt for types we do not load.
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::string_view dtype_name(DType t);
size_t dtype_size(DType t);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts `n` elements of type `t` at `src` to fp32.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace ls
