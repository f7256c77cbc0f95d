// SPDX-License-Identifier: MIT
/// @file bert_lst.hpp
/// @brief Ladder Side-Tuning on a BERT-family backbone as a TaskModel: the frozen backbone runs in inference
///        mode (its weights hold no gradients and it keeps no activation), the side network reads it through
///        the tap, and a task head reads the side network's up-projected [CLS] state.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "../init/structural_pruning.hpp"
#include "../nn/task_head.hpp"
#include "../side/side_network.hpp"
#include "../train/task_model.hpp"
#include "bert_classifier.hpp"
#include "bert_encoder.hpp"

LST_NAMESPACE_BEGIN

/// How the side blocks start (section 2.3): random, or pruned from the backbone by weight magnitude or by
/// empirical Fisher information.
enum class SideInit { random, magnitude, fisher };
inline SideInit side_init_from_name(const std::string& name) {
  if (name == "random") return SideInit::random;
  if (name == "magnitude") return SideInit::magnitude;
  if (name == "fisher") return SideInit::fisher;
  detail::raise<Error>("side init '", name, "' is not one of random, magnitude, fisher");
}

/// Empirical Fisher information of every backbone weight: the sum, over the first `count` examples taken one
/// at a time (batch 1, as the reference), of the squared gradient of the task loss of a fully trainable copy
/// of the backbone with a fresh task head. Laid out as the backbone's parameter arena (offsets alike).
inline Tensor<float> fisher_information(const io::BertConfig& cfg, const io::SafetensorsFile& weights,
                                        index_t outputs, const std::vector<EncodedExample>& examples,
                                        std::size_t count, std::uint64_t seed) {
  LST_CHECK(!examples.empty() && count > 0, "Fisher information needs training examples");
  BertFullFineTuning model(cfg, weights, outputs, seed);
  const ParameterArena<float>& arena = *model.trainable()[0];
  Tensor<float> fisher = Tensor<float>::zeros(Shape{arena.size()}, MemCategory::workspace);
  const TensorView<float> g = arena.grads();
  for (std::size_t i = 0; i < std::min(count, examples.size()); ++i) {
    const std::uint32_t row = std::uint32_t(i);
    model.train_step(make_batch(examples, &row, 1), i);
    fisher += g * g;
  }
  return fisher;
}

template <class Config>
class BertLadderSideTuning final : public TaskModel {
 public:
  using T = typename Config::scalar;
  static_assert(std::is_same_v<T, float>, "BertLadderSideTuning: the trainer runs float models");

  BertLadderSideTuning(const io::BertConfig& cfg, const io::SafetensorsFile& weights, index_t outputs,
                       const SideOptions& options, std::uint64_t seed)
      : m_backbone(cfg, /*trainable=*/false, seed),
        m_side(cfg, options, mix64(seed + 0x51de)),
        m_head(cfg.hidden_size, outputs, /*dropout: the side network's final dropout precedes it*/ 0.0,
               mix64(seed + 0x1000)),
        m_fingerprint(backbone_fingerprint(cfg, weights)) {
    m_backbone.load(weights);
  }

  /// Re-initialises the side blocks: random (as constructed), or structurally pruned from the backbone with
  /// magnitude or Fisher importance (`examples` and `fisher_examples` for the latter). Returns the
  /// selections.
  std::vector<init::BlockSelection> initialize_side(SideInit kind, init::PruneSelection selection,
                                                    const io::SafetensorsFile& weights,
                                                    const std::vector<EncodedExample>& examples,
                                                    std::size_t fisher_examples, std::uint64_t seed) {
    if (kind == SideInit::random) return {};
    const ParameterArena<float>& arena = m_backbone.parameters();
    Tensor<float> fisher;
    if (kind == SideInit::fisher)
      fisher = fisher_information(m_backbone.config(), weights, outputs(), examples, fisher_examples, seed);
    const auto weight = [&arena](const std::string& n) -> ConstView<float> { return arena.find(n).value(); };
    const auto importance = [&](const std::string& n) -> ConstView<float> {
      if (kind == SideInit::magnitude) return arena.find(n).value();  // row / column L1 take |W|
      const auto p = arena.find(n);
      const index_t offset = index_t(p.value().data() - arena.values().data());
      return ConstView<float>(fisher.data() + offset, p.value().shape());
    };
    return init::prune_into(m_side, init::PruneSource{weight, importance},
                            m_backbone.config().num_attention_heads, selection);
  }

  std::string method() const override { return "lst"; }
  std::string identity() const override {
    return "method=lst " + m_side.describe() + " outputs=" + std::to_string(outputs()) +
           " backbone=" + m_fingerprint;
  }
  std::vector<ParameterArena<float>*> trainable() override {
    return {&m_side.parameters(), &m_head.parameters()};
  }
  index_t total_parameters() const override {
    return m_backbone.parameters().parameter_count() + m_side.parameters().parameter_count() +
           m_head.parameters().parameter_count();
  }
  index_t outputs() const override { return m_head.outputs(); }
  BertEncoder<T>& backbone() { return m_backbone; }
  SideNetwork<Config>& side() { return m_side; }
  const TaskHead<T>& head() const { return m_head; }

  /// features (B, d): the side network's output for a batch, running the backbone once, in inference mode.
  typename SideNetwork<Config>::Context features(const Batch& batch, TensorView<T> out, Mode mode,
                                                 std::uint64_t step) const {
    const index_t B = batch.size(), Tn = batch.length();
    auto ctx = m_side.begin(B, Tn, batch.mask, mode, step);
    Tensor<T> hidden(Shape{B, Tn, m_backbone.config().hidden_size});
    m_backbone.forward(batch.ids, batch.token_types, batch.mask, hidden, {}, Mode::inference, 0,
                       [&](index_t layer, ConstView<T> h) { m_side.on_tap(ctx, layer, h); });
    m_side.finish(ctx, out);
    return ctx;
  }

  double train_step(const Batch& batch, std::uint64_t step) override {
    const index_t B = batch.size(), d = m_backbone.config().hidden_size;
    Tensor<T> feats(Shape{B, d}, MemCategory::activations);
    const auto ctx = features(batch, feats, Mode::training, step);
    Tensor<T> logits(Shape{B, outputs()}), d_logits(Shape{B, outputs()}), d_feats(Shape{B, d});
    const auto head_ctx = m_head.forward(feats, logits, Mode::training, step);
    const double loss = task_loss(logits, batch, d_logits);
    m_head.backward(head_ctx, d_logits, d_feats, GradMode::overwrite);
    m_side.backward(ctx, d_feats, GradMode::overwrite);
    return loss;
  }

  void predict(const Batch& batch, TensorView<float> out) override {
    Tensor<T> feats(Shape{batch.size(), m_backbone.config().hidden_size});
    features(batch, feats, Mode::inference, 0);
    m_head.forward(feats, out, Mode::inference, 0);
  }

 private:
  BertEncoder<T> m_backbone;
  SideNetwork<Config> m_side;
  TaskHead<T> m_head;
  std::string m_fingerprint;
};

LST_NAMESPACE_END
