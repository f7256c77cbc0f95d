// SPDX-License-Identifier: MIT
/// @file task_model.hpp
/// @brief What the trainer needs from a fine-tuning method: one training step, a prediction, and its
///        trainable parameter groups. Full fine-tuning, LST and the PETL baselines each implement it, so they
///        share one training loop, one checkpoint format and one metrics file.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/batch.hpp"
#include "../nn/losses.hpp"
#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN

class TaskModel {
 public:
  virtual ~TaskModel() = default;
  /// The method's name as the CLI spells it ("full", "lst", ...).
  virtual std::string method() const = 0;
  /// A string a checkpoint must match to be loaded into this model: the method, its configuration and the
  /// identity of the pretrained weights it builds on.
  virtual std::string identity() const = 0;
  /// The method's configuration as JSON ("method", "outputs" and the method's own settings), stored in every
  /// checkpoint so that a program can rebuild the model from the checkpoint alone (lst-predict does).
  virtual nlohmann::json config() const = 0;
  /// The parameter groups the optimizer updates, each holding gradients.
  virtual std::vector<ParameterArena<float>*> trainable() = 0;
  /// Every parameter the forward pass reads, frozen ones included.
  virtual index_t total_parameters() const = 0;
  /// Outputs per example: the class count, or 1 for regression.
  virtual index_t outputs() const = 0;
  /// Forward in training mode, the task loss, and backward: every trainable gradient is overwritten.
  /// `step` is the global update number (it draws the dropout masks, so a resumed run repeats them).
  virtual double train_step(const Batch& batch, std::uint64_t step) = 0;
  /// Inference: outputs (B, K) logits, or (B, 1) regression scores.
  virtual void predict(const Batch& batch, TensorView<float> outputs) = 0;
};

/// The task loss of a head's outputs (B, K): softmax cross-entropy against the batch labels when K > 1, mean
/// squared error against the batch scores when K = 1. Writes dL/doutputs into `d_outputs`.
inline double task_loss(ConstView<float> outputs, const Batch& batch, TensorView<float> d_outputs) {
  if (outputs.dim(1) > 1) return cross_entropy<float, Cpu>(outputs, batch.labels, d_outputs);
  return mse_loss<float, Cpu>(outputs, batch.scores, d_outputs);
}

LST_NAMESPACE_END
