// SPDX-License-Identifier: MIT
/// @file half.hpp
/// @brief The CPU's bulk half-precision conversions (ops/half.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "../../ops/half.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct HalfKernel<Cpu> {
  /// Bulk conversions for hot loops (saved ladder inputs, the tap cache): the same values as to_f16 / to_bf16
  /// / to_float element by element, through the F16C instructions where the compiler targets them (a NaN then
  /// keeps its top payload bits instead of becoming the canonical quiet NaN). The bf16 loops are branch-free
  /// so that the compiler vectorises them.
  static void floats_to_f16(const float* in, std::uint16_t* out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(
          reinterpret_cast<__m128i*>(out + i),
          _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; ++i) out[i] = to_f16(in[i]).bits;
  }
  static void f16_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
#endif
    for (; i < n; ++i) out[i] = to_float(f16{in[i]});
  }
  static void floats_to_bf16(const float* in, std::uint16_t* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t u = detail::float_bits(in[i]);
      const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet_nan = (u >> 16) | 0x40u;
      out[i] = static_cast<std::uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
    }
  }
  static void bf16_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = detail::bits_float(std::uint32_t(in[i]) << 16);
  }
};
}  // namespace ops

LST_NAMESPACE_END
