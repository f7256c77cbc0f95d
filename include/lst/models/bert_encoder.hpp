// SPDX-License-Identifier: MIT
/// @file bert_encoder.hpp
/// @brief BERT's encoder (Devlin et al. 2019, section 3): embeddings (word + position + token type,
/// LayerNorm,
///        dropout), L post-LN encoder layers, and the pooler tanh(W h_[CLS] + b). Loads Hugging Face
///        checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../io/bert_config.hpp"
#include "../io/safetensors.hpp"
#include "../nn/dropout.hpp"
#include "../nn/embedding.hpp"
#include "../nn/encoder_layer.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class BertEncoder {
 public:
  /// Receives the hidden states after the embeddings (layer 0) and after each encoder layer l = 1..L, in
  /// order, during forward. The view is valid only during the call (the encoder reuses its buffers): a side
  /// network keeps what it needs (ARCHITECTURE.md, "backbone in inference mode keeps nothing").
  using Tap = std::function<void(index_t layer, ConstView<T, Backend> hidden)>;  // hidden (B, T, C)

  struct Context {
    typename Embedding<T, Backend>::Context word, position, token_type;
    typename LayerNorm<T, Backend>::Context embedding_norm;
    typename Dropout<T, Backend>::Context embedding_dropout;
    std::unique_ptr<SiteContext> embeddings_site;  // the module's at Site::embeddings, when registered
    std::vector<typename EncoderLayer<T, Backend>::Context> layers;
    typename Linear<T, Backend>::Context pooler;
    Tensor<T, Backend> pooled;  // (B, C) tanh output, for the pooler's backward
    Shape hidden_shape;
  };

  /// Builds the parameter layout for `cfg` (values zero until load() or an initialiser); `trainable`
  /// allocates gradients for full fine-tuning. `seed` seeds the dropouts. `attention_dropout` applies the
  /// config's attention_probs_dropout_prob to the attention probabilities in training, as Hugging Face does;
  /// false turns it off.
  BertEncoder(const io::BertConfig& cfg, bool trainable, std::uint64_t seed = 0,
              bool attention_dropout = true)
      : m_cfg(cfg),
        m_params("bert"),
        m_word(m_params, "embeddings.word_embeddings", cfg.vocab_size, cfg.hidden_size),
        m_position(m_params, "embeddings.position_embeddings", cfg.max_position_embeddings, cfg.hidden_size),
        m_token_type(m_params, "embeddings.token_type_embeddings", cfg.type_vocab_size, cfg.hidden_size),
        m_embedding_norm(m_params, "embeddings.LayerNorm", cfg.hidden_size, cfg.layer_norm_eps),
        m_embedding_dropout(cfg.hidden_dropout_prob, mix64(seed), "embeddings.dropout"),
        m_pooler(m_params, "pooler.dense", cfg.hidden_size, cfg.hidden_size) {
    const EncoderLayerConfig lc{cfg.hidden_size,
                                cfg.num_attention_heads,
                                cfg.intermediate_size,
                                cfg.activation(),
                                cfg.layer_norm_eps,
                                cfg.hidden_dropout_prob,
                                attention_dropout ? cfg.attention_probs_dropout_prob : 0.0};
    m_layers.reserve(static_cast<std::size_t>(cfg.num_hidden_layers));
    for (index_t l = 0; l < cfg.num_hidden_layers; ++l)
      m_layers.emplace_back(m_params, "encoder.layer." + std::to_string(l), lc, seed + 1 + std::uint64_t(l));
    m_params.allocate(trainable);
  }
  BertEncoder(const BertEncoder&) = delete;
  BertEncoder& operator=(const BertEncoder&) = delete;

  const io::BertConfig& config() const { return m_cfg; }
  ParameterArena<T, Backend>& parameters() { return m_params; }
  const ParameterArena<T, Backend>& parameters() const { return m_params; }
  const std::vector<EncoderLayer<T, Backend>>& layers() const { return m_layers; }
  /// Layer l, to register modules at its sites (EncoderLayer::attach) or give it prefix keys and values.
  EncoderLayer<T, Backend>& layer(index_t l) {
    LST_CHECK(l >= 0 && l < index_t(m_layers.size()), "BertEncoder: layer ", l, " of ", m_layers.size());
    return m_layers[std::size_t(l)];
  }
  /// Registers a module at Site::embeddings (nn/site.hpp): it reads and modifies the embeddings' output
  /// (after their LayerNorm and dropout), before the first layer and the tap of state 0. Null removes it.
  void attach_embeddings(std::shared_ptr<const SiteModule<T, Backend>> module) {
    m_embeddings_site = std::move(module);
  }

  /// The Hugging Face name of one of this encoder's parameters (they differ inside the layers only).
  static std::string hf_name(const std::string& name) {
    static const std::pair<const char*, const char*> renames[] = {
        {".attention.query.", ".attention.self.query."},
        {".attention.key.", ".attention.self.key."},
        {".attention.value.", ".attention.self.value."},
        {".attention.output.", ".attention.output.dense."},
        {".attention_norm.", ".attention.output.LayerNorm."},
        {".ffn.fc1.", ".intermediate.dense."},
        {".ffn.fc2.", ".output.dense."},
        {".output_norm.", ".output.LayerNorm."}};
    for (const auto& [ours, theirs] : renames) {
      const auto at = name.find(ours);
      if (at != std::string::npos)
        return name.substr(0, at) + theirs + name.substr(at + std::string(ours).size());
    }
    return name;
  }

  /// Reads every parameter from a Hugging Face checkpoint (names with or without the "bert." prefix of task
  /// models). A missing tensor or a shape that disagrees with the config is an error naming both.
  void load(const io::SafetensorsFile& file) {
    for (std::size_t i = 0; i < m_params.count(); ++i) {
      const std::string name = hf_name(m_params.info(i).name);
      const std::string stored = file.find(name) ? name : file.find("bert." + name) ? "bert." + name : name;
      file.read(stored, m_params.value(i));
    }
  }

  /// hidden (B, T, C) = encoder(ids (B, T)); `token_types` (B, T) or empty for all zeros; `mask` (B, T) 1 =
  /// real token, 0 = padding, or empty; `pooled` (B, C) or empty to skip the pooler. Training mode keeps
  /// contexts for backward (full fine-tuning); inference keeps nothing and calls `tap` with every layer's
  /// output.
  Context forward(ConstView<std::int32_t, Backend> ids, ConstView<std::int32_t, Backend> token_types,
                  ConstView<std::int32_t, Backend> mask, TensorView<T, Backend> hidden,
                  TensorView<T, Backend> pooled, Mode mode, std::uint64_t step,
                  const Tap& tap = nullptr) const {
    LST_CHECK_SHAPE(ids.rank() == 2, "BertEncoder: input ids have shape ", ids.shape(), ", expected (B, T)");
    const index_t B = ids.dim(0), Tn = ids.dim(1), C = m_cfg.hidden_size;
    LST_CHECK_SHAPE(Tn <= m_cfg.max_position_embeddings, "BertEncoder: sequence length ", Tn, " exceeds the ",
                    m_cfg.max_position_embeddings, " positions of the checkpoint");
    LST_CHECK_SHAPE(hidden.shape() == (Shape{B, Tn, C}), "BertEncoder: output hidden has shape ",
                    hidden.shape(), ", expected (", B, ", ", Tn, ", ", C, ")");
    LST_CHECK_SHAPE(token_types.empty() || token_types.shape() == ids.shape(),
                    "BertEncoder: token types have shape ", token_types.shape(), ", expected the ids' shape ",
                    ids.shape());
    LST_CHECK_SHAPE(pooled.empty() || pooled.shape() == (Shape{B, C}),
                    "BertEncoder: pooled output has shape ", pooled.shape(), ", expected (", B, ", ", C, ")");
    Context ctx;
    ctx.hidden_shape = hidden.shape();
    Tensor<std::int32_t, Backend> positions(ids.shape()), zeros;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < Tn; ++t) positions.data()[b * Tn + t] = static_cast<std::int32_t>(t);
    if (token_types.empty()) zeros = Tensor<std::int32_t, Backend>::zeros(ids.shape());

    Tensor<T, Backend> other(hidden.shape());  // the second of two ping-pong buffers
    ctx.word = m_word.forward(ids, hidden, mode);
    ctx.position = m_position.forward(positions, other, mode);
    hidden += other;
    ctx.token_type = m_token_type.forward(token_types.empty() ? zeros.cview() : token_types, other, mode);
    hidden += other;
    ctx.embedding_norm = m_embedding_norm.forward(hidden, hidden, mode);
    ctx.embedding_dropout = m_embedding_dropout.forward(hidden, hidden, mode, step);
    if (m_embeddings_site) {  // x is h: the module reads a copy while it writes h
      const Tensor<T, Backend> x = clone_as(hidden, MemCategory::workspace);
      ctx.embeddings_site = m_embeddings_site->forward(x, hidden, mode, step);
    }
    if (tap) tap(0, hidden);

    const TensorView<T, Backend> buffers[2] = {hidden, other.view()};
    int in = 0;
    for (std::size_t l = 0; l < m_layers.size(); ++l, in ^= 1) {
      auto layer_ctx = m_layers[l].forward(buffers[in], mask, buffers[in ^ 1], mode, step);
      if (mode == Mode::training) ctx.layers.push_back(std::move(layer_ctx));
      if (tap) tap(index_t(l) + 1, buffers[in ^ 1]);
    }
    if (in != 0) hidden.assign(buffers[in]);

    if (!pooled.empty()) {
      Tensor<T, Backend> cls(Shape{B, C});  // the [CLS] (first) state of each sequence
      for (index_t b = 0; b < B; ++b) cls[b].assign(hidden[b][0]);
      ctx.pooler = m_pooler.forward(cls, pooled, mode);
      pooled = tanh(pooled);
      if (mode == Mode::training) ctx.pooled = clone_as(pooled, MemCategory::activations);
    }
    return ctx;
  }

  /// Backward through the whole encoder (full fine-tuning): `d_hidden` (B, T, C) and/or `d_pooled` (B, C),
  /// either may be empty. Parameter gradients follow `gm`; ids have no gradient.
  void backward(const Context& ctx, ConstView<T, Backend> d_hidden, ConstView<T, Backend> d_pooled,
                GradMode gm) const {
    LST_CHECK(ctx.layers.size() == m_layers.size(), "BertEncoder: backward needs a training-mode context");
    const index_t B = ctx.hidden_shape[0], C = m_cfg.hidden_size;
    Tensor<T, Backend> d(ctx.hidden_shape), dprev(ctx.hidden_shape);
    if (d_hidden.empty())
      d.set_zero();
    else
      d.view().assign(d_hidden);
    if (!d_pooled.empty()) {
      LST_CHECK(!ctx.pooled.empty(),
                "BertEncoder: a pooled gradient needs a forward that computed the pooler");
      Tensor<T, Backend> dpre(Shape{B, C}), dcls(Shape{B, C});
      dpre = d_pooled * (T(1) - ctx.pooled * ctx.pooled);  // tanh' = 1 - tanh^2
      m_pooler.backward(ctx.pooler, dpre, dcls, gm);
      for (index_t b = 0; b < B; ++b) d[b][0] += dcls[b];
    } else if (gm == GradMode::overwrite) {  // the pooler got no gradient: overwrite means zero
      m_pooler.weight().grad().set_zero();
      m_pooler.bias().grad().set_zero();
    }
    for (std::size_t l = m_layers.size(); l-- > 0;) {
      m_layers[l].backward(ctx.layers[l], d, dprev, gm);
      std::swap(d, dprev);
    }
    if (m_embeddings_site) {  // x was h itself: its gradient through the module joins h's
      Tensor<T, Backend> dx = Tensor<T, Backend>::zeros(ctx.hidden_shape);
      m_embeddings_site->backward(ctx.embeddings_site.get(), d, dx, gm);
      d += dx;
    }
    m_embedding_dropout.backward(ctx.embedding_dropout, d, d);
    m_embedding_norm.backward(ctx.embedding_norm, d, d, gm);
    m_word.backward(ctx.word, d, gm);
    m_position.backward(ctx.position, d, gm);
    m_token_type.backward(ctx.token_type, d, gm);
  }

 private:
  io::BertConfig m_cfg;
  ParameterArena<T, Backend> m_params;
  Embedding<T, Backend> m_word, m_position, m_token_type;
  LayerNorm<T, Backend> m_embedding_norm;
  Dropout<T, Backend> m_embedding_dropout;
  Linear<T, Backend> m_pooler;  // tanh(W h_[CLS] + b)
  std::vector<EncoderLayer<T, Backend>> m_layers;
  std::shared_ptr<const SiteModule<T, Backend>> m_embeddings_site;
};

LST_NAMESPACE_END
