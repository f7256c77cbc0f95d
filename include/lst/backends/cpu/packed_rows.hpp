// SPDX-License-Identifier: MIT
/// @file packed_rows.hpp
/// @brief The CPU's packed-row copies (ops/packed_rows.hpp): one contiguous block per sequence.
#pragma once

#include <algorithm>

#include "../../ops/packed_rows.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct PackedRowsKernel<Cpu> {
  template <class T>
  static void copy(const PackedSequences& from, const PackedSequences& to, index_t C, const T* src, T* dst) {
    for (index_t b = 0; b < to.count(); ++b)
      std::copy_n(src + from.first_row(b) * C, std::min(from.length(b), to.length(b)) * C,
                  dst + to.first_row(b) * C);
  }

  template <class T>
  static void add(const PackedSequences& from, const PackedSequences& to, index_t C, const T* src, T* dst) {
    for (index_t b = 0; b < to.count(); ++b) {
      const T* s = src + from.first_row(b) * C;
      T* d = dst + to.first_row(b) * C;
      for (index_t i = 0, n = std::min(from.length(b), to.length(b)) * C; i < n; ++i) d[i] += s[i];
    }
  }
};
}  // namespace ops

LST_NAMESPACE_END
