// SPDX-License-Identifier: MIT
/// @file feed_forward.hpp
/// @brief The transformer's position-wise feed-forward block, y = fc2(act(fc1(x))) (Vaswani et al.
/// 2017, 3.3).
#pragma once

#include <string>

#include "activation.hpp"
#include "linear.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class FeedForward {
 public:
  struct Context {
    typename Linear<T, Backend>::Context fc1;  // input x (N, C)
    Tensor<T, Backend> pre_activation;         // (N, F): act(h) is recomputed in backward, not stored
  };

  FeedForward(ParameterArena<T, Backend>& arena, const std::string& name, index_t dim, index_t hidden,
              ActivationKind act)
      : m_name(name),
        m_fc1(arena, name + ".fc1", dim, hidden),
        m_fc2(arena, name + ".fc2", hidden, dim),
        m_act(act) {}

  const Linear<T, Backend>& fc1() const { return m_fc1; }
  const Linear<T, Backend>& fc2() const { return m_fc2; }
  ActivationKind activation() const { return m_act; }

  /// y (..., C) = fc2(act(fc1(x (..., C)))).
  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode) const {
    const index_t rows = x.shape().rows();
    Context ctx;
    const bool keep = mode == Mode::training;
    Tensor<T, Backend> h(Shape{rows, m_fc1.out_features()},
                         keep ? MemCategory::activations : MemCategory::workspace);
    ctx.fc1 = m_fc1.forward(x, h, mode);
    if (keep) {
      Tensor<T, Backend> a(h.shape(), MemCategory::workspace);
      activation_forward<T, Backend>(m_act, h, a);
      m_fc2.apply(a, y);
      ctx.pre_activation = std::move(h);
    } else {
      activation_forward<T, Backend>(m_act, h, h);  // nothing to keep: activate in place
      m_fc2.apply(h, y);
    }
    return ctx;
  }

  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx, GradMode gm) const {
    LST_CHECK(!ctx.pre_activation.empty(), "FeedForward '", m_name,
              "': backward needs a context from a training-mode forward");
    const ConstView<T, Backend> h = ctx.pre_activation.cview();
    // Two (N, F) buffers, as a recomputed forward and a separate derivative would take: `a` holds act(h) for
    // fc2's weight gradient, then the gradient that flows back; `slope` holds act'(h).
    Tensor<T, Backend> a(h.shape(), MemCategory::workspace), slope(h.shape(), MemCategory::workspace);
    activation_and_slope<T, Backend>(m_act, h, a, slope);  // GELU: one erf for both
    m_fc2.backward_from(a, dy, {}, gm);                    // the weight gradients, a's last read
    m_fc2.input_gradient(dy, a);                           // da = dy W2, over act(h)
    a = a * slope;                                         // dh = da * act'(h)
    m_fc1.backward(ctx.fc1, a, dx, gm);
  }

 private:
  std::string m_name;
  Linear<T, Backend> m_fc1, m_fc2;
  ActivationKind m_act;
};

LST_NAMESPACE_END
