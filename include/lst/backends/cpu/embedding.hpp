// SPDX-License-Identifier: MIT
/// @file embedding.hpp
/// @brief The CPU's embedding rows (ops/embedding.hpp): one row copy or row add per id, in id order.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../../ops/embedding.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct EmbeddingKernel<Cpu> {
  template <class T>
  static EmbeddingBadId gather(const T* w, index_t vocab, index_t dim, const std::int32_t* ids, index_t n,
                               T* y) {
    for (index_t i = 0; i < n; ++i) {
      const std::int32_t id = ids[i];
      if (id < 0 || id >= vocab) return EmbeddingBadId{i, id};
      std::copy(w + id * dim, w + (id + 1) * dim, y + i * dim);
    }
    return EmbeddingBadId{};
  }

  template <class T>
  static void scatter_add(const std::int32_t* ids, const T* dy, index_t n, index_t dim, T* dw) {
    for (index_t i = 0; i < n; ++i) {
      T* row = dw + ids[i] * dim;
      const T* g = dy + i * dim;
      for (index_t j = 0; j < dim; ++j) row[j] += g[j];
    }
  }
};
}  // namespace ops

LST_NAMESPACE_END
