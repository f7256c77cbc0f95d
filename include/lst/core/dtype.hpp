// SPDX-License-Identifier: MIT
/// @file dtype.hpp
/// @brief Element types: f32 and f64 for compute, f16 and bf16 as storage formats (checkpoints, cached taps).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../config.hpp"

LST_NAMESPACE_BEGIN

/// IEEE 754 binary16, storage only: arithmetic converts to float first. Checkpoints and cached ladder inputs
/// use it to halve their bytes; the library never accumulates in it.
struct f16 {
  std::uint16_t bits = 0;
};
/// bfloat16 (the top half of a float), storage only, like f16.
struct bf16 {
  std::uint16_t bits = 0;
};

enum class DType { f32, f64, f16, bf16 };

inline const char* to_string(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
  }
  return "?";
}

inline constexpr std::size_t size_of(DType t) { return t == DType::f64 ? 8 : t == DType::f32 ? 4 : 2; }

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> : std::integral_constant<DType, DType::f32> {};
template <>
struct dtype_of<double> : std::integral_constant<DType, DType::f64> {};
template <>
struct dtype_of<f16> : std::integral_constant<DType, DType::f16> {};
template <>
struct dtype_of<bf16> : std::integral_constant<DType, DType::bf16> {};

namespace detail {
inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

/// Round to nearest even, NaN kept quiet (a plain truncation would bias every stored value toward zero).
inline bf16 to_bf16(float f) {
  std::uint32_t u = detail::float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>(u >> 16)};
}
inline float to_float(bf16 h) { return detail::bits_float(std::uint32_t(h.bits) << 16); }

/// float -> binary16 with round to nearest even, overflow to infinity, and gradual underflow to subnormals.
inline f16 to_f16(float f) {
  const std::uint32_t u = detail::float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{static_cast<std::uint16_t>(sign | 0x7e00u)};   // NaN
  if (abs >= 0x477ff000u) return f16{static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds to >= 65536: inf
  if (abs < 0x38800000u) {                    // below 2^-14: subnormal or zero in f16
    if (abs < 0x33000000u) return f16{sign};  // below half the smallest subnormal
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - int(abs >> 23);  // 14 + (113 - exponent)
    std::uint32_t v = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (v & 1u))) ++v;
    return f16{static_cast<std::uint16_t>(sign | v)};
  }
  std::uint32_t v = ((abs >> 13) - (112u << 10));  // rebias exponent 127 -> 15
  const std::uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) ++v;
  return f16{static_cast<std::uint16_t>(sign | v)};
}
inline float to_float(f16 h) {
  const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1fu, mant = h.bits & 0x3ffu;
  if (exp == 0x1f) return detail::bits_float(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return detail::bits_float(sign);
    // Subnormal: value = mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return detail::bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

LST_NAMESPACE_END
