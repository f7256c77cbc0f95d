// SPDX-License-Identifier: MIT
/// @file matrix_ref.hpp
/// @brief A BLAS-style matrix operand (pointer, rows, cols, leading dimension) and GEMM shape checks.
#pragma once

#include "tensor.hpp"

LST_NAMESPACE_BEGIN

/// Whether GEMM reads an operand transposed.
enum class Trans { no, yes };

/// A row-major matrix inside a larger buffer: element (i, j) at data[i * ld + j]. Lets one attention head,
/// a column block of a (B, T, C) tensor, enter a GEMM without a copy.
template <class T, class Backend = Cpu>
struct MatrixRef {
  T* data = nullptr;
  index_t rows = 0, cols = 0, ld = 0;

  MatrixRef() = default;
  MatrixRef(T* d, index_t r, index_t c, index_t l) : data(d), rows(r), cols(c), ld(l) {}
  MatrixRef(T* d, index_t r, index_t c) : MatrixRef(d, r, c, c) {}
  /// A tensor as (rows, cols) with every leading axis folded into rows.
  template <class U, class = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  MatrixRef(const TensorView<U, Backend>& v) : MatrixRef(v.data(), v.shape().rows(), v.shape().cols()) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  MatrixRef(const Tensor<U, Backend>& t) : MatrixRef(t.view()) {}
  /// A writable operand converts to a read-only one.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  MatrixRef(const MatrixRef<U, Backend>& m) : MatrixRef(m.data, m.rows, m.cols, m.ld) {}
};

namespace detail {
/// Whether two matrices' memory ranges intersect.
template <class A, class B>
bool overlaps(const A& a, const B& b) {
  if (a.rows == 0 || a.cols == 0 || b.rows == 0 || b.cols == 0) return false;
  const auto* a0 = reinterpret_cast<const char*>(a.data);
  const auto* b0 = reinterpret_cast<const char*>(b.data);
  const auto* a1 = reinterpret_cast<const char*>(a.data + (a.rows - 1) * a.ld + a.cols);
  const auto* b1 = reinterpret_cast<const char*>(b.data + (b.rows - 1) * b.ld + b.cols);
  return a0 < b1 && b0 < a1;
}

template <class A, class B, class C>
void check_gemm_shapes(Trans ta, Trans tb, const A& a, const B& b, const C& c) {
  const index_t m = ta == Trans::no ? a.rows : a.cols, ka = ta == Trans::no ? a.cols : a.rows;
  const index_t kb = tb == Trans::no ? b.rows : b.cols, n = tb == Trans::no ? b.cols : b.rows;
  LST_CHECK_SHAPE(ka == kb && c.rows == m && c.cols == n, "gemm: op(A) is (", m, ", ", ka, "), op(B) is (",
                  kb, ", ", n, "), C is (", c.rows, ", ", c.cols, ")");
  LST_CHECK(!overlaps(a, c) && !overlaps(b, c), "gemm: the output C overlaps an input (C = op(A) op(B) ",
            "cannot be computed in place)");
  LST_CHECK_SHAPE(a.ld >= a.cols && b.ld >= b.cols && c.ld >= c.cols,
                  "gemm: a leading dimension is below its ", "column count (A ld ", a.ld, ", B ld ", b.ld,
                  ", C ld ", c.ld, ")");
}
}  // namespace detail

LST_NAMESPACE_END
