// SPDX-License-Identifier: MIT
/// @file splitmix_lanes.hpp
/// @brief uniform_in_stream()'s draws (core/random.hpp: SplitMix64's finaliser, top 24 bits) in 64-bit SIMD
///        lanes, for the counter-based masks of dropout and attention dropout.
#pragma once

#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../../config.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

#if defined(__AVX512F__) && defined(__AVX512DQ__)
/// The 24-bit draws of eight SplitMix64 states z (each key + (index + 1) golden): (z ^ z >> 30) m1,
/// (.. ^ .. >> 27) m2, .. ^ .. >> 31, its top 24 bits.
inline __m512i splitmix_draws24(__m512i z) {
  const __m512i m1 = _mm512_set1_epi64(static_cast<long long>(0xbf58476d1ce4e5b9ull));
  const __m512i m2 = _mm512_set1_epi64(static_cast<long long>(0x94d049bb133111ebull));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
  return _mm512_srli_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 31)), 40);
}
#elif defined(__AVX2__)
/// The low 64 bits of z c per lane: AVX2 has no 64-bit multiply, so three 32 x 32 -> 64-bit products.
inline __m256i mul_low_epi64(__m256i z, std::uint64_t c) {
  const __m256i c_lo = _mm256_set1_epi64x(static_cast<long long>(c & 0xffffffffull));
  const __m256i c_hi = _mm256_set1_epi64x(static_cast<long long>(c >> 32));
  const __m256i cross =
      _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(z, 32), c_lo), _mm256_mul_epu32(z, c_hi));
  return _mm256_add_epi64(_mm256_mul_epu32(z, c_lo), _mm256_slli_epi64(cross, 32));
}
/// The 24-bit draws of four SplitMix64 states z, as the AVX-512 version above.
inline __m256i splitmix_draws24(__m256i z) {
  z = mul_low_epi64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xbf58476d1ce4e5b9ull);
  z = mul_low_epi64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94d049bb133111ebull);
  return _mm256_srli_epi64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 31)), 40);
}
#endif

}  // namespace cpu
LST_NAMESPACE_END
