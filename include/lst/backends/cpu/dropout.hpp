// SPDX-License-Identifier: MIT
/// @file dropout.hpp
/// @brief The CPU's dropout (ops/dropout.hpp): the counter-based mask drawn 16 (AVX-512) or 8 (AVX2) lanes at
/// a
///        time, the scalar definition's bits; chunks and rows split over threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../../core/random.hpp"
#include "../../ops/dropout.hpp"
#include "splitmix_lanes.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct DropoutKernel<Cpu> {
  template <class T>
  static void flat(std::uint64_t key, float p, T scale, const T* x, T* y, index_t n) {
    // The mask is a pure function of (key, i), so any split over threads gives it.
    for_each_chunk(n, 4096, [&](long begin, long end) {
      span(key, std::uint64_t(begin), p, scale, x + begin, y + begin, end - begin);
    });
  }
  template <class T>
  static void rows(std::uint64_t key, float p, T scale, const RowTable<T>& x, T* y,
                   const PackedSequences* packed) {
    by_rows(
        key, p, scale, x.rows, x.cols, [&x](index_t r) { return x.row[r]; }, y, packed);
  }
  template <class T>
  static void rows(std::uint64_t key, float p, T scale, const T* x, index_t R, index_t C, T* y,
                   const PackedSequences* packed) {
    by_rows(
        key, p, scale, R, C, [x, C](index_t r) { return x + r * C; }, y, packed);
  }
  template <class T>
  static void copy_rows(const RowTable<T>& x, T* y) {
    for (index_t r = 0; r < x.rows; ++r)
      if (x.row[r] != y + r * x.cols) std::copy_n(x.row[r], x.cols, y + r * x.cols);
  }

 private:
  /// y's R rows (C values each) from the rows row_of(r); rows run in parallel.
  template <class T, class RowOf>
  static void by_rows(std::uint64_t key, float p, T scale, index_t R, index_t C, const RowOf& row_of, T* y,
                      const PackedSequences* packed) {
    if (!packed || packed->count() == 0) {
      LST_PARALLEL_FOR_IF(R * C >= parallel_min_elements)
      for (index_t r = 0; r < R; ++r) span(key, std::uint64_t(r * C), p, scale, row_of(r), y + r * C, C);
      return;
    }
    const PackedSequences& rows = *packed;
    LST_PARALLEL_FOR_UNEVEN_IF(R * C >= parallel_min_elements)  // sequences of unequal lengths
    for (index_t b = 0; b < rows.count(); ++b)
      for (index_t t = 0; t < rows.length(b); ++t) {
        const index_t r = rows.first_row(b) + t;
        span(key, static_cast<std::uint64_t>(rows.origin(b, t) * C), p, scale, row_of(r), y + r * C, C);
      }
  }

  /// y[j] = x[j] * scale where element first + j of the stream `key` is kept, else 0, for j < n.
  template <class T>
  static void span(std::uint64_t key, std::uint64_t first, float p, T scale, const T* x, T* y, index_t n) {
    index_t j = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    if constexpr (std::is_same_v<T, float>) {
      // Sixteen draws at once: uniform_in_stream()'s SplitMix64 round in two vectors of eight 64-bit lanes.
      // Kept iff the draw's 24 bits u (as the float u 2^-24) are >= p, i.e. u >= ceil(p 2^24): the same mask
      // bit for bit, without the float conversion.
      const __m512i keep_from = _mm512_set1_epi64(static_cast<long long>(std::ceil(double(p) * 16777216.0)));
      const __m512i golden = _mm512_set1_epi64(static_cast<long long>(0x9e3779b97f4a7c15ull));
      const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
      const __m512 pscale = _mm512_set1_ps(scale);
      const auto kept = [&](std::uint64_t index) {  // lanes index .. index + 7
        __m512i z = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(index)), lanes);
        z = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(key)), _mm512_mullo_epi64(z, golden));
        z = _mm512_add_epi64(z, golden);  // mix64(key + index * golden)
        return _mm512_cmpge_epu64_mask(cpu::splitmix_draws24(z), keep_from);
      };
      for (; j + 16 <= n; j += 16) {
        const __mmask16 m =
            __mmask16(kept(first + std::uint64_t(j)) | (kept(first + std::uint64_t(j) + 8) << 8));
        _mm512_storeu_ps(y + j, _mm512_maskz_mul_ps(m, _mm512_loadu_ps(x + j), pscale));
      }
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
      // Eight draws at once in two vectors of four 64-bit lanes (splitmix_lanes.hpp). The first multiply,
      // index * golden, becomes an addition: lane l's z starts at key + (first + l + 1) golden and grows by 8
      // golden a step. The 24-bit draws (below 2^31, so the signed compare is exact) are packed into eight
      // 32-bit lanes; kept iff u > ceil(p 2^24) - 1, the scalar definition's mask bit for bit.
      constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ull;
      const auto lane_state = [&](std::uint64_t l) { return key + (first + l + 1) * golden; };
      __m256i z_lo =
          _mm256_set_epi64x(static_cast<long long>(lane_state(3)), static_cast<long long>(lane_state(2)),
                            static_cast<long long>(lane_state(1)), static_cast<long long>(lane_state(0)));
      __m256i z_hi =
          _mm256_set_epi64x(static_cast<long long>(lane_state(7)), static_cast<long long>(lane_state(6)),
                            static_cast<long long>(lane_state(5)), static_cast<long long>(lane_state(4)));
      const __m256i stride = _mm256_set1_epi64x(static_cast<long long>(8 * golden));
      const __m256i keep_above = _mm256_set1_epi32(static_cast<int>(std::ceil(double(p) * 16777216.0)) - 1);
      const __m256i even_dwords = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      const __m256 pscale = _mm256_set1_ps(scale);
      for (; j + 8 <= n; j += 8) {
        // The low dword of each 64-bit draw, lanes 0-3 from z_lo and 4-7 from z_hi.
        const __m256i lo = _mm256_permutevar8x32_epi32(cpu::splitmix_draws24(z_lo), even_dwords);
        const __m256i hi = _mm256_permutevar8x32_epi32(cpu::splitmix_draws24(z_hi), even_dwords);
        const __m256i u = _mm256_permute2x128_si256(lo, hi, 0x20);
        const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(u, keep_above));
        _mm256_storeu_ps(y + j, _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(x + j), pscale)));
        z_lo = _mm256_add_epi64(z_lo, stride);
        z_hi = _mm256_add_epi64(z_hi, stride);
      }
    }
#endif
    for (; j < n; ++j) y[j] = uniform_in_stream(key, first + std::uint64_t(j)) >= p ? x[j] * scale : T(0);
  }
};
}  // namespace ops

LST_NAMESPACE_END
