// SPDX-License-Identifier: MIT
/// @file layer_norm.hpp
/// @brief LayerNorm over the last axis, forward and backward, row by row (Ba, Kiros, Hinton 2016).
#pragma once

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's LayerNorm rows (backends/<name>/layer_norm.hpp), over (N, C) row-major data:
///   forward(x, gamma, beta, eps, y, xhat, rstd, N, C)       y = (x - mean) rstd gamma + beta; xhat and rstd
///                                                           written when not null; y may alias x
///   parameter_gradients(xhat, dy, dgamma, dbeta, N, C)      dgamma += sum dy xhat, dbeta += sum dy (either
///                                                           may be null: that parameter is frozen)
///   input_gradient(xhat, rstd, gamma, dy, dx, N, C)         dx = rstd (g - mean(g) - xhat mean(g xhat)),
///                                                           g = dy gamma; dx may alias dy
template <class Backend>
struct LayerNormKernel;
}  // namespace ops

/// y (N, C) = LN(x) with gain gamma and bias beta (C); xhat (N, C) and rstd (N), when not empty, receive the
/// normalised input and 1 / sqrt(var + eps) that backward reads. Two passes over each row (mean, then the
/// centred variance): exact enough where E[x^2] - E[x]^2 cancels catastrophically.
template <class T, class Backend>
void layer_norm_forward(ConstView<T, Backend> x, ConstView<T, Backend> gamma, ConstView<T, Backend> beta,
                        T eps, TensorView<T, Backend> y, TensorView<T, Backend> xhat,
                        TensorView<T, Backend> rstd) {
  const index_t rows = x.shape().rows(), c = x.shape().cols();
  ops::LayerNormKernel<Backend>::forward(x.data(), gamma.data(), beta.data(), eps, y.data(),
                                         xhat.empty() ? nullptr : xhat.data(),
                                         rstd.empty() ? nullptr : rstd.data(), rows, c);
}
/// dgamma (C) += sum over rows of dy * xhat, dbeta (C) += sum of dy; an empty dgamma or dbeta is skipped.
template <class T, class Backend>
void layer_norm_parameter_gradients(ConstView<T, Backend> xhat, ConstView<T, Backend> dy,
                                    TensorView<T, Backend> dgamma, TensorView<T, Backend> dbeta) {
  ops::LayerNormKernel<Backend>::parameter_gradients(
      xhat.data(), dy.data(), dgamma.empty() ? nullptr : dgamma.data(),
      dbeta.empty() ? nullptr : dbeta.data(), xhat.shape().rows(), xhat.shape().cols());
}
/// dx (N, C) = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma. dx may alias dy.
template <class T, class Backend>
void layer_norm_input_gradient(ConstView<T, Backend> xhat, ConstView<T, Backend> rstd,
                               ConstView<T, Backend> gamma, ConstView<T, Backend> dy,
                               TensorView<T, Backend> dx) {
  ops::LayerNormKernel<Backend>::input_gradient(xhat.data(), rstd.data(), gamma.data(), dy.data(), dx.data(),
                                                xhat.shape().rows(), xhat.shape().cols());
}

LST_NAMESPACE_END

#include "../backends/cpu/layer_norm.hpp"
