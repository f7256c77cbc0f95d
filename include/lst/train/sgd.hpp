// SPDX-License-Identifier: MIT
/// @file sgd.hpp
/// @brief Stochastic gradient descent with optional heavy-ball momentum (PyTorch's formulation:
///        b = mu b + g, w -= lr b) and decoupled weight decay.
#pragma once

#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN

struct SgdConfig {
  double momentum = 0.0;
  double weight_decay = 0.0;  // decoupled: w -= lr * wd * w
};

/// Updates one arena from its gradients. The momentum buffer (category `optimizer`) exists only when
/// momentum > 0: plain SGD keeps no state at all.
template <class T, class Backend = Cpu>
class Sgd {
 public:
  Sgd(const ParameterArena<T, Backend>& arena, SgdConfig cfg = {}) : m_arena(arena), m_cfg(cfg) {
    LST_CHECK(arena.has_gradients(), "SGD: parameter arena '", arena.name(), "' holds no gradients (frozen)");
    LST_CHECK(cfg.momentum >= 0 && cfg.momentum < 1 && cfg.weight_decay >= 0,
              "SGD: need 0 <= momentum < 1 and weight_decay >= 0 (got ", cfg.momentum, ", ", cfg.weight_decay,
              ")");
    if (cfg.momentum > 0) m_buf = Tensor<T, Backend>::zeros(Shape{arena.size()}, MemCategory::optimizer);
  }

  void step(double lr) {
    ++m_t;
    const TensorView<T, Backend> w = m_arena.values(), g = m_arena.grads();
    const T decay = T(1.0 - lr * m_cfg.weight_decay), rate = T(lr);
    if (m_cfg.momentum > 0) {
      // The first step starts the buffer at g, as PyTorch does (not at (1 - mu) g).
      if (m_t == 1)
        m_buf.view().assign(g);
      else
        m_buf = T(m_cfg.momentum) * m_buf + g;
      w = decay * w - rate * m_buf;
    } else {
      w = decay * w - rate * g;
    }
  }
  long steps() const { return m_t; }
  TensorView<T, Backend> momentum_buffer() const { return m_buf.view(); }
  void set_steps(long t) { m_t = t; }

 private:
  const ParameterArena<T, Backend>& m_arena;
  SgdConfig m_cfg;
  Tensor<T, Backend> m_buf;  // (arena.size()) momentum, empty without momentum
  long m_t = 0;
};

LST_NAMESPACE_END
