// SPDX-License-Identifier: MIT
/// @file gather_rows.hpp
/// @brief Packed-row copies: the rows of a RowTable gathered into one block.
#pragma once

#include "../core/row_table.hpp"
#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's row gather: `static void gather(RowTable<T>, T* out)`. Defined in backends/<name>/.
template <class Backend>
struct GatherRowsKernel;
}  // namespace ops

/// out (rows, cols) = the rows of x, one after the other.
template <class T, class Backend>
void gather_rows(const RowTable<T>& x, const TensorView<T, Backend>& out) {
  LST_CHECK_SHAPE(out.shape().rows() == x.rows && out.shape().cols() == x.cols, "gather_rows: ", x.rows,
                  " rows of ", x.cols, " into a tensor of shape ", out.shape());
  ops::GatherRowsKernel<Backend>::gather(x, out.data());
}

LST_NAMESPACE_END

#include "../backends/cpu/gather_rows.hpp"
