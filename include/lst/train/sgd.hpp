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
    if (cfg.momentum > 0)
      m_buf = Tensor<T, Backend>::zeros(Shape{arena.gradient_size()}, MemCategory::optimizer);
  }

  void step(double lr) {
    ++m_t;
    if (m_arena.all_trainable()) {  // one pass over the whole block: gradients are laid out as the weights
      update(m_arena.values(), m_arena.grads(), m_buf.view(), lr);
      return;
    }
    for (std::size_t i = 0; i < m_arena.count(); ++i) {
      if (!m_arena.trainable(i)) continue;
      const auto& info = m_arena.info(i);
      update(m_arena.value(i), m_arena.grad(i),
             m_buf.empty() ? TensorView<T, Backend>()
                           : TensorView<T, Backend>(m_buf.data() + info.grad_offset, info.shape),
             lr);
    }
  }
  long steps() const { return m_t; }
  TensorView<T, Backend> momentum_buffer() const { return m_buf.view(); }
  void set_steps(long t) { m_t = t; }

 private:
  /// w, g and the momentum buffer `buf` (empty without momentum) of one span of parameters.
  void update(TensorView<T, Backend> w, TensorView<T, Backend> g, TensorView<T, Backend> buf, double lr) {
    const T decay = T(1.0 - lr * m_cfg.weight_decay), rate = T(lr);
    if (m_cfg.momentum > 0) {
      // The first step starts the buffer at g, as PyTorch does (not at (1 - mu) g).
      if (m_t == 1)
        buf.assign(g);
      else
        buf = T(m_cfg.momentum) * buf + g;
      w = decay * w - rate * buf;
    } else {
      w = decay * w - rate * g;
    }
  }

  const ParameterArena<T, Backend>& m_arena;
  SgdConfig m_cfg;
  Tensor<T, Backend> m_buf;  // (arena.gradient_size()) momentum laid out as the gradients; empty without
  long m_t = 0;
};

LST_NAMESPACE_END
