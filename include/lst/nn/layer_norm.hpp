// SPDX-License-Identifier: MIT
/// @file layer_norm.hpp
/// @brief LayerNorm over the last axis (Ba, Kiros, Hinton 2016): y = (x - mean) / sqrt(var + eps) * gamma +
/// beta.
#pragma once

#include <cmath>
#include <string>

#include "../ops/layer_norm.hpp"
#include "parameter_arena.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class LayerNorm {
 public:
  struct Context {
    Tensor<T, Backend> xhat;  // (N, C) normalised input, training mode only
    Tensor<T, Backend> rstd;  // (N) 1 / sqrt(var + eps)
  };

  /// eps defaults to BERT's 1e-12; T5 and GPT-2 use other values, so it is a parameter.
  LayerNorm(ParameterArena<T, Backend>& arena, const std::string& name, index_t dim, double eps = 1e-12)
      : m_name(name), m_dim(dim), m_eps(eps) {
    LST_CHECK(dim > 0 && eps >= 0, "LayerNorm '", name, "': needs width > 0 and eps >= 0 (got ", dim, ", ",
              eps, ")");
    m_gamma = arena.add(name + ".weight", Shape{dim}, ParamRole::norm_gain);
    m_beta = arena.add(name + ".bias", Shape{dim}, ParamRole::norm_bias);
  }
  const std::string& name() const { return m_name; }
  index_t dim() const { return m_dim; }
  double eps() const { return m_eps; }
  const Param<T, Backend>& weight() const { return m_gamma; }  // (C)
  const Param<T, Backend>& bias() const { return m_beta; }     // (C)

  /// y (..., C) = LN(x (..., C)). Training keeps x-hat and 1/std (the input itself is not needed).
  /// y may alias x (in-place normalisation of a residual stream).
  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode) const {
    LST_CHECK_SHAPE(x.rank() >= 1 && x.shape().cols() == m_dim, "LayerNorm '", m_name,
                    "': input x has shape ", x.shape(), ", expected last dimension ", m_dim);
    LST_CHECK_SHAPE(y.shape() == x.shape(), "LayerNorm '", m_name, "': output y has shape ", y.shape(),
                    ", expected the input's shape ", x.shape());
    const index_t rows = x.shape().rows(), c = m_dim;
    Context ctx;
    const bool keep = mode == Mode::training;
    if (keep) {
      ctx.xhat = Tensor<T, Backend>(Shape{rows, c}, MemCategory::activations);
      ctx.rstd = Tensor<T, Backend>(Shape{rows}, MemCategory::activations);
    }
    layer_norm_forward<T, Backend>(x, m_gamma.value(), m_beta.value(), T(m_eps), y,
                                   keep ? ctx.xhat.view() : TensorView<T, Backend>(),
                                   keep ? ctx.rstd.view() : TensorView<T, Backend>());
    return ctx;
  }

  /// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; dgamma = sum dy * xhat, dbeta =
  /// sum dy.
  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx, GradMode gm) const {
    LST_CHECK(!ctx.xhat.empty(), "LayerNorm '", m_name,
              "': backward needs a context from a training-mode forward");
    const index_t rows = ctx.xhat.shape().rows(), c = m_dim;
    LST_CHECK_SHAPE(dy.numel() == rows * c && dy.shape().cols() == c, "LayerNorm '", m_name,
                    "': output gradient dy has shape ", dy.shape(), ", expected ", rows, " rows of ", c);
    if (gm != GradMode::ignore) {
      // A frozen gain or bias gets no gradient (norm tuning trains both, BitFit the bias alone).
      const TensorView<T, Backend> dg = m_gamma.grad_to_write("LayerNorm", m_name),
                                   db = m_beta.grad_to_write("LayerNorm", m_name);
      if (gm == GradMode::overwrite) {
        if (!dg.empty()) dg.set_zero();
        if (!db.empty()) db.set_zero();
      }
      if (!dg.empty() || !db.empty()) layer_norm_parameter_gradients<T, Backend>(ctx.xhat, dy, dg, db);
    }
    if (dx.data() == nullptr) return;
    LST_CHECK_SHAPE(dx.numel() == rows * c && dx.shape().cols() == c, "LayerNorm '", m_name,
                    "': input gradient dx has shape ", dx.shape(), ", expected ", rows, " rows of ", c);
    layer_norm_input_gradient<T, Backend>(ctx.xhat, ctx.rstd, m_gamma.value(), dy, dx);
  }

 private:
  std::string m_name;
  index_t m_dim;
  double m_eps;
  Param<T, Backend> m_gamma, m_beta;
};

LST_NAMESPACE_END
