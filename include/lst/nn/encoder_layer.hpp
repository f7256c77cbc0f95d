// SPDX-License-Identifier: MIT
/// @file encoder_layer.hpp
/// @brief A post-LayerNorm transformer encoder layer, BERT's (Devlin et al. 2019; Vaswani et al. 2017, 3.1):
///        h = LN1(x + Drop(Attn(x))), y = LN2(h + Drop(FFN(h))).
#pragma once

#include <cstdint>
#include <string>

#include "attention.hpp"
#include "dropout.hpp"
#include "feed_forward.hpp"
#include "layer_norm.hpp"

LST_NAMESPACE_BEGIN

struct EncoderLayerConfig {
  index_t dim = 0;     // C
  index_t heads = 0;   // H, C % H == 0
  index_t hidden = 0;  // F, the feed-forward width
  ActivationKind activation = ActivationKind::gelu;
  double layer_norm_eps = 1e-12;
  double dropout = 0.1;  // on the attention output and the FFN output, before each residual add
};

template <class T, class Backend = Cpu>
class EncoderLayer {
 public:
  struct Context {
    typename MultiHeadSelfAttention<T, Backend>::Context attention;
    typename Dropout<T, Backend>::Context attention_dropout, ffn_dropout;
    typename LayerNorm<T, Backend>::Context ln1, ln2;
    typename FeedForward<T, Backend>::Context ffn;
  };

  /// `seed` seeds this layer's two dropouts (use a distinct one per layer).
  EncoderLayer(ParameterArena<T, Backend>& arena, const std::string& name, const EncoderLayerConfig& cfg,
               std::uint64_t seed)
      : m_name(name),
        m_cfg(cfg),
        m_attention(arena, name + ".attention", cfg.dim, cfg.heads),
        m_ln1(arena, name + ".attention_norm", cfg.dim, cfg.layer_norm_eps),
        m_ffn(arena, name + ".ffn", cfg.dim, cfg.hidden, cfg.activation),
        m_ln2(arena, name + ".output_norm", cfg.dim, cfg.layer_norm_eps),
        m_drop1(cfg.dropout, mix64(seed * 2 + 0), name + ".attention_dropout"),
        m_drop2(cfg.dropout, mix64(seed * 2 + 1), name + ".ffn_dropout") {}

  const EncoderLayerConfig& config() const { return m_cfg; }
  const MultiHeadSelfAttention<T, Backend>& attention() const { return m_attention; }
  /// See MultiHeadSelfAttention::set_recompute_probabilities.
  void set_recompute_attention(bool on) { m_attention.set_recompute_probabilities(on); }
  /// See MultiHeadSelfAttention::set_skip_padded_queries.
  void set_skip_padded_queries(bool on) { m_attention.set_skip_padded_queries(on); }
  const FeedForward<T, Backend>& ffn() const { return m_ffn; }
  const LayerNorm<T, Backend>& attention_norm() const { return m_ln1; }
  const LayerNorm<T, Backend>& output_norm() const { return m_ln2; }

  /// y (B, T, C) from x (B, T, C); `mask` (B, T) as in MultiHeadSelfAttention; `step` drives dropout. y may
  /// be x itself.
  ///
  /// `queries` > 0: y (B, queries, C) is the first `queries` rows of each sequence's output only (every
  /// position still serves as key and value; see MultiHeadSelfAttention::forward). Everything after the
  /// attention is per row, so the rest of the layer runs on those rows alone, with the dropout masks the
  /// whole layer would have given them: the rows equal the whole layer's, to rounding.
  ///
  /// `packed`: x (N, C) is packed sequences with no padding and no mask, and y (N, C), or (B queries, C) with
  /// `queries` (see MultiHeadSelfAttention::forward). Dropout gives each row the mask of its position in the
  /// padded batch: the rows equal the padded layer's real rows, to rounding.
  Context forward(ConstView<T, Backend> x, ConstView<std::int32_t, Backend> mask, TensorView<T, Backend> y,
                  Mode mode, std::uint64_t step, const PrefixKV<T, Backend>* prefix = nullptr,
                  index_t queries = 0, const PackedSequences* packed = nullptr) const {
    Context ctx;
    // Output-shaped (h, f): both workspace, LN contexts keep what backward needs. Checked by the attention.
    Tensor<T, Backend> h(y.shape()), f(y.shape());
    ctx.attention = m_attention.forward(x, mask, h, mode, prefix, queries, packed);
    const auto& L = ctx.attention.layout;
    const bool all_rows = y.shape() == x.shape();
    // Rows computed alone (packed, or each sequence's first rows) take their padded position's masks.
    const PackedSequences* dropout_rows = packed || !all_rows ? &L.q : nullptr;
    ctx.attention_dropout = m_drop1.forward(h, h, mode, step, dropout_rows);
    if (all_rows)
      h += x;  // residual
    else
      add_first_rows(L.x, L.q, m_cfg.dim, x.data(), h.data());  // h += x's query rows
    ctx.ln1 = m_ln1.forward(h, h, mode);
    ctx.ffn = m_ffn.forward(h, f, mode);
    ctx.ffn_dropout = m_drop2.forward(f, f, mode, step, dropout_rows);
    y = f + h;  // residual
    ctx.ln2 = m_ln2.forward(y, y, mode);
    return ctx;
  }

  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx, GradMode gm) const {
    // Checked before any gradient is written, so that a failed call leaves the gradients as they were.
    LST_CHECK(!ctx.attention.x.empty(), "EncoderLayer '", m_name,
              "': backward needs a training-mode context");
    const Shape s = ctx.attention.q.shape();  // the output's: (B, T, C), (B, queries, C) or packed
    LST_CHECK_SHAPE(dy.shape() == s && (dx.empty() || dx.shape() == ctx.attention.x.shape()),
                    "EncoderLayer '", m_name, "': gradients dy ", dy.shape(), " and dx ", dx.shape(),
                    " must have the output's shape ", s, " and the input's ", ctx.attention.x.shape());
    Tensor<T, Backend> dr2(s), dh(s), df(s);
    m_ln2.backward(ctx.ln2, dy, dr2, gm);
    m_drop2.backward(ctx.ffn_dropout, dr2, df);
    m_ffn.backward(ctx.ffn, df, dh, gm);
    dh += dr2;  // the residual path
    m_ln1.backward(ctx.ln1, dh, dh, gm);
    m_drop1.backward(ctx.attention_dropout, dh, df);
    m_attention.backward(ctx.attention, df, dx, gm);
    if (dx.data() == nullptr) return;
    if (s == dx.shape()) {
      dx += dh;  // the residual path
    } else {
      const auto& L = ctx.attention.layout;
      add_first_rows(L.q, L.x, m_cfg.dim, dh.data(), dx.data());
    }
  }

 private:
  std::string m_name;
  EncoderLayerConfig m_cfg;
  MultiHeadSelfAttention<T, Backend> m_attention;
  LayerNorm<T, Backend> m_ln1;
  FeedForward<T, Backend> m_ffn;
  LayerNorm<T, Backend> m_ln2;
  Dropout<T, Backend> m_drop1, m_drop2;
};

LST_NAMESPACE_END
