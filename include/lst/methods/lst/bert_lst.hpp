// SPDX-License-Identifier: MIT
/// @file bert_lst.hpp
/// @brief Ladder Side-Tuning on a BERT-family backbone as a TaskModel: the frozen backbone runs in inference
///        mode (its weights hold no gradients and it keeps no activation), the side network reads it through
///        the tap, and a task head reads the side network's up-projected [CLS] state.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "../../init/structural_pruning.hpp"
#include "../../models/bert_encoder.hpp"
#include "../../nn/task_head.hpp"
#include "../bert_classifier.hpp"
#include "../task_model.hpp"
#include "side_network.hpp"
#include "tap_cache.hpp"

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
  LST_CHECK(arena.all_trainable(), "Fisher information: the backbone copy must train every parameter");
  Tensor<float> fisher = Tensor<float>::zeros(Shape{arena.size()}, MemCategory::workspace);
  const TensorView<float> g = arena.grads();
  for (std::size_t i = 0; i < std::min(count, examples.size()); ++i) {
    const std::uint32_t row = std::uint32_t(i);
    model.train_step(make_batch(examples, &row, 1), i);
    fisher += g * g;
  }
  return fisher;
}

/// What programs need from LST beyond TaskModel, independent of the compile-time configuration.
class LstTaskModel : public TaskModel {
 public:
  virtual std::vector<init::BlockSelection> initialize_side(SideInit kind, init::PruneSelection selection,
                                                            const io::SafetensorsFile& weights,
                                                            const std::vector<EncodedExample>& examples,
                                                            std::size_t fisher_examples,
                                                            std::uint64_t seed) = 0;
  virtual const TapCache& enable_tap_cache(const std::vector<EncodedExample>& train,
                                           TapCache::Storage storage, const std::string& path = {}) = 0;
  /// The side network's configuration in one line.
  virtual std::string describe() const = 0;
};

template <class Config>
class BertLadderSideTuning final : public LstTaskModel {
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
                                                    std::size_t fisher_examples,
                                                    std::uint64_t seed) override {
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

  std::string describe() const override { return m_side.describe(); }
  std::string method() const override { return "lst"; }
  std::string identity() const override {
    return "method=lst " + m_side.describe() + " outputs=" + std::to_string(outputs()) +
           " backbone=" + m_fingerprint;
  }
  nlohmann::json config() const override {
    const SideOptions& o = m_side.options();
    std::string layers;
    for (index_t l : m_side.kept()) layers += (layers.empty() ? "" : ",") + std::to_string(l);
    return {{"method", "lst"},
            {"outputs", outputs()},
            {"r", Config::reduction},
            {"keep_layers", layers},
            {"gate_temperature", Config::gate_temperature},
            {"side_heads", m_side.blocks().front().attention().heads()},
            {"gate", to_string(o.gate)},
            {"per_channel_gates", o.per_channel_gates},
            {"ladder_rank", o.ladder_rank},
            {"tap_dtype", to_string(o.tap_dtype)},
            {"side_dropout", o.dropout},
            {"recompute_attention", o.recompute_attention},
            {"output_gate", to_string(o.output_gate)},
            {"output_gate_init", o.output_gate_init},
            {"side_pooling", o.mean_pooling ? "mean" : "cls"}};
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

  /// Caches the ladder inputs of `train`'s examples (section "tap caching" of README), replacing any earlier
  /// cache (a features() context still holding addresses into that one must not be used after): the first
  /// epoch fills the cache, later batches drawn from `train` skip the backbone. `path` is the file for
  /// Storage::disk. Returns the cache (to report whether a file was reused).
  const TapCache& enable_tap_cache(const std::vector<EncodedExample>& train, TapCache::Storage storage,
                                   const std::string& path = {}) override {
    std::vector<std::uint32_t> lengths;
    for (const auto& e : train) lengths.push_back(std::uint32_t(e.ids.size()));
    const auto taps = m_side.read_taps();
    const TapDtype dtype = m_side.options().tap_dtype;
    m_cache =
        std::make_unique<TapCache>(std::move(lengths), taps, m_backbone.config().hidden_size, dtype,
                                   TapCache::make_key(m_fingerprint, train, taps, dtype), storage, path);
    m_cached_set = &train;
    return *m_cache;
  }
  const TapCache* tap_cache() const { return m_cache.get(); }
  /// Batches fed from the cache, and batches that ran the backbone, since construction.
  long cached_batches() const { return m_cached_batches; }
  long backbone_batches() const { return m_backbone_batches; }

  using SideContext = typename SideNetwork<Config>::Context;

  /// The side network's shards of a batch: shard k is sequences [bounds[k], bounds[k + 1]). Contiguous runs
  /// of sequences with about equal real-token counts (each at least one sequence), `shards` of them or B if
  /// fewer. A function of the batch's mask alone, so that results do not depend on the thread count.
  static std::vector<index_t> shard_bounds(const Batch& batch, index_t shards) {
    const index_t B = batch.size(), Tn = batch.length();
    const index_t S = std::max<index_t>(1, std::min(shards, B));
    const PackedSequences all =
        PackedSequences::from_mask(batch.mask.numel() > 0 ? batch.mask.data() : nullptr, B, Tn);
    std::vector<index_t> bounds(std::size_t(S + 1), B);
    bounds[0] = 0;
    for (index_t k = 1; k < S; ++k) {
      const index_t target = all.rows() * k / S, lo = bounds[std::size_t(k - 1)] + 1, hi = B - (S - k);
      index_t b = lo;
      while (b < hi && all.first_row(b) < target) ++b;  // the first boundary at or past the target
      if (b > lo && target - all.first_row(b - 1) < all.first_row(b) - target) --b;  // or the one before
      bounds[std::size_t(k)] = b;
    }
    return bounds;
  }

  /// features (B, d): the side network's output for a batch, running the backbone once, in inference mode
  /// (or not at all, when every example's states are cached), with the side network in the shards `bounds`
  /// (shard_bounds; {0, B}: one), each on its own thread. Returns one context per shard. From an f32 cache
  /// the contexts' ladders keep addresses into the cache: back-propagate them before enable_tap_cache()
  /// replaces the cache.
  std::vector<SideContext> features(const Batch& batch, TensorView<T> out, Mode mode, std::uint64_t step,
                                    const std::vector<index_t>& bounds) {
    const index_t B = batch.size(), Tn = batch.length(), d = m_backbone.config().hidden_size;
    const index_t S = index_t(bounds.size()) - 1;
    LST_CHECK(S >= 1 && bounds.front() == 0 && bounds.back() == B, "LST: side network shards ", S,
              " do not cover the batch's ", B, " sequences");
    std::vector<SideContext> ctx(static_cast<std::size_t>(S));
    for (index_t k = 0; k < S; ++k) {
      const index_t b0 = bounds[std::size_t(k)], b1 = bounds[std::size_t(k + 1)];
      const ConstView<std::int32_t> mask = batch.mask.numel() > 0
                                               ? ConstView<std::int32_t>(batch.mask.slice(b0, b1))
                                               : ConstView<std::int32_t>();
      ctx[std::size_t(k)] = m_side.begin(b1 - b0, Tn, mask, mode, step, b0);
    }
    const auto finish = [&](index_t k) {
      m_side.finish(ctx[std::size_t(k)], out.slice(bounds[std::size_t(k)], bounds[std::size_t(k + 1)]));
    };
    const bool cacheable = m_cache && batch.source == m_cached_set && batch.rows.size() == std::size_t(B);
    bool all_cached = cacheable;
    for (std::size_t i = 0; all_cached && i < batch.rows.size(); ++i)
      all_cached = m_cache->filled(batch.rows[i]);
    if (all_cached) {  // the backbone is not run at all: each shard reads its states and runs on its own
      ++m_cached_batches;
      run_tasks(S, [&](index_t k) {
        feed_cached(batch, bounds[std::size_t(k)], ctx[std::size_t(k)]);
        finish(k);
      });
      return ctx;
    }
    ++m_backbone_batches;
    Tensor<T> hidden(Shape{B, Tn, d});
    m_backbone.forward(batch.ids, batch.token_types, batch.mask, hidden, {}, Mode::inference, 0,
                       [&](index_t layer, ConstView<T> h) {
                         if (cacheable) {
                           const index_t slot = m_cache->slot(layer);
                           if (slot >= 0)
                             for (index_t b = 0; b < B; ++b)
                               m_cache->store(batch.rows[std::size_t(b)], slot, h.data() + b * Tn * d);
                         }
                         run_tasks(S, [&](index_t k) {
                           m_side.on_tap(ctx[std::size_t(k)], layer,
                                         h.slice(bounds[std::size_t(k)], bounds[std::size_t(k + 1)]));
                         });
                       });
    if (cacheable)
      for (std::uint32_t row : batch.rows) m_cache->mark_filled(row);
    run_tasks(S, finish);
    return ctx;
  }
  /// As above, the side network in one piece.
  SideContext features(const Batch& batch, TensorView<T> out, Mode mode, std::uint64_t step) {
    return std::move(features(batch, out, mode, step, {0, batch.size()}).front());
  }

  /// One update's gradients, data-parallel over the side network's training shards (SideOptions::
  /// training_shards): each shard runs forward and, after the task head has seen the whole batch, backward on
  /// its own thread into its own gradients, which are then summed in shard order.
  double train_step(const Batch& batch, std::uint64_t step) override {
    const index_t B = batch.size(), d = m_backbone.config().hidden_size;
    const std::vector<index_t> bounds = shard_bounds(batch, m_side.options().training_shards);
    const index_t S = index_t(bounds.size()) - 1;
    ParameterArena<T>& params = m_side.parameters();
    if (params.gradient_shards() < S) params.set_gradient_shards(int(S));
    Tensor<T> feats(Shape{B, d}, MemCategory::activations);
    const auto ctx = features(batch, feats, Mode::training, step, bounds);
    Tensor<T> logits(Shape{B, outputs()}), d_logits(Shape{B, outputs()}), d_feats(Shape{B, d});
    const auto head_ctx = m_head.forward(feats, logits, Mode::training, step);
    const double loss = task_loss(logits, batch, d_logits);
    m_head.backward(head_ctx, d_logits, d_feats, GradMode::overwrite);
    run_tasks(S, [&](index_t k) {
      const GradientShardScope shard{int(k)};
      m_side.backward(ctx[std::size_t(k)], d_feats.slice(bounds[std::size_t(k)], bounds[std::size_t(k + 1)]),
                      GradMode::overwrite);
    });
    // Only this batch's S shards: any beyond (a batch with fewer sequences) hold an earlier step's gradients.
    params.reduce_gradient_shards(int(S));
    return loss;
  }

  void predict(const Batch& batch, TensorView<float> out) override {
    Tensor<T> feats(Shape{batch.size(), m_backbone.config().hidden_size});
    features(batch, feats, Mode::inference, 0);
    m_head.forward(feats, out, Mode::inference, 0);
  }

 private:
  /// Feeds shard `ctx` (sequences first, ... of the batch) every state from the tap cache.
  void feed_cached(const Batch& batch, index_t first, SideContext& ctx) const {
    const index_t d = m_backbone.config().hidden_size, B = ctx.batch;
    for (index_t tap = 0; tap <= m_backbone.config().num_hidden_layers; ++tap) {
      const index_t slot = m_cache->slot(tap);
      if (slot < 0) {
        if (tap > 0) m_side.on_tap(ctx, tap, ConstView<T>());  // a block without ladder input, or skipped
        continue;
      }
      const auto example_of = [&](index_t b) {
        const std::uint32_t example = batch.rows[std::size_t(first + b)];
        const std::size_t tokens = batch.source->at(example).ids.size();
        LST_CHECK(ctx.rows.length(b) == index_t(tokens), "LST: batch row ", first + b, " has ",
                  ctx.rows.length(b), " real tokens, its cached example ", example, " ", tokens);
        return example;
      };
      if (m_cache->dtype() == TapDtype::f32) {  // the packed rows where they lie in the cache, no copy
        std::vector<const T*> rows(std::size_t(ctx.rows.rows()));
        for (index_t b = 0; b < B; ++b) {
          const float* state = m_cache->state(example_of(b), slot);
          for (index_t t = 0; t < ctx.rows.length(b); ++t)
            rows[std::size_t(ctx.rows.first_row(b) + t)] = state + t * d;
        }
        m_side.on_tap(ctx, tap, std::move(rows));
        continue;
      }
      // An f16 / bf16 cache: each state converted to f32, the real tokens packed as the side network computes
      // them, for the ladders to read (they keep their own f16 / bf16 copy, so this one is workspace).
      Tensor<T> state(Shape{ctx.rows.rows(), d}, MemCategory::workspace);
      for (index_t b = 0; b < B; ++b)
        m_cache->load(example_of(b), slot, state.data() + ctx.rows.first_row(b) * d);
      m_side.on_tap(ctx, tap, std::move(state));
    }
  }

  BertEncoder<T> m_backbone;
  SideNetwork<Config> m_side;
  TaskHead<T> m_head;
  std::string m_fingerprint;
  std::unique_ptr<TapCache> m_cache;
  const std::vector<EncodedExample>* m_cached_set = nullptr;
  long m_cached_batches = 0, m_backbone_batches = 0;
};

LST_NAMESPACE_END
