// SPDX-License-Identifier: MIT
/// @file adamw.hpp
/// @brief AdamW (Loshchilov & Hutter 2019, Algorithm 2): Adam with bias correction and decoupled weight
/// decay.
#pragma once

#include <cmath>

#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;  // decoupled: w -= lr * wd * w, not added to the gradient
};

/// Updates every parameter of one arena from that arena's gradients. Its two moment buffers are allocated
/// once, as large as the arena, in category `optimizer`: optimizer state exists only for trained groups.
template <class T, class Backend = Cpu>
class AdamW {
 public:
  AdamW(const ParameterArena<T, Backend>& arena, AdamWConfig cfg = {})
      : m_arena(arena),
        m_cfg(cfg),
        m_m(Tensor<T, Backend>::zeros(Shape{arena.size()}, MemCategory::optimizer)),
        m_v(Tensor<T, Backend>::zeros(Shape{arena.size()}, MemCategory::optimizer)) {
    LST_CHECK(arena.has_gradients(), "AdamW: parameter arena '", arena.name(),
              "' holds no gradients (frozen)");
    LST_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1 && cfg.eps > 0 &&
                  cfg.weight_decay >= 0,
              "AdamW: need 0 <= beta1, beta2 < 1, eps > 0 and weight_decay >= 0 (got ", cfg.beta1, ", ",
              cfg.beta2, ", ", cfg.eps, ", ", cfg.weight_decay, ")");
  }

  /// One update with learning rate `lr` (the schedule lives with the caller).
  void step(double lr) {
    ++m_t;
    const T b1 = T(m_cfg.beta1), b2 = T(m_cfg.beta2);
    // Bias corrections folded into the step size (Kingma & Ba 2015, end of section 2).
    const T c1 = T(1.0 / (1.0 - std::pow(m_cfg.beta1, double(m_t))));
    const T c2 = T(1.0 / (1.0 - std::pow(m_cfg.beta2, double(m_t))));
    const T step = T(lr), decay = T(1.0 - lr * m_cfg.weight_decay), eps = T(m_cfg.eps);
    const TensorView<T, Backend> w = m_arena.values(), g = m_arena.grads();
    // Three expressions, each one pass over the arena: moments, then the decoupled-decay update.
    m_m = b1 * m_m + (T(1) - b1) * g;
    m_v = b2 * m_v + (T(1) - b2) * g * g;
    w = decay * w - step * (m_m * c1) / (sqrt(m_v * c2) + eps);
  }
  long steps() const { return m_t; }

 private:
  const ParameterArena<T, Backend>& m_arena;
  AdamWConfig m_cfg;
  Tensor<T, Backend> m_m, m_v;  // (arena.size()) first and second moments
  long m_t = 0;
};

LST_NAMESPACE_END
