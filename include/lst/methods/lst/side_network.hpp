// SPDX-License-Identifier: MIT
/// @file side_network.hpp
/// @brief Ladder Side-Tuning's side network g (Sung, Cho, Bansal 2022, section 2): a narrow transformer of
/// the
///        backbone's own kind (width d/r, FFN width d_ff/r) that reads the frozen backbone's states through
///        ladders and makes the prediction. Backprop runs through g and the ladders only.
///
/// It runs *inside* the backbone's inference pass, through its tap: state 0 (the embeddings) starts the side
/// state, s = down_0(dropout(h_0)); after each kept backbone layer i, s = mu_i s + (1 - mu_i) down_i(h_i)
/// with mu_i = sigmoid(alpha_i / T), then s = SideBlock_i(s) (section 2.2). The backbone therefore keeps
/// nothing: a tap's view is consumed while it is valid, and only the ladder inputs (for the ladder weight
/// gradients) and the side network's own activations survive the forward pass. At the end: final LayerNorm on
/// the [CLS] state, dropout, and the up-projection d/r -> d that feeds the task head; optionally (QST's
/// output gate) mixed with the backbone's own final state.
///
/// The side network computes real tokens only: its states are the batch's sequences packed with no padding
/// (core/packed_sequences.hpp), so a batch that is not grouped by length costs it no padded rows. The ladders
/// pack what they read; every padded row they skip reached nothing the head reads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../../models/backbone_shape.hpp"
#include "../../nn/dropout.hpp"
#include "../../nn/encoder_layer.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../ops/gate.hpp"
#include "../../ops/gather_rows.hpp"
#include "../../ops/packed_rows.hpp"
#include "ladder.hpp"
#include "layer_mask.hpp"
#include "lst_config.hpp"

LST_NAMESPACE_BEGIN

template <class Config, class Backend = Cpu>
class SideNetwork {
 public:
  using T = typename Config::scalar;
  static constexpr index_t reduction = Config::reduction;
  static constexpr double temperature = Config::gate_temperature;

  /// What one kept layer saves for backward.
  struct LayerContext {
    typename Ladder<T, Backend>::Context ladder;
    Tensor<T, Backend> ladder_out;  // (N, d/r) down_i(h_i)
    Tensor<T, Backend> other;       // (N, d/r) s before the fusion (before) or the block output (after)
    typename EncoderLayer<T, Backend>::Context block;
  };
  struct Context {
    Mode mode = Mode::inference;
    std::uint64_t step = 0;
    index_t batch = 0, length = 0;  // B, T: the padded batch
    PackedSequences rows;           // its real tokens, N of them
    Shape shape;                    // (N, d/r)
    Tensor<T, Backend> state;       // (N, d/r) the side state s
    typename Ladder<T, Backend>::Context embedding_ladder;
    typename Dropout<T, Backend>::Context embedding_dropout;
    std::vector<LayerContext> layers;  // one per kept layer, in order
    typename LayerNorm<T, Backend>::Context final_norm;
    typename Dropout<T, Backend>::Context final_dropout;
    typename Linear<T, Backend>::Context up;
    Tensor<T, Backend> backbone_out;   // (B, d) the backbone's pooled final state (output gate only)
    Tensor<T, Backend> up_out;         // (B, d) up(...) before the output gate (training, output gate only)
    std::vector<T> pool_weights;       // (B) 1 / real tokens, with mean pooling
    bool cls_only_last_block = false;  // the last block computed the [CLS] row only: state is (B, d/r)
    index_t taps_seen = 0;             // the next state index that may arrive
    index_t events = 0;                // states consumed: the embeddings and each kept layer
  };

  /// A side network for `backbone` (its width, FFN width, heads, layer count, activation and LayerNorm eps).
  /// Parameters live in their own trainable group "side", randomly initialised from `seed` (init/ offers
  /// structural pruning of the backbone instead).
  SideNetwork(const BackboneShape& backbone, SideOptions options, std::uint64_t seed)
      : m_options(std::move(options)),
        m_backbone(backbone),
        m_kept(kept_layers<typename Config::layer_mask>(backbone.layers, m_options.layers)),
        m_params("side"),
        m_embedding_dropout(m_options.dropout, mix64(seed ^ 0x5349444530ull), "side.embedding_dropout"),
        m_final_dropout(m_options.dropout, mix64(seed ^ 0x5349444531ull), "side.final_dropout") {
    const index_t d = backbone.width, r = reduction;
    LST_CHECK(d % r == 0 && backbone.ffn_width % r == 0, "LST: r = ", r, " divides neither width ", d,
              " nor FFN width ", backbone.ffn_width, " of the backbone");
    m_width = d / r;
    const index_t heads = m_options.heads > 0 ? m_options.heads : backbone.heads;
    LST_CHECK(m_width % heads == 0, "LST: side width ", m_width, " (d / r = ", d, " / ", r,
              ") is not divisible by ", heads, " side heads");
    m_embedding_ladder = std::make_unique<Ladder<T, Backend>>(m_params, "ladders.embeddings", d, m_width,
                                                              m_options.ladder_rank);
    const EncoderLayerConfig block{m_width,
                                   heads,
                                   backbone.ffn_width / r,
                                   backbone.activation,
                                   backbone.norm_eps,
                                   m_options.dropout,
                                   m_options.attention_dropout ? m_options.dropout : 0.0};
    m_slot_of_layer.assign(std::size_t(backbone.layers), -1);
    for (std::size_t i = 0; i < m_kept.size(); ++i) {
      const std::string l = std::to_string(m_kept[i]);
      m_slot_of_layer[std::size_t(m_kept[i])] = index_t(i);
      if (m_options.gate != GateMode::none)
        m_ladders.push_back(std::make_unique<Ladder<T, Backend>>(m_params, "ladders." + l, d, m_width,
                                                                 m_options.ladder_rank));
      if (m_options.gate == GateMode::before || m_options.gate == GateMode::after)
        m_gates.push_back(
            m_params.add("gates." + l, Shape{m_options.per_channel_gates ? m_width : 1}, ParamRole::gate));
      m_blocks.emplace_back(m_params, "blocks." + l, block, mix64(seed + 101 + std::uint64_t(m_kept[i])));
      m_blocks.back().set_recompute_attention(m_options.recompute_attention);
    }
    m_final_norm =
        std::make_unique<LayerNorm<T, Backend>>(m_params, "final_norm", m_width, backbone.norm_eps);
    m_up = std::make_unique<Linear<T, Backend>>(m_params, "up", m_width, d);
    if (m_options.output_gate != OutputGate::off) {
      LST_CHECK(m_options.output_gate_init > 0 && m_options.output_gate_init < 1,
                "LST: the output gate's initial value ", m_options.output_gate_init, " is not in (0, 1)");
      m_output_gate = m_params.add("output_gate", Shape{1}, ParamRole::gate);
    }
    m_params.allocate(true);
    init_random(seed);
  }
  SideNetwork(const SideNetwork&) = delete;
  SideNetwork& operator=(const SideNetwork&) = delete;

  ParameterArena<T, Backend>& parameters() { return m_params; }
  const ParameterArena<T, Backend>& parameters() const { return m_params; }
  const SideOptions& options() const { return m_options; }
  index_t width() const { return m_width; }
  index_t output_width() const { return m_backbone.width; }
  const std::vector<index_t>& kept() const { return m_kept; }
  const std::vector<EncoderLayer<T, Backend>>& blocks() const { return m_blocks; }
  /// The backbone states whose values the network reads: 0 (the embeddings) and, unless the gate is none,
  /// l + 1 for each kept layer l. What a tap cache must hold.
  std::vector<index_t> read_taps() const {
    std::vector<index_t> taps = {0};
    if (m_options.gate != GateMode::none)
      for (index_t l : m_kept) taps.push_back(l + 1);
    const index_t last = m_backbone.layers;
    if (m_options.output_gate != OutputGate::off && taps.back() != last) taps.push_back(last);
    return taps;
  }
  /// The gate value(s) mu = sigmoid(alpha / T) of kept layer slot i.
  std::vector<double> gate(std::size_t i) const {
    std::vector<double> mu;
    const auto a = m_gates.at(i).value();
    for (index_t c = 0; c < a.numel(); ++c) mu.push_back(sigmoid(double(a.data()[c]) / temperature));
    return mu;
  }
  /// The output gate's beta = sigmoid(gamma / T): the backbone's share of the features (0 when off).
  double output_gate() const {
    return m_output_gate.valid() ? sigmoid(double(m_output_gate.value().data()[0]) / temperature) : 0.0;
  }
  /// One line naming the configuration (for checkpoint identities and reports).
  std::string describe() const {
    std::string layers;
    for (index_t l : m_kept) layers += (layers.empty() ? "" : ",") + std::to_string(l);
    return "r=" + std::to_string(reduction) + " layers=" + layers +
           " heads=" + std::to_string(m_blocks.front().attention().heads()) +
           " gate=" + to_string(m_options.gate) + (m_options.per_channel_gates ? "/channel" : "") +
           " T=" + std::to_string(temperature) + " ladder_rank=" + std::to_string(m_options.ladder_rank) +
           " dropout=" + std::to_string(m_options.dropout) + (m_options.mean_pooling ? " pooling=mean" : "") +
           (m_output_gate.valid() ? std::string(" output_gate=") + to_string(m_options.output_gate) + "@" +
                                        std::to_string(m_options.output_gate_init)
                                  : std::string());
  }

  /// BERT-style random init: side blocks and the up-projection N(0, 0.02), LayerNorms 1 and 0, ladders
  /// N(0, 0.01) with zero bias, gates alpha = 0 (mu = 0.5).
  void init_random(std::uint64_t seed) {
    Rng rng(seed);
    for (std::size_t i = 0; i < m_params.count(); ++i) {
      const std::string& n = m_params.info(i).name;
      const auto v = m_params.value(i);
      if (n.find("norm") != std::string::npos && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0)
        v.fill(T(1));
      else if (n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0)
        v.set_zero();
      else if (n.rfind("blocks.", 0) == 0 || n.rfind("up.", 0) == 0)
        init::normal(v, rng, 0.02);
      else
        v.set_zero();  // gates; ladders below
    }
    m_embedding_ladder->init(rng);
    for (auto& l : m_ladders) l->init(rng);
    if (m_output_gate.valid()) {  // gamma = T logit(beta_0)
      const double b = m_options.output_gate_init;
      m_output_gate.value().data()[0] = T(temperature * std::log(b / (1 - b)));
    }
  }

  /// Starts a forward pass over a (B, T) batch padded on the right: `mask` (B, T) marks its real tokens (an
  /// empty view: all real). Only they are computed, packed (PackedSequences::from_mask). With
  /// `first_sequence`, the B sequences are a shard of a larger batch (sequences first_sequence, ... of it, as
  /// BertLst's data-parallel training step runs them): every dropout mask is the one the whole batch's
  /// forward pass would draw, so the shards' forward passes compute the whole batch's values row by row.
  Context begin(index_t B, index_t Tn, ConstView<std::int32_t, Backend> mask, Mode mode, std::uint64_t step,
                index_t first_sequence = 0) const {
    Context ctx;
    ctx.mode = mode;
    ctx.step = step;
    LST_CHECK_SHAPE(mask.empty() || mask.shape() == (Shape{B, Tn}), "side network: mask has shape ",
                    mask.shape(), ", expected (", B, ", ", Tn, ")");
    ctx.batch = B;
    ctx.length = Tn;
    ctx.rows = PackedSequences::from_mask(mask.data(), B, Tn, first_sequence);
    ctx.shape = Shape{ctx.rows.rows(), m_width};
    ctx.state = Tensor<T, Backend>(ctx.shape, MemCategory::activations);
    return ctx;
  }

  /// The backbone's tap: state `index` (0 = embeddings, i + 1 = output of layer i) as (B, T, d), or its real
  /// tokens already packed as (N, d). Consumed now; nothing of `hidden` but the packed ladder input is kept.
  ///
  /// States the network does not read (dropped layers) may be skipped; a state it runs a block at but reads
  /// no ladder from (GateMode::none) may be an empty view. States must arrive in increasing order.
  void on_tap(Context& ctx, index_t index, ConstView<T, Backend> hidden) const {
    take_tap(ctx, index, hidden, nullptr, nullptr);
  }
  /// As above, with a state the caller gives away (one read back from the tap cache): a packed one (N, d) is
  /// what a ladder that saves its input in f32 keeps, instead of a copy. Allocate it as MemCategory::taps in
  /// training mode.
  void on_tap(Context& ctx, index_t index, Tensor<T, Backend>&& hidden) const {
    take_tap(ctx, index, hidden.cview(), &hidden, nullptr);
  }
  /// As above, with the real tokens where they lie: row i of the packed (N, d) state at rows[i] (a batch read
  /// in place from the tap cache). A ladder that saves its input in f32 keeps these addresses, not a copy,
  /// so the rows must outlive backward(); the embeddings (which dropout changes) and other ladders take a
  /// copy. The same bits as the packed state itself.
  void on_tap(Context& ctx, index_t index, std::vector<const T*>&& rows) const {
    LST_CHECK_SHAPE(index_t(rows.size()) == ctx.rows.rows(), "side network: backbone state ", index, " has ",
                    rows.size(), " rows, expected the batch's ", ctx.rows.rows(), " real tokens");
    take_tap(ctx, index, ConstView<T, Backend>(), nullptr, &rows);
  }

  /// After the last tap: features (B, d) = up(dropout(final_norm(s[:, 0]))), the [CLS] state (or, with
  /// mean_pooling, the mean of s over the real tokens); with the output
  /// gate, beta h + (1 - beta) of that, h the backbone's pooled final state.
  void finish(Context& ctx, TensorView<T, Backend> features) const {
    LST_CHECK(ctx.events == index_t(m_kept.size()) + 1, "side network: finish() after ", ctx.events,
              " of the ", m_kept.size() + 1, " backbone states it reads (embeddings and kept layers)");
    const index_t B = ctx.batch;
    LST_CHECK_SHAPE(features.shape() == (Shape{B, m_backbone.width}), "side network: features have shape ",
                    features.shape(), ", expected (", B, ", ", m_backbone.width, ")");
    Tensor<T, Backend> cls(Shape{B, m_width});
    if (!m_options.mean_pooling) {  // each sequence's first row (the state is those rows alone after a
                                    // [CLS]-only last block)
      const PackedSequences& at = ctx.cls_only_last_block ? ctx.rows.first_rows(1) : ctx.rows;
      for (index_t b = 0; b < B; ++b) cls[b].assign(ctx.state[at.first_row(b)]);
    } else {  // the mean over real tokens; ctx.pool_weights keeps 1 / (real tokens) per row for backward
      ctx.pool_weights.assign(std::size_t(B), 0);
      for (index_t b = 0; b < B; ++b)
        ctx.pool_weights[std::size_t(b)] =
            mean_of_rows(ctx.state.data() + ctx.rows.first_row(b) * m_width, ctx.rows.length(b), m_width,
                         cls.data() + b * m_width);
    }
    ctx.final_norm = m_final_norm->forward(cls, cls, ctx.mode);
    // cls row b is element (first_sequence + b) * d/r onwards of the whole batch's (B, d/r) features: a
    // (B, 1) layout of sequences that start where this shard does gives it the whole batch's mask.
    const PackedSequences cls_rows = PackedSequences::from_mask(nullptr, B, 1, ctx.rows.first_sequence);
    ctx.final_dropout = m_final_dropout.forward(cls, cls, ctx.mode, ctx.step, &cls_rows);
    if (!m_output_gate.valid()) {
      ctx.up = m_up->forward(cls, features, ctx.mode);
    } else {
      LST_CHECK(!ctx.backbone_out.empty(), "side network: finish() before the backbone's final state (",
                m_backbone.layers, ") arrived, which the output gate reads");
      Tensor<T, Backend> u(Shape{B, m_backbone.width},
                           ctx.mode == Mode::training ? MemCategory::activations : MemCategory::workspace);
      ctx.up = m_up->forward(cls, u, ctx.mode);
      const T beta = T(output_gate());
      features = beta * ctx.backbone_out + (T(1) - beta) * u;
      if (ctx.mode == Mode::training)
        ctx.up_out = std::move(u);
      else
        ctx.backbone_out = Tensor<T, Backend>();
    }
    if (ctx.mode != Mode::training) ctx.state = Tensor<T, Backend>();
  }

  /// Gradients of every side parameter from d_features (B, d), following `gm`. The backbone gets none.
  void backward(const Context& ctx, ConstView<T, Backend> d_features, GradMode gm) const {
    LST_CHECK(ctx.mode == Mode::training && ctx.layers.size() == m_blocks.size(),
              "side network: backward needs a finished training-mode context");
    const index_t B = ctx.batch;
    Tensor<T, Backend> dcls(Shape{B, m_width});
    if (!m_output_gate.valid()) {
      m_up->backward(ctx.up, d_features, dcls, gm);
    } else {
      // F = beta h + (1 - beta) u: du = (1 - beta) dF, dgamma = sum dF (h - u) beta (1 - beta) / T
      const double beta = output_gate();
      double acc = 0;
      const index_t n = d_features.numel();
      for (index_t i = 0; i < n; ++i)
        acc += double(d_features.data()[i]) * double(ctx.backbone_out.data()[i] - ctx.up_out.data()[i]);
      const auto grad = m_output_gate.grad();
      const T g = T(acc * beta * (1 - beta) / temperature);
      grad.data()[0] = gm == GradMode::accumulate ? grad.data()[0] + g : g;
      Tensor<T, Backend> du(Shape{B, m_backbone.width});
      du = T(1 - beta) * d_features;
      m_up->backward(ctx.up, du, dcls, gm);
    }
    m_final_dropout.backward(ctx.final_dropout, dcls, dcls);
    m_final_norm->backward(ctx.final_norm, dcls, dcls, gm);
    Tensor<T, Backend> ds, dtmp(ctx.shape);
    if (ctx.cls_only_last_block) {  // the last block's output is the [CLS] rows alone: (B, d/r)
      ds = std::move(dcls);
    } else if (!m_options.mean_pooling) {
      ds = Tensor<T, Backend>::zeros(ctx.shape);
      for (index_t b = 0; b < B; ++b) ds[ctx.rows.first_row(b)].assign(dcls[b]);
    } else {
      ds = Tensor<T, Backend>(ctx.shape);
      for (index_t b = 0; b < B; ++b)
        for (index_t t = 0; t < ctx.rows.length(b); ++t) {
          T* d = ds.data() + (ctx.rows.first_row(b) + t) * m_width;
          const T* g = dcls.data() + b * m_width;
          for (index_t c = 0; c < m_width; ++c) d[c] = ctx.pool_weights[std::size_t(b)] * g[c];
        }
    }
    for (std::size_t i = m_blocks.size(); i-- > 0;) backward_layer(ctx, i, ds, dtmp, gm);
    m_embedding_ladder->backward(ctx.embedding_ladder, ds, gm);  // s_0 = down_0(dropout(h_0))
  }

 private:
  static double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

  /// Whether the last block computes the [CLS] row only: the head reads nothing else (no mean pooling), and
  /// no gate after the block mixes the other rows back in.
  bool computes_cls_only_last_block() const {
    return m_options.cls_only_last_block && !m_options.mean_pooling && m_options.gate != GateMode::after;
  }

  /// ctx.backbone_out (B, d) = the backbone's final state at [CLS], or its mean over the real tokens; packed
  /// row r of the state at row(r).
  template <class RowOf>
  void pool_backbone_output(Context& ctx, const RowOf& row) const {
    const index_t B = ctx.batch, d = m_backbone.width;
    ctx.backbone_out = Tensor<T, Backend>(  // every row is written below
        Shape{B, d}, ctx.mode == Mode::training ? MemCategory::activations : MemCategory::workspace);
    for (index_t b = 0; b < B; ++b) {
      T* out = ctx.backbone_out.data() + b * d;
      const index_t r0 = ctx.rows.first_row(b);
      if (m_options.output_gate == OutputGate::cls)
        std::copy_n(row(r0), d, out);
      else
        mean_of_rows_at([&](index_t t) { return row(r0 + t); }, ctx.rows.length(b), d, out);
    }
  }

  /// out (C) = the mean of the rows of x (n, C). Returns the weight 1 / n each row got.
  static T mean_of_rows(const T* x, index_t n, index_t C, T* out) {
    return mean_of_rows_at([&](index_t t) { return x + t * C; }, n, C, out);
  }
  /// As above, row t at row(t).
  template <class RowOf>
  static T mean_of_rows_at(const RowOf& row, index_t n, index_t C, T* out) {
    const T w = T(1) / T(std::max<index_t>(n, 1));
    std::fill(out, out + C, T(0));
    for (index_t t = 0; t < n; ++t) {
      const T* x = row(t);
      for (index_t c = 0; c < C; ++c) out[c] += w * x[c];
    }
    return w;
  }

  /// The real tokens of a backbone state, packed (N, d): `hidden` itself when it is packed already (moved out
  /// of `owned` when the caller gave it away), else its rows gathered from the padded (B, T, d) batch.
  Tensor<T, Backend> packed_state(const Context& ctx, index_t index, ConstView<T, Backend> hidden,
                                  Tensor<T, Backend>* owned, MemCategory category) const {
    const index_t d = m_backbone.width, B = ctx.batch, Tn = ctx.length;
    if (hidden.shape() == (Shape{ctx.rows.rows(), d}))
      return owned ? std::move(*owned) : clone_as(hidden, category);
    LST_CHECK_SHAPE(hidden.shape() == (Shape{B, Tn, d}), "side network: backbone state ", index,
                    " has shape ", hidden.shape(), ", expected (", B, ", ", Tn, ", ", d, ") or its ",
                    ctx.rows.rows(), " real tokens packed, (", ctx.rows.rows(), ", ", d, ")");
    Tensor<T, Backend> packed(Shape{ctx.rows.rows(), d}, category);
    copy_first_rows(PackedSequences::whole(B, Tn), ctx.rows, d, hidden.data(), packed.data());
    return packed;
  }

  /// The gate factors mu per side channel (a scalar gate's one factor repeated).
  std::vector<T> gate_factors(std::size_t slot) const {
    const auto a = m_gates[slot].value();
    std::vector<T> mu(static_cast<std::size_t>(m_width));
    for (index_t c = 0; c < m_width; ++c)
      mu[std::size_t(c)] = T(sigmoid(double(a.data()[a.numel() == 1 ? 0 : c]) / temperature));
    return mu;
  }

  /// s = mu s + (1 - mu) z (the gate of `slot`), in one pass; in training, `kept` gets s as it was (the
  /// gate's backward reads it).
  void mix_gate(std::size_t slot, Tensor<T, Backend>& s, const Tensor<T, Backend>& z, bool training,
                Tensor<T, Backend>& kept) const {
    if (training) kept = Tensor<T, Backend>(s.shape(), MemCategory::activations);
    lst::gate_mix<T, Backend>(gate_factors(slot), s, z, training ? kept.view() : TensorView<T, Backend>());
  }

  /// on_tap(); `owned` is the tensor `hidden` views when the caller gave it away (else null); `rows`, when
  /// not null, gives the packed state's rows where they lie instead of `hidden`.
  void take_tap(Context& ctx, index_t index, ConstView<T, Backend> hidden, Tensor<T, Backend>* owned,
                std::vector<const T*>* rows) const {
    LST_CHECK(index >= ctx.taps_seen && index <= m_backbone.layers, "side network: backbone state ", index,
              " arrived after state ", ctx.taps_seen - 1);
    ctx.taps_seen = index + 1;
    const bool dropped_layer = index > 0 && m_slot_of_layer[std::size_t(index - 1)] < 0;
    const bool output_gate_reads = m_output_gate.valid() && index == m_backbone.layers;
    if (dropped_layer && !output_gate_reads) return;  // a dropped layer: no ladder, gate or block
    const bool training = ctx.mode == Mode::training;
    const std::size_t slot =
        dropped_layer || index == 0 ? 0 : std::size_t(m_slot_of_layer[std::size_t(index - 1)]);
    const index_t d = m_backbone.width;
    // Rows in place go straight to a ladder that reads them so (and the embeddings' dropout reads them into
    // its packed output); any other ladder reads a packed copy. The output gate pools rows where they lie.
    const bool in_place = rows && index > 0 && !dropped_layer && m_options.gate != GateMode::none &&
                          m_ladders[slot]->reads_in_place(m_options.tap_dtype, ctx.rows.rows());
    const MemCategory category = training && !dropped_layer ? MemCategory::taps : MemCategory::workspace;
    Tensor<T, Backend> packed;
    if (index == 0) {  // s = down_0(dropout(h_0)); the ladder keeps the dropped state its gradient needs
      ++ctx.events;
      if (rows) {  // the dropout reads the rows where they lie and writes the packed state
        if (output_gate_reads) pool_backbone_output(ctx, [&](index_t r) { return (*rows)[std::size_t(r)]; });
        packed = Tensor<T, Backend>(Shape{ctx.rows.rows(), d}, category);
        ctx.embedding_dropout =
            m_embedding_dropout.forward(rows->data(), packed, ctx.mode, ctx.step, &ctx.rows);
      } else {
        packed = packed_state(ctx, index, hidden, owned, category);
        if (output_gate_reads)  // a backbone without layers: the output gate reads the embeddings, undropped
          pool_backbone_output(ctx, [&](index_t r) { return packed.data() + r * d; });
        ctx.embedding_dropout =
            m_embedding_dropout.forward(packed, packed, ctx.mode, ctx.step, &ctx.rows);  // in place
      }
      ctx.embedding_ladder =
          m_embedding_ladder->forward(std::move(packed), ctx.state, ctx.mode, m_options.tap_dtype);
      return;
    }
    if (!in_place && ((m_options.gate != GateMode::none && !dropped_layer) || (output_gate_reads && !rows))) {
      if (rows) {  // gathered once, for a ladder that keeps a packed copy anyway
        packed = Tensor<T, Backend>(Shape{ctx.rows.rows(), d}, category);
        gather_rows<T, Backend>(RowTable<T>{rows->data(), ctx.rows.rows(), d}, packed);
      } else {
        packed = packed_state(ctx, index, hidden, owned, category);
      }
    }
    if (output_gate_reads) {
      if (rows)
        pool_backbone_output(ctx, [&](index_t r) { return (*rows)[std::size_t(r)]; });
      else
        pool_backbone_output(ctx, [&](index_t r) { return packed.data() + r * d; });
    }
    if (dropped_layer) return;
    ++ctx.events;
    fuse_and_run(ctx, slot, [&](TensorView<T, Backend> z) {
      const Ladder<T, Backend>& ladder = *m_ladders[slot];
      if (in_place) return ladder.forward(std::move(*rows), z, ctx.mode);
      return ladder.forward(std::move(packed), z, ctx.mode, m_options.tap_dtype);
    });
  }

  /// The fusion and block of kept slot `slot`; ladder(z) writes the ladder's output into z (N, d/r) and
  /// returns its context (not called with GateMode::none).
  template <class RunLadder>
  void fuse_and_run(Context& ctx, std::size_t slot, const RunLadder& ladder) const {
    LayerContext lc;
    const bool training = ctx.mode == Mode::training;
    const MemCategory keep = training ? MemCategory::activations : MemCategory::workspace;
    Tensor<T, Backend>& s = ctx.state;
    if (m_options.gate != GateMode::none) {
      lc.ladder_out = Tensor<T, Backend>(ctx.shape, keep);
      lc.ladder = ladder(lc.ladder_out.view());
    }
    const GateMode g = m_options.gate;
    if (g == GateMode::before) {  // s = mu s + (1 - mu) z, then the block
      mix_gate(slot, s, lc.ladder_out, training, lc.other);
    } else if (g == GateMode::sum) {
      s += lc.ladder_out;
    }
    const ConstView<std::int32_t, Backend> no_mask;  // packed: every row is a real token
    if (slot + 1 == m_blocks.size() && computes_cls_only_last_block()) {
      // Section 2.2's head reads s[:, 0] only: the last block asks with that row alone (keys and values still
      // every token), which saves most of a block's work and changes its [CLS] row only by rounding.
      Tensor<T, Backend> cls(Shape{ctx.batch, m_width}, MemCategory::activations);
      lc.block = m_blocks[slot].forward(s, no_mask, cls, ctx.mode, ctx.step, nullptr, 1, &ctx.rows);
      s = std::move(cls);
      ctx.cls_only_last_block = true;
    } else {
      lc.block = m_blocks[slot].forward(s, no_mask, s, ctx.mode, ctx.step, nullptr, 0, &ctx.rows);
    }
    if (g == GateMode::after)
      mix_gate(slot, s, lc.ladder_out, training, lc.other);  // s = mu block(s) + (1 - mu) z
    if (!training)
      lc = LayerContext();  // inference keeps nothing
    else if (g == GateMode::sum || g == GateMode::none)
      lc.ladder_out = Tensor<T, Backend>();  // not needed
    ctx.layers.push_back(std::move(lc));
  }

  /// ds (B, T, d/r) holds dL/ds after slot i; on return, dL/ds before it.
  void backward_layer(const Context& ctx, std::size_t i, Tensor<T, Backend>& ds, Tensor<T, Backend>& dtmp,
                      GradMode gm) const {
    const LayerContext& lc = ctx.layers[i];
    const GateMode g = m_options.gate;
    Tensor<T, Backend> dz;  // dL/d down_i(h_i)
    if (g == GateMode::after) {
      // s = mu b + (1 - mu) z: db = mu ds, dz = (1 - mu) ds, dmu = sum ds (b - z)
      gate_backward(i, ds, lc.other, lc.ladder_out, dz, gm);
    }
    m_blocks[i].backward(lc.block, ds, dtmp, gm);
    std::swap(ds, dtmp);
    if (dtmp.shape() != ctx.shape) dtmp = Tensor<T, Backend>(ctx.shape);  // after a [CLS]-only last block
    if (g == GateMode::before) {
      // s_in = mu s + (1 - mu) z: ds = mu ds_in, dz = (1 - mu) ds_in, dmu = sum ds_in (s - z)
      gate_backward(i, ds, lc.other, lc.ladder_out, dz, gm);
    } else if (g == GateMode::sum) {
      dz = ds.clone();
    }
    if (g != GateMode::none) m_ladders[i]->backward(lc.ladder, dz, gm);
  }

  /// The gate's backward in one pass over ds = dL/d(mu a + (1 - mu) b): dalpha = sum over rows [and
  /// channels, for a scalar gate] of ds (a - b) mu (1 - mu) / T, following gm; dz = (1 - mu) ds; ds becomes
  /// mu ds. The sums run per channel in double, then over channels for a scalar gate.
  void gate_backward(std::size_t i, Tensor<T, Backend>& ds, const Tensor<T, Backend>& a,
                     const Tensor<T, Backend>& b, Tensor<T, Backend>& dz, GradMode gm) const {
    const auto alpha = m_gates[i].value(), grad = m_gates[i].grad();
    const index_t C = m_width, n = alpha.numel();
    dz = Tensor<T, Backend>(ds.shape());
    std::vector<double> acc = lst::gate_backward<T, Backend>(gate_factors(i), ds, a, b, dz);
    if (n == 1) {
      for (index_t c = 1; c < C; ++c) acc[0] += acc[std::size_t(c)];
    }
    for (index_t c = 0; c < n; ++c) {
      const double m = sigmoid(double(alpha.data()[c]) / temperature);
      const T d = T(acc[std::size_t(c)] * m * (1.0 - m) / temperature);
      grad.data()[c] = gm == GradMode::accumulate ? grad.data()[c] + d : d;
    }
  }

  SideOptions m_options;
  BackboneShape m_backbone;
  std::vector<index_t> m_kept;
  ParameterArena<T, Backend> m_params;
  index_t m_width = 0;
  std::vector<index_t> m_slot_of_layer;  // backbone layer -> kept slot, -1 when dropped
  Dropout<T, Backend> m_embedding_dropout, m_final_dropout;
  std::unique_ptr<Ladder<T, Backend>> m_embedding_ladder;
  std::vector<std::unique_ptr<Ladder<T, Backend>>> m_ladders;  // one per kept slot (none with GateMode::none)
  std::vector<Param<T, Backend>> m_gates;                      // one per kept slot (before / after only)
  Param<T, Backend> m_output_gate;                             // gamma, when the output gate is on
  std::vector<EncoderLayer<T, Backend>> m_blocks;
  std::unique_ptr<LayerNorm<T, Backend>> m_final_norm;
  std::unique_ptr<Linear<T, Backend>> m_up;
};

LST_NAMESPACE_END
