// SPDX-License-Identifier: MIT
/// @file activation.hpp
/// @brief Pointwise activations as layers: ReLU, GELU (erf and tanh forms), tanh, sigmoid.
#pragma once

#include <string>

#include "../ops/activation.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class Activation {
 public:
  struct Context {
    Tensor<T, Backend> input;  // (...), training mode only
  };
  explicit Activation(ActivationKind kind, std::string name = "activation")
      : m_kind(kind), m_name(std::move(name)) {}
  ActivationKind kind() const { return m_kind; }

  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode) const {
    LST_CHECK_SHAPE(y.shape() == x.shape(), "Activation '", m_name, "': output y has shape ", y.shape(),
                    ", expected the input's shape ", x.shape());
    Context ctx;
    if (mode == Mode::training) ctx.input = clone_as(x, MemCategory::activations);
    activation_forward(m_kind, x, y);
    return ctx;
  }
  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx) const {
    LST_CHECK_SHAPE(dy.shape() == ctx.input.shape() && dx.shape() == ctx.input.shape(), "Activation '",
                    m_name, "': gradients dy ", dy.shape(), " and dx ", dx.shape(),
                    " must have the input's shape ", ctx.input.shape());
    activation_backward(m_kind, ctx.input.cview(), dy, dx);
  }

 private:
  ActivationKind m_kind;
  std::string m_name;
};

LST_NAMESPACE_END
