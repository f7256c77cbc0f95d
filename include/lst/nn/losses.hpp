// SPDX-License-Identifier: MIT
/// @file losses.hpp
/// @brief Softmax cross-entropy (classification) and mean squared error (regression, STS-B), fused with their
///        gradients.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

/// Mean cross-entropy of softmax(logits (N, K)) against labels (N); a negative label is ignored (PyTorch's
/// ignore_index convention) and excluded from the mean. Writes dL/dlogits into `dlogits` (N, K) when
/// non-empty. Computed with log-sum-exp, so large logits never overflow.
template <class T, class Backend>
T cross_entropy(ConstView<T, Backend> logits, ConstView<std::int32_t, Backend> labels,
                TensorView<T, Backend> dlogits) {
  LST_CHECK_SHAPE(logits.rank() == 2 && labels.numel() == logits.dim(0), "cross_entropy: logits have shape ",
                  logits.shape(), " and labels ", labels.shape(), ", expected (N, K) and (N)");
  LST_CHECK_SHAPE(dlogits.data() == nullptr || dlogits.shape() == logits.shape(),
                  "cross_entropy: dlogits has shape ", dlogits.shape(), ", expected the logits' shape ",
                  logits.shape());
  const index_t N = logits.dim(0), K = logits.dim(1);
  LST_CHECK_SHAPE(K > 0, "cross_entropy: logits have shape ", logits.shape(), ": no classes");
  index_t counted = 0;
  for (index_t n = 0; n < N; ++n) {
    const std::int32_t y = labels.data()[n];
    LST_CHECK(y < K, "cross_entropy: label ", y, " of example ", n, " is not below the class count ", K);
    counted += y >= 0;
  }
  double loss = 0;
  const T inv = counted ? T(1) / T(counted) : T(0);
  for (index_t n = 0; n < N; ++n) {
    const T* z = logits.data() + n * K;
    const std::int32_t y = labels.data()[n];
    T mx = z[0];
    for (index_t j = 1; j < K; ++j) mx = z[j] > mx ? z[j] : mx;
    T sum = 0;
    for (index_t j = 0; j < K; ++j) sum += std::exp(z[j] - mx);
    const T lse = mx + std::log(sum);
    if (y >= 0) loss += double(lse - z[y]);
    if (dlogits.data()) {
      T* d = dlogits.data() + n * K;
      for (index_t j = 0; j < K; ++j)
        d[j] = y >= 0 ? (std::exp(z[j] - lse) - (j == y ? T(1) : T(0))) * inv : T(0);
    }
  }
  return counted ? static_cast<T>(loss / double(counted)) : T(0);
}

/// Mean of (prediction - target)^2 over N elements; writes dL/dprediction = 2 (p - t) / N when `dpred` is
/// non-empty. `pred` may be (N) or (N, 1) (a regression head's output).
template <class T, class Backend>
T mse_loss(ConstView<T, Backend> pred, ConstView<T, Backend> target, TensorView<T, Backend> dpred) {
  LST_CHECK_SHAPE(pred.numel() == target.numel(), "mse_loss: predictions have shape ", pred.shape(),
                  " and targets ", target.shape(), ": element counts differ");
  LST_CHECK_SHAPE(dpred.data() == nullptr || dpred.numel() == pred.numel(), "mse_loss: dpred has shape ",
                  dpred.shape(), ", expected the predictions' shape ", pred.shape());
  const index_t N = pred.numel();
  double loss = 0;
  for (index_t n = 0; n < N; ++n) {
    const T e = pred.data()[n] - target.data()[n];
    loss += double(e) * double(e);
    if (dpred.data()) dpred.data()[n] = T(2) * e / T(N);
  }
  return N ? static_cast<T>(loss / double(N)) : T(0);
}

LST_NAMESPACE_END
