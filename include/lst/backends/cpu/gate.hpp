// SPDX-License-Identifier: MIT
/// @file gate.hpp
/// @brief The CPU's LST gate (ops/gate.hpp): rows split over threads, channel sums in fixed row blocks.
#pragma once

#include <algorithm>
#include <vector>

#include "../../ops/gate.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct GateKernel<Cpu> {
  template <class T>
  static void mix(const T* mu, T* s, const T* z, T* kept, index_t rows, index_t C) {
    LST_PARALLEL_FOR_IF(rows * C >= parallel_min_elements)
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < C; ++c) {
        const index_t at = r * C + c;
        if (kept) kept[at] = s[at];
        s[at] = mu[c] * s[at] + (T(1) - mu[c]) * z[at];
      }
  }

  template <class T>
  static std::vector<double> backward(const T* mu, T* g, const T* a, const T* b, T* gz, index_t rows,
                                      index_t C) {
    // Summed in double over fixed row blocks, then the blocks in order: the same bits on any number of
    // threads.
    constexpr index_t block_rows = 64;
    const index_t blocks = (rows + block_rows - 1) / block_rows;
    std::vector<double> partial(std::size_t(blocks * C), 0.0);
    LST_PARALLEL_FOR_IF(rows * C >= parallel_min_elements)
    for (index_t blk = 0; blk < blocks; ++blk) {
      double* acc = partial.data() + blk * C;
      for (index_t r = blk * block_rows; r < std::min(rows, (blk + 1) * block_rows); ++r)
        for (index_t c = 0; c < C; ++c) {
          const index_t at = r * C + c;
          acc[c] += double(g[at]) * double(a[at] - b[at]);
          gz[at] = (T(1) - mu[c]) * g[at];
          g[at] = mu[c] * g[at];
        }
    }
    std::vector<double> acc(std::size_t(C), 0.0);
    for (index_t blk = 0; blk < blocks; ++blk)
      for (index_t c = 0; c < C; ++c) acc[std::size_t(c)] += partial[std::size_t(blk * C + c)];
    return acc;
  }
};
}  // namespace ops

LST_NAMESPACE_END
