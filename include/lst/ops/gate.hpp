// SPDX-License-Identifier: MIT
/// @file gate.hpp
/// @brief Ladder Side-Tuning's gate (Sung, Cho, Bansal 2022, section 2.2): s = mu s + (1 - mu) z per channel,
///        and its backward.
#pragma once

#include <vector>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's gate (backends/<name>/gate.hpp), over (N, C) rows with per-channel factors mu (C, on the
/// host):
///   mix(mu, s, z, kept, N, C)                 s = mu s + (1 - mu) z in place; kept (not null) gets s before
///   backward(mu, ds, a, b, dz, N, C) -> sums  dz = (1 - mu) ds, ds = mu ds; returns per channel the sum over
///                                             rows of ds (a - b), in double, the same bits on any number of
///                                             threads
template <class Backend>
struct GateKernel;
}  // namespace ops

/// s (N, C) = mu s + (1 - mu) z with mu (C) per channel; `kept`, when not empty, receives s as it was.
template <class T, class Backend>
void gate_mix(const std::vector<T>& mu, TensorView<T, Backend> s, ConstView<T, Backend> z,
              TensorView<T, Backend> kept) {
  const index_t C = index_t(mu.size()), rows = s.numel() / C;
  LST_CHECK_SHAPE(
      s.numel() == rows * C && z.numel() == s.numel() && (kept.empty() || kept.numel() == s.numel()),
      "gate: state ", s.shape(), ", ladder output ", z.shape(), " and ", C, " channels disagree");
  ops::GateKernel<Backend>::mix(mu.data(), s.data(), z.data(), kept.empty() ? nullptr : kept.data(), rows, C);
}
/// The gate's backward over ds = dL/d(mu a + (1 - mu) b): dz = (1 - mu) ds, ds becomes mu ds, and the result
/// is, per channel c, the sum over rows of ds (a - b) (double), from which dL/dmu follows.
template <class T, class Backend>
std::vector<double> gate_backward(const std::vector<T>& mu, TensorView<T, Backend> ds,
                                  ConstView<T, Backend> a, ConstView<T, Backend> b,
                                  TensorView<T, Backend> dz) {
  const index_t C = index_t(mu.size()), rows = ds.numel() / C;
  LST_CHECK_SHAPE(a.numel() == ds.numel() && b.numel() == ds.numel() && dz.numel() == ds.numel(),
                  "gate backward: ds ", ds.shape(), ", a ", a.shape(), ", b ", b.shape(), " and dz ",
                  dz.shape(), " must have as many elements");
  return ops::GateKernel<Backend>::backward(mu.data(), ds.data(), a.data(), b.data(), dz.data(), rows, C);
}

LST_NAMESPACE_END

#include "../backends/cpu/gate.hpp"
