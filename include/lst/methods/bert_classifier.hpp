// SPDX-License-Identifier: MIT
/// @file bert_classifier.hpp
/// @brief Full fine-tuning (Devlin et al. 2019, section 4.1): every backbone weight and the task head train.
///        The reference point every parameter-efficient method is compared with.
#pragma once

#include <string>
#include <vector>

#include "../core/hash.hpp"
#include "../models/bert_encoder.hpp"
#include "../nn/task_head.hpp"
#include "task_model.hpp"

LST_NAMESPACE_BEGIN

/// What a checkpoint built on a backbone records about it: a hash of the configuration the model was built
/// from, of the weight file's header (tensor names, dtypes, shapes and offsets) and of a sample of the
/// weights themselves. Another checkpoint, even of the same architecture, gives another fingerprint.
inline std::string backbone_fingerprint(const io::BertConfig& cfg, const io::SafetensorsFile& weights) {
  const std::string config =
      std::to_string(cfg.vocab_size) + "," + std::to_string(cfg.hidden_size) + "," +
      std::to_string(cfg.num_hidden_layers) + "," + std::to_string(cfg.num_attention_heads) + "," +
      std::to_string(cfg.intermediate_size) + "," + cfg.hidden_act + "," +
      std::to_string(cfg.layer_norm_eps) + "," + std::to_string(cfg.max_position_embeddings) + "," +
      std::to_string(cfg.type_vocab_size);
  // The values too: two checkpoints of one architecture share a header. Every 64th byte of every tensor is
  // hashed (a few hundred kB of 91 MB for all-MiniLM-L6-v2), so the fingerprint costs milliseconds.
  std::uint64_t h = fnv1a64(weights.header(), fnv1a64(config));
  for (const io::SafetensorsEntry& e : weights.entries()) {
    const std::string_view bytes = weights.raw(e.name);
    for (std::size_t i = 0; i < bytes.size(); i += 64) h = fnv1a64(bytes.substr(i, 4), h);
  }
  return "bert-" + hex64(h);
}

class BertFullFineTuning final : public TaskModel {
 public:
  /// Loads `weights` into a trainable encoder and adds a fresh head with `outputs` outputs.
  /// `attention_dropout`: the config's attention_probs_dropout_prob on the attention probabilities in
  /// training (Hugging Face's behaviour); false turns it off.
  BertFullFineTuning(const io::BertConfig& cfg, const io::SafetensorsFile& weights, index_t outputs,
                     std::uint64_t seed, bool attention_dropout = true)
      : m_encoder(cfg, /*trainable=*/true, seed, attention_dropout),
        m_head(cfg.hidden_size, outputs, cfg.hidden_dropout_prob, mix64(seed + 0x1000)),
        m_backbone(backbone_fingerprint(cfg, weights)) {
    m_encoder.load(weights);
  }

  std::string method() const override { return "full"; }
  std::string identity() const override {
    return "method=full outputs=" + std::to_string(outputs()) + " backbone=" + m_backbone;
  }
  nlohmann::json config() const override { return {{"method", "full"}, {"outputs", outputs()}}; }
  std::vector<ParameterArena<float>*> trainable() override {
    return {&m_encoder.parameters(), &m_head.parameters()};
  }
  index_t total_parameters() const override {
    return m_encoder.parameters().parameter_count() + m_head.parameters().parameter_count();
  }
  index_t outputs() const override { return m_head.outputs(); }
  const BertEncoder<float>& encoder() const { return m_encoder; }

  double train_step(const Batch& batch, std::uint64_t step) override {
    const index_t B = batch.size(), T = batch.length(), C = m_encoder.config().hidden_size;
    Tensor<float> hidden(Shape{B, T, C}, MemCategory::activations),
        pooled(Shape{B, C}, MemCategory::activations);
    const auto ctx =
        m_encoder.forward(batch.ids, batch.token_types, batch.mask, hidden, pooled, Mode::training, step);
    Tensor<float> logits(Shape{B, outputs()}), d_logits(Shape{B, outputs()}), d_pooled(Shape{B, C});
    const auto head_ctx = m_head.forward(pooled, logits, Mode::training, step);
    const double loss = task_loss(logits, batch, d_logits);
    m_head.backward(head_ctx, d_logits, d_pooled, GradMode::overwrite);
    m_encoder.backward(ctx, {}, d_pooled, GradMode::overwrite);
    return loss;
  }

  void predict(const Batch& batch, TensorView<float> out) override {
    const index_t B = batch.size(), T = batch.length(), C = m_encoder.config().hidden_size;
    Tensor<float> hidden(Shape{B, T, C}), pooled(Shape{B, C});
    m_encoder.forward(batch.ids, batch.token_types, batch.mask, hidden, pooled, Mode::inference, 0);
    m_head.forward(pooled, out, Mode::inference, 0);
  }

 private:
  BertEncoder<float> m_encoder;
  TaskHead<float> m_head;
  std::string m_backbone;
};

LST_NAMESPACE_END
