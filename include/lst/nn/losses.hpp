// SPDX-License-Identifier: MIT
/// @file losses.hpp
/// @brief Softmax cross-entropy (classification) and mean squared error (regression, STS-B), fused with their
///        gradients.
#pragma once

#include <cstdint>

#include "../ops/losses.hpp"

LST_NAMESPACE_BEGIN

/// Mean cross-entropy of softmax(logits (N, K)) against labels (N); a negative label is ignored (PyTorch's
/// ignore_index convention) and excluded from the mean. Writes dL/dlogits into `dlogits` (N, K) when
/// non-empty. Computed with log-sum-exp, so large logits never overflow. (ops/losses.hpp's
/// softmax_cross_entropy.)
template <class T, class Backend>
T cross_entropy(ConstView<T, Backend> logits, ConstView<std::int32_t, Backend> labels,
                TensorView<T, Backend> dlogits) {
  return softmax_cross_entropy<T, Backend>(logits, labels, dlogits);
}

/// Mean of (prediction - target)^2 over N elements; writes dL/dprediction = 2 (p - t) / N when `dpred` is
/// non-empty. `pred` may be (N) or (N, 1) (a regression head's output). (ops/losses.hpp's
/// mean_squared_error.)
template <class T, class Backend>
T mse_loss(ConstView<T, Backend> pred, ConstView<T, Backend> target, TensorView<T, Backend> dpred) {
  return mean_squared_error<T, Backend>(pred, target, dpred);
}

LST_NAMESPACE_END
