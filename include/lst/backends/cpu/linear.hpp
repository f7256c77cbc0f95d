// SPDX-License-Identifier: MIT
/// @file linear.hpp
/// @brief The CPU's linear products (ops/linear.hpp): the packing-free kernel where it applies (bias in the
///        kernel), else the bias broadcast and Eigen's (or a CBLAS) GEMM.
#pragma once

#include <algorithm>
#include <type_traits>

#include <Eigen/Core>

#include "../../ops/linear.hpp"
#include "gemm.hpp"
#include "narrow_gemm.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct LinearKernel<Cpu> {
  template <class T>
  static void forward(ConstView<T, Cpu> x, ConstView<T, Cpu> w, const T* bias, TensorView<T, Cpu> y) {
    const index_t out = w.shape().rows(), in = w.shape().cols();
    if constexpr (std::is_same_v<T, float>) {
      if (cpu::narrow_gemm_applies(Trans::no, y.shape().rows(), out, in)) {  // the bias in the kernel
        cpu::narrow_gemm(Trans::no, Trans::yes, T(1), x, w, T(0), MatrixRef<T, Cpu>(y), bias);
        return;
      }
    }
    if (bias) {  // broadcast b over rows, then the GEMM adds into it (beta = 1)
      // Whole packets straight from registers, no call per row (the narrow products above take their bias in
      // the kernel; this serves the wide layers and narrow ones on few rows).
      using Rows = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;
      const Eigen::Map<const Row> b(bias, out);
      const index_t rows = y.shape().rows(), block = 256;
      LST_PARALLEL_FOR_IF(rows * out >= parallel_min_elements)
      for (index_t r = 0; r < rows; r += block) {
        Eigen::Map<Rows>(y.data() + r * out, std::min(block, rows - r), out).rowwise() = b;
      }
    }
    cpu::gemm<T>(Trans::no, Trans::yes, T(1), x, w, bias ? T(1) : T(0), MatrixRef<T, Cpu>(y));
  }

  template <class T>
  static void forward_rows(const RowTable<T>& x, ConstView<T, Cpu> w, const T* bias, TensorView<T, Cpu> y) {
    if constexpr (std::is_same_v<T, float>) {
      if (cpu::narrow_gemm_applies(Trans::no, x.rows, w.shape().rows(), w.shape().cols())) {
        cpu::narrow_gemm_rows(x, w, MatrixRef<T, Cpu>(y), bias);
        return;
      }
    }
    forward(gathered(x).cview(), w, bias, y);
  }

  template <class T>
  static void weight_gradient_rows(ConstView<T, Cpu> dy, const RowTable<T>& x, T beta,
                                   TensorView<T, Cpu> dw) {
    if constexpr (std::is_same_v<T, float>) {
      if (cpu::narrow_gemm_applies(Trans::yes, dw.shape().rows(), dw.shape().cols(), x.rows)) {
        cpu::narrow_gemm_rows_weight_gradient(dy, x, beta, MatrixRef<T, Cpu>(dw));
        return;
      }
    }
    const Tensor<T, Cpu> g = gathered(x);
    cpu::gemm<T>(Trans::yes, Trans::no, T(1), dy, g.cview(), beta, MatrixRef<T, Cpu>(dw));  // dy^T x
  }

  template <class T>
  static bool reads_rows_in_place(index_t rows, index_t out, index_t in) {
    return std::is_same_v<T, float> && cpu::narrow_gemm_applies(Trans::no, rows, out, in) &&
           cpu::narrow_gemm_applies(Trans::yes, out, in, rows);
  }

 private:
  /// The rows of x in one block (workspace), for the products the narrow kernel does not take.
  template <class T>
  static Tensor<T, Cpu> gathered(const RowTable<T>& x) {
    Tensor<T, Cpu> g(Shape{x.rows, x.cols}, MemCategory::workspace);
    cpu::gather_rows(x.row, x.rows, x.cols, g.data());
    return g;
  }
};
}  // namespace ops

LST_NAMESPACE_END
