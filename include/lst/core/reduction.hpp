// SPDX-License-Identifier: MIT
/// @file reduction.hpp
/// @brief Reductions over the last axis (per row) and over the leading axes (per column) of an expression.
///
/// `dst = row_sum(x * y)` evaluates the product inside the reduction loop: no temporary. A row reduction of
/// an expression of shape (..., C) writes one value per row into any tensor with that many elements
/// (shape (..., 1) or (...)). A column reduction of shape (..., C) writes C values (bias gradients).
#pragma once

#include "expression.hpp"

LST_NAMESPACE_BEGIN

enum class RowReduceKind { sum, max, mean, variance };

template <RowReduceKind Kind, class E>
struct RowReduceExpr {
  using value_type = typename E::value_type;
  E expr;
};

template <class E>
struct ColSumExpr {
  using value_type = typename E::value_type;
  E expr;
  bool accumulate = false;  // set by `dst += col_sum(...)`: add into dst instead of overwriting it
};

template <class T>
struct is_col_sum : std::false_type {};
template <class E>
struct is_col_sum<ColSumExpr<E>> : std::true_type {};

template <class T>
struct is_reduction : std::false_type {};
template <RowReduceKind K, class E>
struct is_reduction<RowReduceExpr<K, E>> : std::true_type {};
template <class E>
struct is_reduction<ColSumExpr<E>> : std::true_type {};

/// Sum over the last axis.
template <class A, class = std::enable_if_t<is_operand_v<A>>>
auto row_sum(const A& a) {
  return RowReduceExpr<RowReduceKind::sum, detail::expr_t<A>>{detail::as_expr(a)};
}
/// Maximum over the last axis.
template <class A, class = std::enable_if_t<is_operand_v<A>>>
auto row_max(const A& a) {
  return RowReduceExpr<RowReduceKind::max, detail::expr_t<A>>{detail::as_expr(a)};
}
/// Mean over the last axis.
template <class A, class = std::enable_if_t<is_operand_v<A>>>
auto row_mean(const A& a) {
  return RowReduceExpr<RowReduceKind::mean, detail::expr_t<A>>{detail::as_expr(a)};
}
/// Population variance (divides by C, as LayerNorm does) over the last axis, computed in two passes for
/// accuracy: a one-pass E[x^2] - E[x]^2 loses all digits when |mean| >> std.
template <class A, class = std::enable_if_t<is_operand_v<A>>>
auto row_variance(const A& a) {
  return RowReduceExpr<RowReduceKind::variance, detail::expr_t<A>>{detail::as_expr(a)};
}
/// Sum over every axis but the last: (..., C) -> (C).
template <class A, class = std::enable_if_t<is_operand_v<A>>>
auto col_sum(const A& a) {
  return ColSumExpr<detail::expr_t<A>>{detail::as_expr(a), false};
}

LST_NAMESPACE_END
