// SPDX-License-Identifier: MIT
/// @file embedding.hpp
/// @brief Embedding lookup y[n] = W[id[n]], W (vocab, dim).
#pragma once

#include <cstdint>
#include <string>

#include "../ops/embedding.hpp"
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
    m_weight = arena.add(name + ".weight", Shape{num_embeddings, dim}, ParamRole::embedding);
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
    const EmbeddingBadId bad = embedding_gather<T, Backend>(m_weight.value(), ids, y);
    LST_CHECK(!bad, "Embedding '", m_name, "': id ", bad.id, " at flat position ", bad.position,
              " is outside [0, ", m_num, ")");
    Context ctx;
    if (mode == Mode::training && m_weight.trainable()) {  // a frozen table needs no ids for backward
      ctx.ids = Tensor<std::int32_t, Backend>(ids.shape(), MemCategory::activations);
      ctx.ids.view().assign(ids);
    }
    return ctx;
  }

  /// dW[id] += dy[n] for every position n (scatter-add; repeated ids accumulate). No input gradient: ids are
  /// discrete.
  void backward(const Context& ctx, ConstView<T, Backend> dy, GradMode gm) const {
    if (gm == GradMode::ignore) return;
    const TensorView<T, Backend> dw = m_weight.grad_to_write("Embedding", m_name);
    if (dw.empty()) return;  // a frozen table
    LST_CHECK(!ctx.ids.empty(), "Embedding '", m_name,
              "': backward needs a context from a training-mode forward");
    LST_CHECK_SHAPE(dy.numel() == ctx.ids.numel() * m_dim, "Embedding '", m_name,
                    "': output gradient dy has shape ", dy.shape(), ", expected ids shape ", ctx.ids.shape(),
                    " + (", m_dim, ")");
    if (gm == GradMode::overwrite) dw.set_zero();
    embedding_scatter_add<T, Backend>(ctx.ids, dy, dw);
  }

 private:
  std::string m_name;
  index_t m_num, m_dim;
  Param<T, Backend> m_weight;
};

LST_NAMESPACE_END
