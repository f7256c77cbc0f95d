// SPDX-License-Identifier: MIT
/// @file dropout.hpp
/// @brief Inverted dropout's masked scaling with a counter-based mask (core/random.hpp): element i of a call
///        is kept iff uniform_in_stream(key, i) >= p, so nothing is stored and backward redraws the mask.
#pragma once

#include <cstdint>

#include "../core/packed_sequences.hpp"
#include "../core/row_table.hpp"
#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's dropout (backends/<name>/dropout.hpp), y = x * keep * scale with keep drawn from `key`:
///   flat(key, p, scale, x, y, n)                 element i takes the stream's element i; y may alias x
///   rows(key, p, scale, x_rows, y, C, packed)    R = x_rows.rows rows of C values into y (R, C); without
///                                                packed sequences row r takes elements r C .. r C + C - 1,
///                                                with them each row the mask of its padded position
///   copy_rows(x_rows, y, C)                      the inactive (inference) form: the rows copied
template <class Backend>
struct DropoutKernel;
}  // namespace ops

/// y (n) = x * mask / (1 - p) with mask element i kept iff uniform_in_stream(key, i) >= p. y may alias x.
template <class T, class Backend>
void dropout_flat(std::uint64_t key, float p, T scale, ConstView<T, Backend> x, TensorView<T, Backend> y) {
  ops::DropoutKernel<Backend>::flat(key, p, scale, x.data(), y.data(), x.numel());
}
/// y (R, C) = the rows of x (R rows of C values where they lie), masked as dropout_flat on the gathered rows
/// or, with `packed` (not null), each row with the mask of its position in the padded batch it came from.
template <class T, class Backend>
void dropout_rows(std::uint64_t key, float p, T scale, const RowTable<T>& x, TensorView<T, Backend> y,
                  const PackedSequences* packed) {
  ops::DropoutKernel<Backend>::rows(key, p, scale, x, y.data(), packed);
}
/// The same for a contiguous (R, C) x; y may alias x.
template <class T, class Backend>
void dropout_rows(std::uint64_t key, float p, T scale, ConstView<T, Backend> x, TensorView<T, Backend> y,
                  const PackedSequences* packed) {
  ops::DropoutKernel<Backend>::rows(key, p, scale, x.data(), y.shape().rows(), y.shape().cols(), y.data(),
                                    packed);
}
/// y (R, C) = the rows of x, unchanged (dropout in inference mode).
template <class T, class Backend>
void copy_rows(const RowTable<T>& x, TensorView<T, Backend> y) {
  ops::DropoutKernel<Backend>::copy_rows(x, y.data());
}

LST_NAMESPACE_END

#include "../backends/cpu/dropout.hpp"
