// SPDX-License-Identifier: MIT
/// @file losses.hpp
/// @brief Softmax cross-entropy and squared error, each fused with its gradient (nn/losses.hpp's losses).
#pragma once

#include <cstdint>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

/// What a backend's cross-entropy returns: the loss summed (in double) over the `counted` rows whose label is
/// not negative, or, when `bad_row` >= 0, the first row whose label `bad_label` is not below the class count
/// (then nothing was computed).
struct CrossEntropySum {
  double sum = 0;
  index_t counted = 0;
  index_t bad_row = -1;
  std::int32_t bad_label = 0;
};

namespace ops {
/// A backend's losses (backends/<name>/losses.hpp):
///   cross_entropy(z, labels, N, K, dz) -> CrossEntropySum   softmax cross-entropy of the (N, K) logits rows
///                 against labels (N), a negative label ignored; first checks every label is below K (else
///                 returns the first that is not), then sums lse(z) - z[label] over the counted rows in row
///                 order, in double, and writes dz (when not null) = (softmax(z) - onehot) / counted, 0 on an
///                 ignored row
///   squared_error(p, t, N, dp) -> double                     sum of (p - t)^2 in element order, in double;
///                 dp (when not null) = 2 (p - t) / N
template <class Backend>
struct LossKernel;
}  // namespace ops

/// Mean cross-entropy of softmax(logits (N, K)) against labels (N), negative labels ignored (and left out of
/// the mean); dlogits (N, K), when not empty, receives dL/dlogits. Log-sum-exp: large logits never overflow.
template <class T, class Backend>
T softmax_cross_entropy(ConstView<T, Backend> logits, ConstView<std::int32_t, Backend> labels,
                        TensorView<T, Backend> dlogits) {
  LST_CHECK_SHAPE(logits.rank() == 2 && labels.numel() == logits.dim(0), "cross_entropy: logits have shape ",
                  logits.shape(), " and labels ", labels.shape(), ", expected (N, K) and (N)");
  LST_CHECK_SHAPE(dlogits.data() == nullptr || dlogits.shape() == logits.shape(),
                  "cross_entropy: dlogits has shape ", dlogits.shape(), ", expected the logits' shape ",
                  logits.shape());
  const index_t N = logits.dim(0), K = logits.dim(1);
  LST_CHECK_SHAPE(K > 0, "cross_entropy: logits have shape ", logits.shape(), ": no classes");
  const CrossEntropySum s =
      ops::LossKernel<Backend>::cross_entropy(logits.data(), labels.data(), N, K, dlogits.data());
  LST_CHECK(s.bad_row < 0, "cross_entropy: label ", s.bad_label, " of example ", s.bad_row,
            " is not below the class count ", K);
  return s.counted ? static_cast<T>(s.sum / double(s.counted)) : T(0);
}

/// Mean of (prediction - target)^2 over the N elements of pred; dpred, when not empty, receives
/// dL/dpred = 2 (pred - target) / N. Only the element counts must agree: pred may be (N) or (N, 1).
template <class T, class Backend>
T mean_squared_error(ConstView<T, Backend> pred, ConstView<T, Backend> target, TensorView<T, Backend> dpred) {
  LST_CHECK_SHAPE(pred.numel() == target.numel(), "mse_loss: predictions have shape ", pred.shape(),
                  " and targets ", target.shape(), ": element counts differ");
  LST_CHECK_SHAPE(dpred.data() == nullptr || dpred.numel() == pred.numel(), "mse_loss: dpred has shape ",
                  dpred.shape(), ", expected the predictions' shape ", pred.shape());
  const index_t N = pred.numel();
  const double sum = ops::LossKernel<Backend>::squared_error(pred.data(), target.data(), N, dpred.data());
  return N ? static_cast<T>(sum / double(N)) : T(0);
}

LST_NAMESPACE_END

#include "../backends/cpu/losses.hpp"
