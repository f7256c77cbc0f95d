// SPDX-License-Identifier: MIT
/// @file dropout.hpp
/// @brief Inverted dropout (Srivastava et al. 2014) with a counter-based mask: nothing stored, fully
/// reproducible.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../core/threads.hpp"
#include "packed_sequences.hpp"

LST_NAMESPACE_BEGIN

/// Element i of the call at `step` is kept iff uniform(seed, step, i) >= p; kept elements are scaled by
/// 1 / (1 - p) so that inference needs no rescaling. Backward recomputes the same mask from (seed, step),
/// so the context is two integers, not a (B, T, C) mask. Each Dropout needs its own seed (derive it from the
/// layer index) and each training step its own `step`.
template <class T, class Backend = Cpu>
class Dropout {
 public:
  struct Context {
    std::uint64_t step = 0;
    bool active = false;   // false in inference mode or with p = 0: backward is the identity
    PackedSequences rows;  // packed sequences taking their padded batch's masks (none: the tensor itself)
  };

  Dropout(double p, std::uint64_t seed, std::string name = "dropout")
      : m_p(p), m_seed(seed), m_name(std::move(name)) {
    LST_CHECK(p >= 0.0 && p < 1.0, "Dropout '", m_name, "': probability ", p, " is outside [0, 1)");
  }
  double p() const { return m_p; }

  /// y = x * mask / (1 - p) in training, y = x in inference. y may alias x.
  ///
  /// `rows`: x holds packed sequences (rows->rows() rows, nn/packed_sequences.hpp), and each row takes the
  /// mask of its position in the padded batch they came from: a layer that computes only real tokens, or
  /// only each sequence's first rows, drops exactly what the padded layer drops.
  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode, std::uint64_t step,
                  const PackedSequences* rows = nullptr) const {
    LST_CHECK_SHAPE(y.shape() == x.shape(), "Dropout '", m_name, "': output y has shape ", y.shape(),
                    ", expected the input's shape ", x.shape());
    LST_CHECK(!rows || (rows->rows() > 0 && x.numel() % rows->rows() == 0), "Dropout '", m_name,
              "': ", rows ? rows->rows() : 0, " packed rows do not tile an input of ", x.numel(),
              " elements");
    const Context ctx = context(mode, step, rows);
    apply(ctx, x, y);
    return ctx;
  }
  /// As above, with x's rows where they lie: row i of x at x_rows[i], as many values as y's rows have. The
  /// bits of forward() on those rows gathered into one block, in one pass instead of a copy and a pass (the
  /// side network's embeddings read from the tap cache).
  Context forward(const T* const* x_rows, TensorView<T, Backend> y, Mode mode, std::uint64_t step,
                  const PackedSequences* rows = nullptr) const {
    const index_t R = y.shape().rows(), C = R > 0 ? y.numel() / R : 0;
    LST_CHECK(!rows || rows->rows() == R, "Dropout '", m_name, "': ", rows ? rows->rows() : 0,
              " packed rows for an output of ", R, " rows");
    const Context ctx = context(mode, step, rows);
    apply_by_rows(
        ctx, R, C, [x_rows](index_t r) { return x_rows[r]; }, y.data());
    return ctx;
  }

  /// dx = dy * mask / (1 - p), the same mask as forward. dx may alias dy.
  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx) const {
    LST_CHECK_SHAPE(dx.shape() == dy.shape(), "Dropout '", m_name, "': input gradient dx has shape ",
                    dx.shape(), ", expected dy's shape ", dy.shape());
    apply(ctx, dy, dx);
  }

 private:
  Context context(Mode mode, std::uint64_t step, const PackedSequences* rows) const {
    Context ctx{step, mode == Mode::training && m_p > 0.0, {}};
    if (rows && ctx.active) ctx.rows = *rows;
    return ctx;
  }

  /// A contiguous tensor: one flat span split into fixed chunks (any tensor, whatever its rank); packed rows
  /// through apply_by_rows.
  void apply(const Context& ctx, ConstView<T, Backend> in, TensorView<T, Backend> out) const {
    if (!ctx.active) {
      out.assign(in);
      return;
    }
    const T* x = in.data();
    if (ctx.rows.count() > 0) {
      const index_t C = in.numel() / ctx.rows.rows();
      apply_by_rows(
          ctx, ctx.rows.rows(), C, [x, C](index_t r) { return x + r * C; }, out.data());
      return;
    }
    const T scale = T(1.0 / (1.0 - m_p));
    const float p = static_cast<float>(m_p);
    const std::uint64_t key = stream_key(m_seed, ctx.step);
    T* y = out.data();
    // The mask is a pure function of (seed, step, i) (core/random.hpp), so any split over threads gives it.
    for_each_chunk(in.numel(), 4096, [&](long begin, long end) {
      apply_span(key, std::uint64_t(begin), p, scale, x + begin, y + begin, end - begin);
    });
  }

  /// y's R rows (C values each) from the rows row_of(r): with ctx's packed sequences each row takes the mask
  /// of its padded position, without them row r takes elements r C .. r C + C - 1 of the flat stream (the
  /// masks of apply() on the rows gathered). Rows run in parallel.
  template <class RowOf>
  void apply_by_rows(const Context& ctx, index_t R, index_t C, const RowOf& row_of, T* y) const {
    if (!ctx.active) {
      for (index_t r = 0; r < R; ++r)
        if (row_of(r) != y + r * C) std::copy_n(row_of(r), C, y + r * C);
      return;
    }
    const T scale = T(1.0 / (1.0 - m_p));
    const float p = static_cast<float>(m_p);
    const std::uint64_t key = stream_key(m_seed, ctx.step);
    const PackedSequences& rows = ctx.rows;
    if (rows.count() == 0) {
      LST_PARALLEL_FOR_IF(R * C >= parallel_min_elements)
      for (index_t r = 0; r < R; ++r)
        apply_span(key, std::uint64_t(r * C), p, scale, row_of(r), y + r * C, C);
      return;
    }
    LST_PARALLEL_FOR_UNEVEN_IF(R * C >= parallel_min_elements)  // sequences of unequal lengths
    for (index_t b = 0; b < rows.count(); ++b)
      for (index_t t = 0; t < rows.length(b); ++t) {
        const index_t r = rows.first_row(b) + t;
        apply_span(key, static_cast<std::uint64_t>(rows.origin(b, t) * C), p, scale, row_of(r), y + r * C, C);
      }
  }

  /// y[j] = x[j] * scale where element first + j of the stream `key` is kept, else 0, for j < n.
  static void apply_span(std::uint64_t key, std::uint64_t first, float p, T scale, const T* x, T* y,
                         index_t n) {
    index_t j = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    if constexpr (std::is_same_v<T, float>) {
      // Sixteen draws at once: uniform_in_stream()'s SplitMix64 round in two vectors of eight 64-bit lanes.
      // Kept iff the draw's 24 bits u (as the float u 2^-24) are >= p, i.e. u >= ceil(p 2^24): the same mask
      // bit for bit, without the float conversion.
      const __m512i keep_from = _mm512_set1_epi64(static_cast<long long>(std::ceil(double(p) * 16777216.0)));
      const __m512i golden = _mm512_set1_epi64(static_cast<long long>(0x9e3779b97f4a7c15ull));
      const __m512i m1 = _mm512_set1_epi64(static_cast<long long>(0xbf58476d1ce4e5b9ull));
      const __m512i m2 = _mm512_set1_epi64(static_cast<long long>(0x94d049bb133111ebull));
      const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
      const __m512 pscale = _mm512_set1_ps(scale);
      const auto kept = [&](std::uint64_t index) {  // lanes index .. index + 7
        __m512i z = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(index)), lanes);
        z = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(key)), _mm512_mullo_epi64(z, golden));
        z = _mm512_add_epi64(z, golden);  // mix64(key + index * golden)
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        return _mm512_cmpge_epu64_mask(_mm512_srli_epi64(z, 40), keep_from);
      };
      for (; j + 16 <= n; j += 16) {
        const __mmask16 m =
            __mmask16(kept(first + std::uint64_t(j)) | (kept(first + std::uint64_t(j) + 8) << 8));
        _mm512_storeu_ps(y + j, _mm512_maskz_mul_ps(m, _mm512_loadu_ps(x + j), pscale));
      }
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
      // Eight draws at once in two vectors of four 64-bit lanes. AVX2 has no 64-bit multiply: mul_low()
      // builds the low 64 bits of z c from three 32 x 32 -> 64-bit products. The first multiply, index *
      // golden, becomes an addition: lane l's z starts at key + (first + l + 1) golden and grows by 8 golden
      // a step. The 24-bit draws (below 2^31, so the signed compare is exact) are packed into eight 32-bit
      // lanes; kept iff u > ceil(p 2^24) - 1, the scalar definition's mask bit for bit.
      const auto mul_low = [](__m256i z, std::uint64_t c) {
        const __m256i c_lo = _mm256_set1_epi64x(static_cast<long long>(c & 0xffffffffull));
        const __m256i c_hi = _mm256_set1_epi64x(static_cast<long long>(c >> 32));
        const __m256i cross =
            _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(z, 32), c_lo), _mm256_mul_epu32(z, c_hi));
        return _mm256_add_epi64(_mm256_mul_epu32(z, c_lo), _mm256_slli_epi64(cross, 32));
      };
      const auto draws = [&](__m256i z) {  // (z ^ z >> 30) m1, (.. ^ .. >> 27) m2, .. ^ .. >> 31, top 24 bits
        z = mul_low(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xbf58476d1ce4e5b9ull);
        z = mul_low(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94d049bb133111ebull);
        return _mm256_srli_epi64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 31)), 40);
      };
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
        const __m256i lo = _mm256_permutevar8x32_epi32(draws(z_lo), even_dwords);
        const __m256i hi = _mm256_permutevar8x32_epi32(draws(z_hi), even_dwords);
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

  double m_p;
  std::uint64_t m_seed;
  std::string m_name;
};

LST_NAMESPACE_END
