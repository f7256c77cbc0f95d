// SPDX-License-Identifier: MIT
/// @file embedding.hpp
/// @brief Embedding rows: the gather y[n] = W[id[n]] and its backward, the scatter-add dW[id[n]] += dy[n].
#pragma once

#include <cstdint>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

/// The first id outside [0, vocab) that an embedding gather met: its flat position (-1: none) and its value.
struct EmbeddingBadId {
  index_t position = -1;
  std::int32_t id = 0;
  explicit operator bool() const { return position >= 0; }
};

namespace ops {
/// A backend's embedding rows (backends/<name>/embedding.hpp), over a table W (vocab, dim) row-major and n
/// ids:
///   gather(w, vocab, dim, ids, n, y) -> EmbeddingBadId   row i of y (n, dim) = row ids[i] of W, for i in
///                                                        order up to the first id outside [0, vocab), which
///                                                        is returned (W is never read outside the table)
///   scatter_add(ids, dy, n, dim, dw)                     row ids[i] of dW += row i of dy, for i = 0, 1, ...
///                                                        in order (repeated ids accumulate in that order)
template <class Backend>
struct EmbeddingKernel;
}  // namespace ops

/// y (..., dim) = the rows of weight (vocab, dim) that ids (...) name. Returns the first id outside the
/// table, if any (test it: the rows from there on are not written).
template <class T, class Backend>
[[nodiscard]] EmbeddingBadId embedding_gather(ConstView<T, Backend> weight,
                                              ConstView<std::int32_t, Backend> ids,
                                              TensorView<T, Backend> y) {
  const index_t dim = weight.shape().cols();
  LST_CHECK_SHAPE(y.numel() == ids.numel() * dim && y.shape().cols() == dim, "embedding gather: output ",
                  y.shape(), " for ids ", ids.shape(), " from a table of shape ", weight.shape());
  return ops::EmbeddingKernel<Backend>::gather(weight.data(), weight.shape().rows(), dim, ids.data(),
                                               ids.numel(), y.data());
}

/// dweight (vocab, dim) row ids[n] += dy[n] for every position n of ids (...), in order; dy is (..., dim).
/// The ids must lie in [0, vocab) (those of a gather that returned no bad id).
template <class T, class Backend>
void embedding_scatter_add(ConstView<std::int32_t, Backend> ids, ConstView<T, Backend> dy,
                           TensorView<T, Backend> dweight) {
  const index_t dim = dweight.shape().cols();
  LST_CHECK_SHAPE(dy.numel() == ids.numel() * dim, "embedding scatter-add: gradient ", dy.shape(),
                  " for ids ", ids.shape(), " into a table of shape ", dweight.shape());
  ops::EmbeddingKernel<Backend>::scatter_add(ids.data(), dy.data(), ids.numel(), dim, dweight.data());
}

LST_NAMESPACE_END

#include "../backends/cpu/embedding.hpp"
