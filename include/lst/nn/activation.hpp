// SPDX-License-Identifier: MIT
/// @file activation.hpp
/// @brief Pointwise activations as layers: ReLU, GELU (erf and tanh forms), tanh, sigmoid.
#pragma once

#include <string>
#include <type_traits>

#include "../backends/cpu/cpu.hpp"
#include "../backends/cpu/gelu.hpp"

LST_NAMESPACE_BEGIN

namespace detail {
// GELU(erf) on the CPU through cpu::gelu_erf and friends (backends/cpu/gelu.hpp: vectorized erf without a
// division on AVX-512, Eigen's array erf elsewhere): the scalar std::erf made GELU about 12 % of a
// fine-tuning step's time. Long tensors run in fixed chunks of gelu_chunk elements on several threads
// (core/threads.hpp); on AVX-512 a float's result depends on its value alone, so the split over threads does
// not change a bit.
constexpr long gelu_chunk = 1L << 14;
template <class T>
void gelu_erf_chunked(const T* x, T* y, index_t n) {
  for_each_chunk(n, gelu_chunk,
                 [&](long begin, long end) { cpu::gelu_erf(x + begin, y + begin, end - begin); });
}
// dx = dy * (Phi(x) + x phi(x)), phi the standard normal density.
template <class T>
void gelu_erf_grad_chunked(const T* x, const T* dy, T* dx, index_t n) {
  for_each_chunk(n, gelu_chunk, [&](long begin, long end) {
    cpu::gelu_erf_gradient(x + begin, dy + begin, dx + begin, end - begin);
  });
}
// y = x Phi(x) and slope = Phi(x) + x phi(x) from one erf and one exp: a backward pass that needs both the
// activation (for the next layer's weight gradient) and its derivative no longer evaluates erf twice.
// dy * slope is gelu_erf_grad_chunked's result bit for bit.
template <class T>
void gelu_erf_and_slope_chunked(const T* x, T* y, T* slope, index_t n) {
  for_each_chunk(n, gelu_chunk, [&](long begin, long end) {
    cpu::gelu_erf_and_slope(x + begin, y + begin, slope + begin, end - begin);
  });
}
}  // namespace detail

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
      if constexpr (std::is_same_v<Backend, Cpu>) {
        LST_CHECK_SHAPE(y.shape() == x.shape(), "gelu: output has shape ", y.shape(), ", expected ",
                        x.shape());
        detail::gelu_erf_chunked(x.data(), y.data(), x.numel());
      } else {
        y = gelu(x);
      }
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
      if constexpr (std::is_same_v<Backend, Cpu>) {
        LST_CHECK_SHAPE(dx.shape() == x.shape() && dy.shape() == x.shape(), "gelu backward: dy ", dy.shape(),
                        " and dx ", dx.shape(), " must have the input's shape ", x.shape());
        detail::gelu_erf_grad_chunked(x.data(), dy.data(), dx.data(), x.numel());
      } else {
        dx = dy * make_unary<op::GeluErfGrad>(x);
      }
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

/// y = act(x) and slope = act'(x) together, for a backward pass that needs both: dy * slope is
/// activation_backward's dx, bit for bit. GELU (erf) on the CPU shares its erf between the two.
template <class T, class Backend>
void activation_and_slope(ActivationKind kind, ConstView<T, Backend> x, TensorView<T, Backend> y,
                          TensorView<T, Backend> slope) {
  LST_CHECK_SHAPE(y.shape() == x.shape() && slope.shape() == x.shape(), "activation: output ", y.shape(),
                  " and slope ", slope.shape(), " must have the input's shape ", x.shape());
  if constexpr (std::is_same_v<Backend, Cpu>) {
    if (kind == ActivationKind::gelu) {
      detail::gelu_erf_and_slope_chunked(x.data(), y.data(), slope.data(), x.numel());
      return;
    }
  }
  activation_forward<T, Backend>(kind, x, y);
  slope.fill(T(1));
  activation_backward<T, Backend>(kind, x, slope, slope);  // 1 * act'(x), in place
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
