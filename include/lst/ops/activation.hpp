// SPDX-License-Identifier: MIT
/// @file activation.hpp
/// @brief Pointwise activations and their slopes: y = act(x), dx = dy act'(x), and both at once.
#pragma once

#include "../core/activation_kind.hpp"
#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's activations (backends/<name>/activation.hpp): `forward(kind, x, y)`, `backward(kind, x, dy,
/// dx)` and `forward_and_slope(kind, x, y, slope)`, over tensors of equal shapes. A backend with nothing
/// faster than the expressions below calls them.
template <class Backend>
struct ActivationKernel;

/// The activations as expressions (core/expression.hpp): what any backend's evaluator computes.
struct ActivationExpressions {
  template <class T, class Backend>
  static void forward(ActivationKind kind, ConstView<T, Backend> x, TensorView<T, Backend> y) {
    switch (kind) {
      case ActivationKind::relu:
        y = relu(x);
        break;
      case ActivationKind::gelu:
        y = gelu(x);
        break;
      case ActivationKind::gelu_tanh:
        y = gelu_tanh(x);
        break;
      case ActivationKind::tanh:
        y = tanh(x);
        break;
      case ActivationKind::sigmoid:
        y = sigmoid(x);
        break;
    }
  }
  template <class T, class Backend>
  static void backward(ActivationKind kind, ConstView<T, Backend> x, ConstView<T, Backend> dy,
                       TensorView<T, Backend> dx) {
    switch (kind) {
      case ActivationKind::relu:
        dx = dy * make_unary<op::ReluGrad>(x);
        break;
      case ActivationKind::gelu:
        dx = dy * make_unary<op::GeluErfGrad>(x);
        break;
      case ActivationKind::gelu_tanh:
        dx = dy * make_unary<op::GeluTanhGrad>(x);
        break;
      case ActivationKind::tanh:
        dx = dy * make_unary<op::TanhGrad>(x);
        break;
      case ActivationKind::sigmoid:
        dx = dy * make_unary<op::SigmoidGrad>(x);
        break;
    }
  }
};
}  // namespace ops

/// y = act(x), dispatched once per call over the closed set of kinds.
template <class T, class Backend>
void activation_forward(ActivationKind kind, ConstView<T, Backend> x, TensorView<T, Backend> y) {
  LST_CHECK_SHAPE(y.shape() == x.shape(), "activation: output has shape ", y.shape(), ", expected ",
                  x.shape());
  ops::ActivationKernel<Backend>::forward(kind, x, y);
}
/// dx = dy * act'(x). dx may alias dy.
template <class T, class Backend>
void activation_backward(ActivationKind kind, ConstView<T, Backend> x, ConstView<T, Backend> dy,
                         TensorView<T, Backend> dx) {
  LST_CHECK_SHAPE(dx.shape() == x.shape() && dy.shape() == x.shape(), "activation backward: dy ", dy.shape(),
                  " and dx ", dx.shape(), " must have the input's shape ", x.shape());
  ops::ActivationKernel<Backend>::backward(kind, x, dy, dx);
}
/// y = act(x) and slope = act'(x) together, for a backward pass that needs both: dy * slope is
/// activation_backward's dx, bit for bit.
template <class T, class Backend>
void activation_and_slope(ActivationKind kind, ConstView<T, Backend> x, TensorView<T, Backend> y,
                          TensorView<T, Backend> slope) {
  LST_CHECK_SHAPE(y.shape() == x.shape() && slope.shape() == x.shape(), "activation: output ", y.shape(),
                  " and slope ", slope.shape(), " must have the input's shape ", x.shape());
  ops::ActivationKernel<Backend>::forward_and_slope(kind, x, y, slope);
}

LST_NAMESPACE_END

#include "../backends/cpu/activation.hpp"
