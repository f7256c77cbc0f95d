// SPDX-License-Identifier: MIT
/// @file executor.hpp
/// @brief Evaluation of expressions and reductions into host tensors (Eigen's TensorExecutor, CPU tier).
#pragma once

#include <algorithm>
#include <cstring>
#include <limits>

#include "../../core/tensor.hpp"
#include "row_math.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

template <>
struct Executor<Cpu> {
  /// dst = e, elementwise with broadcasting, in one pass: each output element is computed from the operands'
  /// elements directly, so `y = a * b + c` reads a, b, c once and writes y once, allocating nothing. Every
  /// tensor e reads must be the CPU's (a compile-time check).
  template <class T, class E>
  static void assign(const TensorView<T, Cpu>& dst, const E& e) {
    static_assert(assignable_on_v<E, Cpu>,
                  "lst: Executor<Cpu> evaluates expressions of Cpu tensors only; this one reads another "
                  "backend's memory");
    if constexpr (is_reduction<E>::value) {
      reduce(dst, e);
    } else {
      static_assert(std::is_same_v<typename detail::expr_t<E>::value_type, std::remove_const_t<T>>,
                    "lst: expression and destination element types differ");
      auto ev = detail::as_expr(e);
      ev.bind(dst.shape());
      // An operand that is broadcast (read at other positions than the one being written) must not share
      // memory with the destination: rows written early would be read again later. Same-shape operands may
      // alias it.
      LST_CHECK(!ev.broadcast_overlaps(dst.data(), dst.data() + dst.numel()),
                "assignment: a broadcast operand overlaps the destination (e.g. x = x - x[0]); evaluate the ",
                "broadcast operand into a separate tensor first");
      T* out = dst.data();  // not restrict: `x = x * 2` reads the destination through a leaf
      const index_t n = dst.numel();
      if (ev.linear()) {
        // Same-shape operands: one flat loop the compiler vectorises (split over threads when long; element i
        // reads only position i of each operand, so the split cannot race even when an operand aliases dst).
        LST_PARALLEL_FOR_IF(n >= parallel_min_elements)
        for (index_t i = 0; i < n; ++i) out[i] = ev.at(i);
        return;
      }
      const auto d = detail::pad4(dst.shape());
      for (index_t i0 = 0; i0 < d[0]; ++i0)
        for (index_t i1 = 0; i1 < d[1]; ++i1)
          for (index_t i2 = 0; i2 < d[2]; ++i2) {
            T* row = out + ((i0 * d[1] + i1) * d[2] + i2) * d[3];
            over_row(ev, i0, i1, i2, d[3], [&](index_t c0, index_t n) {
              T* chunk = row + c0;
              for (index_t j = 0; j < n; ++j) chunk[j] = ev.at_col(j);
            });
          }
    }
  }

  template <class T, class U>
  static void copy(const TensorView<const U, Cpu>& src, const TensorView<T, Cpu>& dst) {
    static_assert(std::is_same_v<std::remove_const_t<U>, T>, "lst: copy between different element types");
    LST_CHECK_SHAPE(src.shape() == dst.shape(), "copy: source shape ", src.shape(),
                    " differs from destination ", dst.shape());
    const index_t n = src.numel();
    if (src.data() == dst.data() || n == 0) return;
    const T* from = src.data();
    T* to = dst.data();
    if (from < to + n && to < from + n) {  // overlapping ranges: one memmove
      std::memmove(to, from, sizeof(T) * static_cast<std::size_t>(n));
      return;
    }
    // Saved activations and ladder inputs are tens of MiB: copied on every thread (one memcpy a chunk).
    for_each_chunk(n, copy_chunk, [&](long begin, long end) {
      std::memcpy(to + begin, from + begin, sizeof(T) * static_cast<std::size_t>(end - begin));
    });
  }

  template <class T>
  static void fill(const TensorView<T, Cpu>& dst, std::remove_const_t<T> v) {
    T* to = dst.data();
    for_each_chunk(dst.numel(), copy_chunk,
                   [&](long begin, long end) { std::fill(to + begin, to + end, v); });
  }

 private:
  static constexpr long copy_chunk = 1L << 16;  // elements per parallel copy or fill chunk

  /// Walks one output row of `cols` columns in chunks of expr_chunk: seeks the expression to each chunk and
  /// calls f(first column, chunk length).
  template <class E, class F>
  static LST_ALWAYS_INLINE void over_row(E& ev, index_t i0, index_t i1, index_t i2, index_t cols, F&& f) {
    for (index_t c0 = 0; c0 < cols; c0 += expr_chunk) {
      ev.seek(i0, i1, i2, c0);
      f(c0, std::min(expr_chunk, cols - c0));
    }
  }

  template <class T, RowReduceKind Kind, class E>
  static void reduce(const TensorView<T, Cpu>& dst, const RowReduceExpr<Kind, E>& r) {
    using V = typename E::value_type;
    static_assert(std::is_same_v<V, std::remove_const_t<T>>,
                  "lst: reduction and destination element types differ");
    E ev = r.expr;
    const Shape s = ev.shape();
    ev.bind(s);
    const index_t rows = s.rows(), cols = s.cols();
    LST_CHECK_SHAPE(dst.numel() == rows, "row reduction: source of shape ", s, " has ", rows,
                    " rows, destination of shape ", dst.shape(), " has ", dst.numel(), " elements");
    LST_CHECK_SHAPE(cols > 0 || Kind == RowReduceKind::sum, "row reduction: empty rows in shape ", s);
    const auto d = detail::pad4(s);
    index_t r_out = 0;
    for (index_t i0 = 0; i0 < d[0]; ++i0)
      for (index_t i1 = 0; i1 < d[1]; ++i1)
        for (index_t i2 = 0; i2 < d[2]; ++i2, ++r_out) {
          V acc;
          if constexpr (Kind == RowReduceKind::max) {
            acc = -std::numeric_limits<V>::infinity();
            over_row(ev, i0, i1, i2, cols, [&](index_t, index_t n) {
              for (index_t j = 0; j < n; ++j) acc = std::max(acc, ev.at_col(j));
            });
          } else {
            acc = V(0);
            over_row(ev, i0, i1, i2, cols, [&](index_t, index_t n) {
              for (index_t j = 0; j < n; ++j) acc += ev.at_col(j);
            });
            if constexpr (Kind == RowReduceKind::mean || Kind == RowReduceKind::variance) acc /= V(cols);
            if constexpr (Kind == RowReduceKind::variance) {
              V ss = V(0);
              over_row(ev, i0, i1, i2, cols, [&](index_t, index_t n) {
                for (index_t j = 0; j < n; ++j) {
                  const V dv = ev.at_col(j) - acc;
                  ss += dv * dv;
                }
              });
              acc = ss / V(cols);
            }
          }
          dst.data()[r_out] = acc;
        }
  }

  template <class T, class E>
  static void reduce(const TensorView<T, Cpu>& dst, const ColSumExpr<E>& r) {
    using V = typename E::value_type;
    static_assert(std::is_same_v<V, std::remove_const_t<T>>,
                  "lst: reduction and destination element types differ");
    E ev = r.expr;
    const Shape s = ev.shape();
    ev.bind(s);
    const index_t cols = s.cols();
    LST_CHECK_SHAPE(dst.numel() == cols, "column sum: source of shape ", s, " has ", cols,
                    " columns, destination of shape ", dst.shape(), " has ", dst.numel(), " elements");
    V* LST_RESTRICT out = dst.data();
    if (!r.accumulate) std::fill(out, out + cols, V(0));
    const auto d = detail::pad4(s);
    const index_t rows = d[0] * d[1] * d[2];
    // Columns split over the threads (in groups of 8, a float packet on AVX2), each summing its columns over
    // every row in order: the bits of the serial loop on any number of threads, and nothing allocated. A bias
    // gradient over a few thousand rows (a linear layer's backward) no longer holds the other threads up.
    const index_t packets = cols / 8;
    const index_t parts = rows * cols >= parallel_min_elements
                              ? std::max<index_t>(1, std::min<index_t>(threads(), packets))
                              : 1;
    LST_PARALLEL_FOR_IF(parts > 1)
    for (index_t part = 0; part < parts; ++part) {
      const index_t c_begin = packets * part / parts * 8;
      const index_t c_end = part + 1 < parts ? packets * (part + 1) / parts * 8 : cols;
      if constexpr (std::is_same_v<E, LeafExpr<const V, Cpu>>) {
        // A tensor's own columns (a linear layer's dy): rows one after the other, summed in packets held in
        // registers over every row, in row order from out's value, as the loop below sums them. That loop
        // stores each packet back to out after every row, and waits on the store for the next row.
        cpu::add_column_sums(ev.data(), rows, cols, c_begin, c_end, out);
        continue;
      }
      E local = ev;  // seek() moves an evaluator: one per thread
      for (index_t i0 = 0; i0 < d[0]; ++i0)
        for (index_t i1 = 0; i1 < d[1]; ++i1)
          for (index_t i2 = 0; i2 < d[2]; ++i2)
            for (index_t c0 = c_begin; c0 < c_end; c0 += expr_chunk) {
              local.seek(i0, i1, i2, c0);
              const index_t n = std::min(expr_chunk, c_end - c0);
              for (index_t j = 0; j < n; ++j) out[c0 + j] += local.at_col(j);
            }
    }
  }
};

LST_NAMESPACE_END
