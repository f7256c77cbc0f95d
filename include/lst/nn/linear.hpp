// SPDX-License-Identifier: MIT
/// @file linear.hpp
/// @brief Linear layer y = x W^T + b, W (out, in) as in PyTorch and Hugging Face checkpoints.
#pragma once

#include <algorithm>
#include <string>
#include <type_traits>

#include "../ops/linear.hpp"
#include "parameter_arena.hpp"

LST_NAMESPACE_BEGIN

/// Convention (llm.c): parameter gradients follow GradMode; input gradients are written (`=`), unless a
/// caller asks to add into dx (`dx_beta = 1`), which lets q, k and v add their input gradients in place.
/// An empty view (`TensorView<T>{}`) for dx means "not needed": a frozen first layer skips that GEMM. A
/// frozen weight (or bias) gets no gradient product, and training keeps no input for it.
template <class T, class Backend = Cpu>
class Linear {
 public:
  struct Context {
    Tensor<T, Backend> input;  // (N, in), training mode only, and only when the weight trains
    bool training = false;
  };

  Linear(ParameterArena<T, Backend>& arena, const std::string& name, index_t in_features,
         index_t out_features, bool bias = true)
      : m_name(name), m_in(in_features), m_out(out_features) {
    m_weight = arena.add(name + ".weight", Shape{out_features, in_features}, ParamRole::weight);
    if (bias) m_bias = arena.add(name + ".bias", Shape{out_features}, ParamRole::bias);
  }

  const std::string& name() const { return m_name; }
  index_t in_features() const { return m_in; }
  index_t out_features() const { return m_out; }
  bool has_bias() const { return m_bias.valid(); }
  const Param<T, Backend>& weight() const { return m_weight; }  // (out, in)
  const Param<T, Backend>& bias() const { return m_bias; }      // (out)

  /// y (..., out) = x (..., in) W^T + b. Training mode keeps a copy of x for the weight gradient (none when
  /// the weight is frozen: the input gradient needs W alone).
  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode) const {
    apply(x, y);
    Context ctx;
    ctx.training = mode == Mode::training;
    if (ctx.training && keeps_input()) ctx.input = clone_as(x, MemCategory::activations);
    return ctx;
  }
  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx, GradMode gm) const {
    LST_CHECK(ctx.training, "Linear '", m_name, "': backward needs a context from a training-mode forward");
    backward_from(ctx.input, dy, dx, gm);
  }
  /// Whether backward reads the layer's input: for the weight gradient, so only when the weight trains.
  bool keeps_input() const { return m_weight.trainable(); }

  /// The forward GEMM alone, for layers that manage their own saved inputs (attention's q, k, v share x).
  void apply(ConstView<T, Backend> x, TensorView<T, Backend> y) const {
    check_input(x, "input x");
    LST_CHECK_SHAPE(y.shape().rows() == x.shape().rows() && y.shape().cols() == m_out, "Linear '", m_name,
                    "': output y has shape ", y.shape(), ", expected ", x.shape().rows(), " rows of ", m_out,
                    " for input x of shape ", x.shape());
    LST_CHECK(!detail::overlaps(MatrixRef<const T, Backend>(x), MatrixRef<const T, Backend>(y)), "Linear '",
              m_name, "': output y overlaps input x (a linear layer cannot run in place)");
    linear_forward<T, Backend>(x, m_weight.value(), has_bias() ? m_bias.value() : ConstView<T, Backend>(), y);
  }

  /// Whether both of a training step's products over `rows` input rows (forward and weight gradient) read a
  /// row table in place; otherwise each gathers the rows first (a caller that keeps the rows for backward is
  /// better off gathering them once).
  bool reads_rows_in_place(index_t rows) const {
    return linear_reads_rows_in_place<T, Backend>(rows, m_out, m_in);
  }

  /// y (N, out) = x W^T + b for an input whose N rows lie anywhere (a batch read in place from the tap
  /// cache): the bits of apply() on those rows gathered into one block, without gathering them where the
  /// narrow kernel takes the product.
  void apply(const RowTable<T>& x, TensorView<T, Backend> y) const {
    LST_CHECK_SHAPE(x.cols == m_in && y.shape().rows() == x.rows && y.shape().cols() == m_out, "Linear '",
                    m_name, "': input rows (", x.rows, ", ", x.cols, ") and output y ", y.shape(),
                    " must be (N, ", m_in, ") and (N, ", m_out, ")");
    linear_forward_rows<T, Backend>(x, m_weight.value(),
                                    has_bias() ? m_bias.value() : ConstView<T, Backend>(), y);
  }

  /// Parameter gradients (following `gm`) from an input whose rows lie anywhere and the output gradient dy:
  /// the bits of backward_from() with those rows gathered, and no input gradient.
  void weight_gradient(const RowTable<T>& x, ConstView<T, Backend> dy, GradMode gm) const {
    LST_CHECK_SHAPE(x.cols == m_in && dy.shape().rows() == x.rows && dy.shape().cols() == m_out, "Linear '",
                    m_name, "': input rows (", x.rows, ", ", x.cols, ") and output gradient dy ", dy.shape(),
                    " must be (N, ", m_in, ") and (N, ", m_out, ")");
    if (gm == GradMode::ignore) return;
    const TensorView<T, Backend> dw = weight_gradient_buffer();
    if (!dw.empty())
      linear_weight_gradient_rows<T, Backend>(dy, x, gm == GradMode::accumulate ? T(1) : T(0), dw);
    bias_gradient(dy, gm);
  }

  /// Backward from an explicit input x (..., in) and output gradient dy (..., out). x may be empty when the
  /// weight is frozen (or gm is ignore): nothing then reads it.
  void backward_from(ConstView<T, Backend> x, ConstView<T, Backend> dy, TensorView<T, Backend> dx,
                     GradMode gm, T dx_beta = T(0)) const {
    if (!x.empty() || (gm != GradMode::ignore && m_weight.trainable())) {
      check_input(x, "saved input x");
      LST_CHECK_SHAPE(dy.shape().rows() == x.shape().rows() && dy.shape().cols() == m_out, "Linear '", m_name,
                      "': output gradient dy has shape ", dy.shape(), ", expected ", x.shape().rows(),
                      " rows of ", m_out, " (input x ", x.shape(), ")");
      // Every argument is checked before any gradient is written: a failed call leaves the gradients
      // untouched.
      LST_CHECK_SHAPE(dx.data() == nullptr || dx.shape() == x.shape(), "Linear '", m_name,
                      "': input gradient dx has shape ", dx.shape(), ", expected the input's shape ",
                      x.shape());
    } else {
      LST_CHECK_SHAPE(
          dy.rank() >= 1 && dy.shape().cols() == m_out &&
              (dx.data() == nullptr || (dx.shape().cols() == m_in && dx.shape().rows() == dy.shape().rows())),
          "Linear '", m_name, "': output gradient dy ", dy.shape(), " and input gradient dx ", dx.shape(),
          " must be (N, ", m_out, ") and (N, ", m_in, ")");
    }
    LST_CHECK(dx.data() == nullptr ||
                  !detail::overlaps(MatrixRef<const T, Backend>(dx), MatrixRef<const T, Backend>(dy)),
              "Linear '", m_name, "': input gradient dx overlaps output gradient dy");
    if (gm != GradMode::ignore) {
      const T beta = gm == GradMode::accumulate ? T(1) : T(0);
      const TensorView<T, Backend> dw = weight_gradient_buffer();
      if (!dw.empty())
        gemm<T, Backend>(Trans::yes, Trans::no, T(1), dy, x, beta, MatrixRef<T, Backend>(dw));  // dW = dy^T x
      bias_gradient(dy, gm);
    }
    if (dx.data() != nullptr) input_gradient(dy, dx, dx_beta);
  }

  /// dx (..., in) = dy (..., out) W (+ dx_beta dx) alone, for a caller that takes the weight gradients in
  /// another call (backward_from with an empty dx) and then reuses the saved input's buffer for dx.
  void input_gradient(ConstView<T, Backend> dy, TensorView<T, Backend> dx, T dx_beta = T(0)) const {
    LST_CHECK_SHAPE(
        dy.shape().cols() == m_out && dx.shape().cols() == m_in && dx.shape().rows() == dy.shape().rows(),
        "Linear '", m_name, "': input gradient dx ", dx.shape(), " and output gradient dy ", dy.shape(),
        " must be (N, ", m_in, ") and (N, ", m_out, ")");
    LST_CHECK(!detail::overlaps(MatrixRef<const T, Backend>(dx), MatrixRef<const T, Backend>(dy)), "Linear '",
              m_name, "': input gradient dx overlaps output gradient dy");
    gemm<T, Backend>(Trans::no, Trans::no, T(1), dy, m_weight.value(), dx_beta,
                     MatrixRef<T, Backend>(dx));  // dy W
  }

 private:
  /// dW's buffer (Param::grad_to_write: an error for a frozen arena, empty for a frozen weight).
  TensorView<T, Backend> weight_gradient_buffer() const { return m_weight.grad_to_write("Linear", m_name); }
  /// db (out) = the sum of dy over its rows, following gm (not ignore); nothing for a frozen bias.
  void bias_gradient(ConstView<T, Backend> dy, GradMode gm) const {
    if (!has_bias()) return;
    const TensorView<T, Backend> db = m_bias.grad();
    if (db.empty()) return;
    if (gm == GradMode::accumulate)
      db += col_sum(dy);
    else
      db = col_sum(dy);
  }
  void check_input(const ConstView<T, Backend>& x, const char* what) const {
    LST_CHECK_SHAPE(x.rank() >= 1 && x.shape().cols() == m_in, "Linear '", m_name, "': ", what, " has shape ",
                    x.shape(), ", expected last dimension ", m_in, " (weight shape (", m_out, ", ", m_in,
                    "))");
  }
  std::string m_name;
  index_t m_in, m_out;
  Param<T, Backend> m_weight, m_bias;
};

LST_NAMESPACE_END
