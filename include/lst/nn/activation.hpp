// SPDX-License-Identifier: MIT
/// @file activation.hpp
/// @brief Pointwise activations as layers: ReLU, GELU (erf and tanh forms), tanh, sigmoid.
#pragma once

#include <string>

#include "../backends/cpu/cpu.hpp"

LST_NAMESPACE_BEGIN

enum class ActivationKind { relu, gelu, gelu_tanh, tanh, sigmoid };

/// Hugging Face's `hidden_act` names: "gelu" (erf), "gelu_new" / "gelu_pytorch_tanh" (tanh form), "relu", ...
inline ActivationKind activation_from_name(const std::string& name) {
  if (name == "gelu" || name == "gelu_python") return ActivationKind::gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return ActivationKind::gelu_tanh;
  if (name == "relu") return ActivationKind::relu;
  if (name == "tanh") return ActivationKind::tanh;
  if (name == "sigmoid") return ActivationKind::sigmoid;
  detail::raise<Error>(
      "activation '", name,
      "' is not supported (expected gelu, gelu_new, gelu_pytorch_tanh, relu, tanh or sigmoid)");
}

/// y = act(x) and dx = dy * act'(x), dispatched once per call over the closed set of kinds.
template <class T, class Backend>
void activation_forward(ActivationKind kind, ConstView<T, Backend> x, TensorView<T, Backend> y) {
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
void activation_backward(ActivationKind kind, ConstView<T, Backend> x, ConstView<T, Backend> dy,
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
