// SPDX-License-Identifier: MIT
/// @file adamw.hpp
/// @brief AdamW (Loshchilov & Hutter 2019, Algorithm 2): Adam with bias correction and decoupled weight
/// decay.
#pragma once

#include <cmath>
#include <string>

#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;  // decoupled: w -= lr * wd * w, not added to the gradient
  /// BERT's recipe (and Hugging Face's Trainer) exempts biases and LayerNorm parameters from decay:
  /// shrinking a LayerNorm gain towards zero is not regularisation.
  bool decay_biases_and_norms = false;
};

/// True for the parameters weight decay leaves alone under BERT's recipe, by name: names ending in "bias",
/// and every parameter of a normalisation layer ("LayerNorm", "attention_norm", "output_norm", "final_norm").
inline bool is_bias_or_norm(const std::string& name) {
  const auto ends_with = [&](const char* s) {
    const std::string t(s);
    return name.size() >= t.size() && name.compare(name.size() - t.size(), t.size(), t) == 0;
  };
  return ends_with("bias") || name.find("LayerNorm") != std::string::npos ||
         name.find("norm.") != std::string::npos;
}
/// The same by a parameter's role (a bias, a norm's gain or bias); a parameter registered without a role
/// (ParamRole::other) is judged by its name.
inline bool is_bias_or_norm(ParamRole role, const std::string& name) {
  if (role == ParamRole::other) return is_bias_or_norm(name);
  return role == ParamRole::bias || role == ParamRole::norm_gain || role == ParamRole::norm_bias;
}

/// Updates every trainable parameter of one arena from its gradient. Its two moment buffers are allocated
/// once, as large as the arena's gradient block, in category `optimizer`: optimizer state exists only for
/// the parameters that train.
template <class T, class Backend = Cpu>
class AdamW {
 public:
  AdamW(const ParameterArena<T, Backend>& arena, AdamWConfig cfg = {})
      : m_arena(arena),
        m_cfg(cfg),
        m_m(Tensor<T, Backend>::zeros(Shape{arena.gradient_size()}, MemCategory::optimizer)),
        m_v(Tensor<T, Backend>::zeros(Shape{arena.gradient_size()}, MemCategory::optimizer)) {
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
    const T step = T(lr), eps = T(m_cfg.eps);
    const T decay = T(1.0 - lr * m_cfg.weight_decay);
    // Parameter by parameter (a decay factor each); three expressions, each one pass over the parameter.
    for (std::size_t i = 0; i < m_arena.count(); ++i) {
      if (!m_arena.trainable(i)) continue;
      const auto& info = m_arena.info(i);
      const TensorView<T, Backend> w = m_arena.value(i), g = m_arena.grad(i);
      const TensorView<T, Backend> m(m_m.data() + info.grad_offset, info.shape),
          v(m_v.data() + info.grad_offset, info.shape);
      const T d = m_cfg.decay_biases_and_norms || !is_bias_or_norm(info.role, info.name) ? decay : T(1);
      m = b1 * m + (T(1) - b1) * g;
      v = b2 * v + (T(1) - b2) * g * g;
      w = d * w - step * (m * c1) / (sqrt(v * c2) + eps);
    }
  }
  long steps() const { return m_t; }
  /// The state a checkpoint needs to resume exactly: both moments and the step count.
  TensorView<T, Backend> first_moment() const { return m_m.view(); }
  TensorView<T, Backend> second_moment() const { return m_v.view(); }
  void set_steps(long t) {
    LST_CHECK(t >= 0, "AdamW: step count must be non-negative (got ", t, ")");
    m_t = t;
  }

 private:
  const ParameterArena<T, Backend>& m_arena;
  AdamWConfig m_cfg;
  Tensor<T, Backend> m_m, m_v;  // (arena.gradient_size()) first and second moments, laid out as the gradients
  long m_t = 0;
};

LST_NAMESPACE_END
