// SPDX-License-Identifier: MIT
/// @file random.hpp
/// @brief Counter-based random numbers: the same (seed, stream, index) gives the same value on any backend.
///
/// Dropout masks are recomputed in backward from (seed, step, element) instead of being stored, which costs
/// no memory and is reproducible across runs, thread counts and devices.
#pragma once

#include <cmath>
#include <cstdint>

#include "../config.hpp"

LST_NAMESPACE_BEGIN

/// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective mixer with full avalanche.
LST_HOST_DEVICE inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// The key of stream `stream` under `seed`: what uniform_in_stream() draws from. Computing it once per stream
/// leaves one mixing round per element (dropout's hot loop).
LST_HOST_DEVICE inline std::uint64_t stream_key(std::uint64_t seed, std::uint64_t stream) {
  return mix64(seed ^ mix64(stream));
}

/// Element `index` of the stream keyed `key` as a uniform float in [0, 1): the index-th SplitMix64 output
/// from state `key` (a full-avalanche mix of key + index * golden ratio), 24 random bits, exact in float.
LST_HOST_DEVICE inline float uniform_in_stream(std::uint64_t key, std::uint64_t index) {
  const std::uint64_t h = mix64(key + index * 0x9e3779b97f4a7c15ull);
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

/// A uniform float in [0, 1) determined by (seed, stream, index).
LST_HOST_DEVICE inline float uniform_at(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return uniform_in_stream(stream_key(seed, stream), index);
}

/// A sequential generator for initialisation and shuffling (SplitMix64 stream).
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : m_state(seed) {}
  std::uint64_t next_u64() { return mix64(m_state++); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal by Box-Muller (one of the pair is dropped: simplicity over speed, init is not hot).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log() stays finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  /// Uniform integer in [0, n) for 0 < n < 2^32 (Lemire's multiply-shift on 32 random bits; bias < n / 2^32).
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(((next_u64() >> 32) * n) >> 32); }

 private:
  std::uint64_t m_state;
};

LST_NAMESPACE_END
