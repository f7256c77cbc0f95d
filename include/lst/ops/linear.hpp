// SPDX-License-Identifier: MIT
/// @file linear.hpp
/// @brief The products of a linear layer y = x W^T + b, W (out, in): forward with the bias, and the forms
/// that
///        read their input rows in place (a RowTable), dispatched on the tensors' backend.
#pragma once

#include "../core/row_table.hpp"
#include "gather_rows.hpp"
#include "gemm.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's linear products (backends/<name>/linear.hpp):
///   forward(x, w, bias, y)                 y (N, out) = x (N, in) w^T + bias (bias may be null)
///   forward_rows(x_rows, w, bias, y)       the same from a RowTable, bit for bit the gathered rows' result
///   weight_gradient_rows(dy, x_rows, beta, dw)   dw (out, in) = dy^T x + beta dw
///   reads_rows_in_place<T>(rows, out, in)  whether both row-table products read the table in place (else
///                                          each gathers it first, and a caller keeping the rows for backward
///                                          is better off gathering them once)
template <class Backend>
struct LinearKernel;
}  // namespace ops

/// y (N, out) = x (N, in) w^T + bias; `bias` (out) may be an empty view.
template <class T, class Backend>
void linear_forward(ConstView<T, Backend> x, ConstView<T, Backend> w, ConstView<T, Backend> bias,
                    TensorView<T, Backend> y) {
  ops::LinearKernel<Backend>::forward(x, w, bias.empty() ? nullptr : bias.data(), y);
}
/// As linear_forward, with x's N rows where they lie.
template <class T, class Backend>
void linear_forward_rows(const RowTable<T>& x, ConstView<T, Backend> w, ConstView<T, Backend> bias,
                         TensorView<T, Backend> y) {
  ops::LinearKernel<Backend>::forward_rows(x, w, bias.empty() ? nullptr : bias.data(), y);
}
/// dw (out, in) = dy (N, out)^T x (N, in) + beta dw, with x's rows where they lie.
template <class T, class Backend>
void linear_weight_gradient_rows(ConstView<T, Backend> dy, const RowTable<T>& x, T beta,
                                 TensorView<T, Backend> dw) {
  ops::LinearKernel<Backend>::weight_gradient_rows(dy, x, beta, dw);
}
/// Whether linear_forward_rows and linear_weight_gradient_rows read `rows` rows in place for a layer of
/// these widths (rather than gathering them).
template <class T, class Backend>
bool linear_reads_rows_in_place(index_t rows, index_t out_features, index_t in_features) {
  return ops::LinearKernel<Backend>::template reads_rows_in_place<T>(rows, out_features, in_features);
}

LST_NAMESPACE_END

#include "../backends/cpu/linear.hpp"
