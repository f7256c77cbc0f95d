// SPDX-License-Identifier: MIT
/// @file activation.hpp
/// @brief The CPU's activations (ops/activation.hpp): GELU (erf) through the vectorised kernels of gelu.hpp,
///        the other kinds as expressions.
#pragma once

#include "../../ops/activation.hpp"
#include "executor.hpp"
#include "gelu.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// GELU (erf) runs through cpu::gelu_erf and friends (gelu.hpp: vectorised erf without a division on
/// AVX-512, Eigen's array erf elsewhere): the scalar std::erf made GELU about 12 % of a fine-tuning step's
/// time. Long tensors run in fixed chunks of `chunk` elements on several threads; on AVX-512 a float's result
/// depends on its value alone, so the split over threads does not change a bit.
template <>
struct ActivationKernel<Cpu> {
  static constexpr long chunk = 1L << 14;

  template <class T>
  static void forward(ActivationKind kind, ConstView<T, Cpu> x, TensorView<T, Cpu> y) {
    if (kind != ActivationKind::gelu) return ActivationExpressions::forward(kind, x, y);
    const T* in = x.data();
    T* out = y.data();
    for_each_chunk(x.numel(), chunk,
                   [&](long begin, long end) { cpu::gelu_erf(in + begin, out + begin, end - begin); });
  }
  // dx = dy * (Phi(x) + x phi(x)), phi the standard normal density.
  template <class T>
  static void backward(ActivationKind kind, ConstView<T, Cpu> x, ConstView<T, Cpu> dy,
                       TensorView<T, Cpu> dx) {
    if (kind != ActivationKind::gelu) return ActivationExpressions::backward(kind, x, dy, dx);
    const T *in = x.data(), *g = dy.data();
    T* out = dx.data();
    for_each_chunk(x.numel(), chunk, [&](long begin, long end) {
      cpu::gelu_erf_gradient(in + begin, g + begin, out + begin, end - begin);
    });
  }
  // y = x Phi(x) and slope = Phi(x) + x phi(x) from one erf and one exp: a backward pass that needs both the
  // activation (for the next layer's weight gradient) and its derivative no longer evaluates erf twice.
  template <class T>
  static void forward_and_slope(ActivationKind kind, ConstView<T, Cpu> x, TensorView<T, Cpu> y,
                                TensorView<T, Cpu> slope) {
    if (kind == ActivationKind::gelu) {
      const T* in = x.data();
      T *out = y.data(), *s = slope.data();
      for_each_chunk(x.numel(), chunk, [&](long begin, long end) {
        cpu::gelu_erf_and_slope(in + begin, out + begin, s + begin, end - begin);
      });
      return;
    }
    forward(kind, x, y);
    slope.fill(T(1));
    backward<T>(kind, x, slope, slope);  // 1 * act'(x), in place
  }
};
}  // namespace ops

LST_NAMESPACE_END
