// SPDX-License-Identifier: MIT
/// @file evaluate.hpp
/// @brief Dev-set evaluation of a TaskModel with each GLUE task's official metrics.
#pragma once

#include <algorithm>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "../io/glue.hpp"
#include "../methods/task_model.hpp"
#include "metrics.hpp"

LST_NAMESPACE_BEGIN

struct Evaluation {
  double loss = 0;                        // mean task loss over the examples
  std::map<std::string, double> metrics;  // "accuracy", "f1", "matthews_corr", "pearson", "spearman"
};

/// The metric that picks the best checkpoint: GLUE's headline metric of each task.
inline std::string primary_metric(io::GlueTask task) {
  switch (task) {
    case io::GlueTask::cola:
      return "matthews_corr";
    case io::GlueTask::mrpc:
      return "f1";
    case io::GlueTask::stsb:
      return "pearson";
    default:
      return "accuracy";
  }
}

/// Runs `model` in inference mode over `examples` (in batches of `batch_size`, grouped by length so that
/// little is padding) and scores the predictions with the task's metrics.
inline Evaluation evaluate(TaskModel& model, const std::vector<EncodedExample>& examples, io::GlueTask task,
                           index_t batch_size) {
  LST_CHECK(!examples.empty(), "evaluate: no examples");
  LST_CHECK(batch_size > 0, "evaluate: batch size must be positive (got ", batch_size, ")");
  std::vector<std::uint32_t> order(examples.size());
  std::iota(order.begin(), order.end(), std::uint32_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return examples[a].ids.size() < examples[b].ids.size();
  });
  const bool regression = model.outputs() == 1;
  std::vector<std::int32_t> pred(examples.size()), label(examples.size());
  std::vector<double> score(examples.size()), target(examples.size());
  double loss_sum = 0;
  for (std::size_t first = 0; first < order.size(); first += std::size_t(batch_size)) {
    const std::size_t n = std::min(order.size() - first, std::size_t(batch_size));
    const Batch batch = make_batch(examples, order.data() + first, n);
    Tensor<float> out(Shape{index_t(n), model.outputs()});
    model.predict(batch, out);
    loss_sum += task_loss(out, batch, {}) * double(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t row = order[first + i];
      const float* o = out.data() + index_t(i) * model.outputs();
      if (regression) {
        score[row] = o[0];
        target[row] = examples[row].score;
      } else {
        pred[row] = std::int32_t(std::max_element(o, o + model.outputs()) - o);
        label[row] = examples[row].label;
      }
    }
  }
  Evaluation ev;
  ev.loss = loss_sum / double(examples.size());
  if (regression) {
    ev.metrics["pearson"] = pearson(score, target);
    ev.metrics["spearman"] = spearman(score, target);
  } else {
    ev.metrics["accuracy"] = accuracy(pred, label);
    if (task == io::GlueTask::mrpc || task == io::GlueTask::cola || model.outputs() == 2) {
      ev.metrics["f1"] = f1_score(pred, label);
      ev.metrics["matthews_corr"] = matthews_corr(pred, label);
    }
  }
  return ev;
}

LST_NAMESPACE_END
