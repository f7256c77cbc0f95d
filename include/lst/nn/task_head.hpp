// SPDX-License-Identifier: MIT
/// @file task_head.hpp
/// @brief The task head of BERT's sequence classifier (Devlin et al. 2019, section 4.1; Hugging Face's
///        BertForSequenceClassification): pooled (B, C) -> dropout -> linear -> logits (B, K). K = 1 is the
///        regression head (STS-B), trained with MSE on its single output.
#pragma once

#include <cstdint>
#include <string>

#include "../core/initializers.hpp"
#include "../core/random.hpp"
#include "dropout.hpp"
#include "linear.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class TaskHead {
 public:
  struct Context {
    typename Dropout<T, Backend>::Context dropout;
    typename Linear<T, Backend>::Context classifier;
  };

  /// `outputs` classes (1 = regression). Its own trainable parameter group "head", initialised as BERT's
  /// (weights N(0, 0.02), bias 0) from `seed`.
  TaskHead(index_t features, index_t outputs, double dropout, std::uint64_t seed)
      : m_params("head"),
        m_dropout(dropout, mix64(seed ^ 0x4845414400000000ull), "head.dropout"),
        m_classifier(m_params, "classifier", features, outputs) {
    LST_CHECK(outputs >= 1, "TaskHead: needs at least one output (got ", outputs, ")");
    m_params.allocate(true);
    Rng rng(seed);
    init::normal(m_classifier.weight().value(), rng, 0.02);
  }
  TaskHead(const TaskHead&) = delete;
  TaskHead& operator=(const TaskHead&) = delete;

  index_t outputs() const { return m_classifier.out_features(); }
  ParameterArena<T, Backend>& parameters() { return m_params; }
  const ParameterArena<T, Backend>& parameters() const { return m_params; }

  /// logits (B, K) = W dropout(pooled (B, C)) + b. `step` draws the dropout mask.
  Context forward(ConstView<T, Backend> pooled, TensorView<T, Backend> logits, Mode mode,
                  std::uint64_t step) const {
    Context ctx;
    Tensor<T, Backend> dropped(pooled.shape());
    ctx.dropout = m_dropout.forward(pooled, dropped, mode, step);
    ctx.classifier = m_classifier.forward(dropped, logits, mode);
    return ctx;
  }
  /// d_pooled (B, C) from d_logits (B, K); the head's gradients follow `gm`.
  void backward(const Context& ctx, ConstView<T, Backend> d_logits, TensorView<T, Backend> d_pooled,
                GradMode gm) const {
    m_classifier.backward(ctx.classifier, d_logits, d_pooled, gm);
    m_dropout.backward(ctx.dropout, d_pooled, d_pooled);
  }

 private:
  ParameterArena<T, Backend> m_params;
  Dropout<T, Backend> m_dropout;
  Linear<T, Backend> m_classifier;
};

LST_NAMESPACE_END
