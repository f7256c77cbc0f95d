// SPDX-License-Identifier: MIT
/// @file clip.hpp
/// @brief Gradient clipping by global norm (Pascanu et al. 2013, section 3.2): one norm over every trained
///        parameter group, and one common scale, so the update keeps its direction.
#pragma once

#include <cmath>
#include <vector>

#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN

/// sqrt(sum of squared gradients) over every group that holds gradients, accumulated in double in eight
/// interleaved partial sums (element i into sum i % 8, which vectorizes; one running sum waited on the
/// latency of every add), added up at the end.
template <class T>
double global_grad_norm(const std::vector<ParameterArena<T, Cpu>*>& groups) {
  constexpr index_t lanes = 8;
  double part[lanes] = {};
  for (const ParameterArena<T, Cpu>* g : groups) {
    if (!g->has_gradients()) continue;
    const T* d = g->grads().data();
    const index_t n = g->gradient_size(), whole = n - n % lanes;
    for (index_t i = 0; i < whole; i += lanes)
      for (index_t l = 0; l < lanes; ++l) part[l] += double(d[i + l]) * double(d[i + l]);
    for (index_t i = whole; i < n; ++i) part[i - whole] += double(d[i]) * double(d[i]);
  }
  double sum = 0;
  for (double p : part) sum += p;
  return std::sqrt(sum);
}

/// Scales every gradient by max_norm / norm when the global norm exceeds `max_norm` (> 0); returns the norm
/// before clipping, which is what a training log wants to show. A non-finite norm is an error: scaling NaN
/// gradients would hide the divergence.
template <class T>
double clip_grad_norm(const std::vector<ParameterArena<T, Cpu>*>& groups, double max_norm) {
  LST_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive (got ", max_norm, ")");
  const double norm = global_grad_norm(groups);
  LST_CHECK(std::isfinite(norm), "clip_grad_norm: the gradient norm is ", norm,
            ": training diverged (lower the learning rate)");
  if (norm > max_norm) {
    const T scale = T(max_norm / (norm + 1e-6));  // PyTorch's clip_grad_norm_ adds the same 1e-6
    for (ParameterArena<T, Cpu>* g : groups)
      if (g->has_gradients()) {
        const TensorView<T, Cpu> d = g->grads();
        d = d * scale;
      }
  }
  return norm;
}

LST_NAMESPACE_END
