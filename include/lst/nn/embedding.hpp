// SPDX-License-Identifier: MIT
/// @file embedding.hpp
/// @brief Embedding lookup y[n] = W[id[n]], W (vocab, dim).
#pragma once

#include <cstdint>
#include <string>

#include "parameter_arena.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class Embedding {
 public:
  struct Context {
    Tensor<std::int32_t, Backend> ids;  // (...), training mode only
  };

  Embedding(ParameterArena<T, Backend>& arena, const std::string& name, index_t num_embeddings, index_t dim)
      : m_name(name), m_num(num_embeddings), m_dim(dim) {
    m_weight = arena.add(name + ".weight", Shape{num_embeddings, dim});
  }
  const std::string& name() const { return m_name; }
  index_t num_embeddings() const { return m_num; }
  index_t dim() const { return m_dim; }
  const Param<T, Backend>& weight() const { return m_weight; }  // (vocab, dim)

  /// y (..., dim) = W[ids (...)]. An id outside [0, vocab) is an error naming the position, never a wild
  /// read.
  Context forward(ConstView<std::int32_t, Backend> ids, TensorView<T, Backend> y, Mode mode) const {
    LST_CHECK_SHAPE(y.numel() == ids.numel() * m_dim && y.shape().cols() == m_dim, "Embedding '", m_name,
                    "': output y has shape ", y.shape(), ", expected ids shape ", ids.shape(), " + (", m_dim,
                    ")");
    const T* w = m_weight.value().data();
    for (index_t n = 0; n < ids.numel(); ++n) {
      const std::int32_t id = ids.data()[n];
      LST_CHECK(id >= 0 && id < m_num, "Embedding '", m_name, "': id ", id, " at flat position ", n,
                " is outside [0, ", m_num, ")");
      std::copy(w + id * m_dim, w + (id + 1) * m_dim, y.data() + n * m_dim);
    }
    Context ctx;
    if (mode == Mode::training) {
      ctx.ids = Tensor<std::int32_t, Backend>(ids.shape(), MemCategory::activations);
      ctx.ids.view().assign(ids);
    }
    return ctx;
  }

  /// dW[id] += dy[n] for every position n (scatter-add; repeated ids accumulate). No input gradient: ids are
  /// discrete.
  void backward(const Context& ctx, ConstView<T, Backend> dy, GradMode gm) const {
    if (gm == GradMode::ignore) return;
    LST_CHECK(!ctx.ids.empty(), "Embedding '", m_name,
              "': backward needs a context from a training-mode forward");
    LST_CHECK_SHAPE(dy.numel() == ctx.ids.numel() * m_dim, "Embedding '", m_name,
                    "': output gradient dy has shape ", dy.shape(), ", expected ids shape ", ctx.ids.shape(),
                    " + (", m_dim, ")");
    const TensorView<T, Backend> dw = m_weight.grad_to_write("Embedding", m_name);
    if (gm == GradMode::overwrite) dw.set_zero();
    for (index_t n = 0; n < ctx.ids.numel(); ++n) {
      T* row = dw.data() + ctx.ids.data()[n] * m_dim;
      const T* g = dy.data() + n * m_dim;
      for (index_t j = 0; j < m_dim; ++j) row[j] += g[j];
    }
  }

 private:
  std::string m_name;
  index_t m_num, m_dim;
  Param<T, Backend> m_weight;
};

LST_NAMESPACE_END
