// SPDX-License-Identifier: MIT
/// @file weight_average.hpp
/// @brief An exponential moving average of the trainable weights (Polyak & Juditsky 1992; the form of
///        TensorFlow's ExponentialMovingAverage with num_updates), evaluated in place of the weights.
///
/// Why: a small side network trained at a high learning rate ends each epoch at a point the last few hundred
/// noisy updates chose; the average over them generalises better, for one extra copy of the trainable
/// weights (3.3 M floats for LST at r = 2: 13 MB) and one pass over them per update. Training itself is not
/// touched: the raw weights follow the same trajectory with or without the average.
#pragma once

#include <algorithm>
#include <vector>

#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN

class WeightAverage {
 public:
  /// Starts the average at the groups' current weights. `decay` in (0, 1).
  WeightAverage(std::vector<ParameterArena<float>*> groups, double decay)
      : m_groups(std::move(groups)), m_decay(decay) {
    LST_CHECK(decay > 0 && decay < 1, "weight average: decay must be in (0, 1) (got ", decay, ")");
    for (ParameterArena<float>* g : m_groups) {
      m_average.emplace_back(Shape{g->size()}, MemCategory::optimizer);
      m_average.back().view().assign(g->values());
    }
  }

  /// The decay used after `updates` optimizer updates: min(decay, (1 + n) / (10 + n)), so that the first
  /// updates are not averaged with the starting weights for thousands of steps. A function of the update
  /// count alone, so a resumed run averages exactly as an uninterrupted one.
  double decay_at(long updates) const {
    return std::min(m_decay, double(1 + updates) / double(10 + updates));
  }

  /// Folds in the weights after update number `updates` (1-based: the count of updates done).
  void update(long updates) {
    const float d = float(decay_at(updates));
    for (std::size_t g = 0; g < m_groups.size(); ++g)
      m_average[g].view() = d * m_average[g].view() + (1.0f - d) * m_groups[g]->values();
  }

  /// Exchanges the groups' weights and the average, element by element (no third copy): call twice to undo.
  void swap() {
    for (std::size_t g = 0; g < m_groups.size(); ++g) {
      float* w = m_groups[g]->values().data();
      std::swap_ranges(w, w + m_groups[g]->size(), m_average[g].data());
    }
  }

  double decay() const { return m_decay; }
  /// Group g's average as one flat (size()) view: what a checkpoint stores to resume it.
  TensorView<float> average(std::size_t g) const { return m_average[g].view(); }

 private:
  std::vector<ParameterArena<float>*> m_groups;
  double m_decay;
  std::vector<Tensor<float>> m_average;  // one (group.size()) tensor per group
};

/// Puts the averaged weights into the model for the scope's lifetime (evaluation, a best checkpoint) and the
/// trained ones back when it ends, exceptions included. With no average it does nothing.
class AveragedWeightsScope {
 public:
  explicit AveragedWeightsScope(WeightAverage* average) : m_average(average) {
    if (m_average) m_average->swap();
  }
  ~AveragedWeightsScope() {
    if (m_average) m_average->swap();
  }
  AveragedWeightsScope(const AveragedWeightsScope&) = delete;
  AveragedWeightsScope& operator=(const AveragedWeightsScope&) = delete;

 private:
  WeightAverage* m_average;
};

LST_NAMESPACE_END
