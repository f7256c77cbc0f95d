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
#include "site.hpp"

LST_NAMESPACE_BEGIN

struct EncoderLayerConfig {
  index_t dim = 0;     // C
  index_t heads = 0;   // H, C % H == 0
  index_t hidden = 0;  // F, the feed-forward width
  ActivationKind activation = ActivationKind::gelu;
  double layer_norm_eps = 1e-12;
  double dropout = 0.1;  // on the attention output and the FFN output, before each residual add
  /// On the attention probabilities (Hugging Face's attention_probs_dropout_prob); 0 turns it off.
  double attention_dropout = 0.0;
};

template <class T, class Backend = Cpu>
class EncoderLayer {
 public:
  struct Context {
    typename MultiHeadSelfAttention<T, Backend>::Context attention;
    typename Dropout<T, Backend>::Context attention_dropout, ffn_dropout;
    typename LayerNorm<T, Backend>::Context ln1, ln2;
    typename FeedForward<T, Backend>::Context ffn;
    std::unique_ptr<SiteContext> attention_site, ffn_site;  // the modules' at those sites, when registered
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
        m_drop2(cfg.dropout, mix64(seed * 2 + 1), name + ".ffn_dropout") {
    // Its own stream: seeds 2 seed and 2 seed + 1 are the two dropouts'.
    m_attention.set_dropout(cfg.attention_dropout, mix64(~(seed * 2)));
  }

  const EncoderLayerConfig& config() const { return m_cfg; }
  const MultiHeadSelfAttention<T, Backend>& attention() const { return m_attention; }
  /// See MultiHeadSelfAttention::set_recompute_probabilities.
  void set_recompute_attention(bool on) { m_attention.set_recompute_probabilities(on); }
  /// See MultiHeadSelfAttention::set_skip_padded_queries.
  void set_skip_padded_queries(bool on) { m_attention.set_skip_padded_queries(on); }
  const FeedForward<T, Backend>& ffn() const { return m_ffn; }
  const LayerNorm<T, Backend>& attention_norm() const { return m_ln1; }
  const LayerNorm<T, Backend>& output_norm() const { return m_ln2; }

  /// Registers a module at Site::attention or Site::ffn (nn/site.hpp); null removes it. The projection sites
  /// are the attention's.
  void attach(Site site, std::shared_ptr<const SiteModule<T, Backend>> module) {
    LST_CHECK(site == Site::attention || site == Site::ffn, "EncoderLayer '", m_name, "': site ",
              to_string(site), " is not a layer's (attention, ffn)");
    m_sites.attach(site, std::move(module));
  }
  const SiteModules<T, Backend>& sites() const { return m_sites; }
  /// Prefix keys and values every forward call uses when it is given none (prefix tuning); null for none.
  /// The caller keeps them alive.
  void set_prefix(const PrefixKV<T, Backend>* prefix) { m_prefix = prefix; }

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
    if (!prefix) prefix = m_prefix;
    // Output-shaped (h, f): both workspace, LN contexts keep what backward needs. Checked by the attention.
    Tensor<T, Backend> h(y.shape()), f(y.shape());
    ctx.attention = m_attention.forward(x, mask, h, mode, prefix, queries, packed, step);
    const auto& L = ctx.attention.layout;
    const bool all_rows = y.shape() == x.shape();
    // Rows computed alone (packed, or each sequence's first rows) take their padded position's masks.
    const PackedSequences* dropout_rows = packed || !all_rows ? &L.q : nullptr;
    ctx.attention_dropout = m_drop1.forward(h, h, mode, step, dropout_rows);
    if (const SiteModule<T, Backend>* m = m_sites.at(Site::attention)) {
      LST_CHECK(all_rows, "EncoderLayer '", m_name,
                "': a module at the attention site needs every row computed");
      ctx.attention_site = m->forward(x, h, mode, step);
    }
    if (all_rows)
      h += x;  // residual
    else
      add_first_rows(L.x, L.q, m_cfg.dim, x.data(), h.data());  // h += x's query rows
    ctx.ln1 = m_ln1.forward(h, h, mode);
    ctx.ffn = m_ffn.forward(h, f, mode);
    ctx.ffn_dropout = m_drop2.forward(f, f, mode, step, dropout_rows);
    if (const SiteModule<T, Backend>* m = m_sites.at(Site::ffn)) ctx.ffn_site = m->forward(h, f, mode, step);
    y = f + h;  // residual
    ctx.ln2 = m_ln2.forward(y, y, mode);
    return ctx;
  }

  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx, GradMode gm) const {
    // Checked before any gradient is written, so that a failed call leaves the gradients as they were.
    LST_CHECK(!ctx.attention.heads.empty(), "EncoderLayer '", m_name,
              "': backward needs a training-mode context");
    const Shape s = ctx.attention.q.shape();  // the output's: (B, T, C), (B, queries, C) or packed
    LST_CHECK_SHAPE(dy.shape() == s && (dx.empty() || dx.shape() == ctx.attention.x_shape), "EncoderLayer '",
                    m_name, "': gradients dy ", dy.shape(), " and dx ", dx.shape(),
                    " must have the output's shape ", s, " and the input's ", ctx.attention.x_shape);
    Tensor<T, Backend> dr2(s), dh(s), df(s);
    m_ln2.backward(ctx.ln2, dy, dr2, gm);
    if (const SiteModule<T, Backend>* m = m_sites.at(Site::ffn)) {
      // The module turns dL/d(its output) into dL/d(its input), and adds its share of dL/dh (dh_site), which
      // joins dh once the FFN has written it.
      Tensor<T, Backend> dout = clone_as(dr2.cview(), MemCategory::workspace),
                         dh_site = Tensor<T, Backend>::zeros(s);
      m->backward(ctx.ffn_site.get(), dout, dh_site, gm);
      m_drop2.backward(ctx.ffn_dropout, dout, df);
      m_ffn.backward(ctx.ffn, df, dh, gm);
      dh += dh_site;
    } else {
      m_drop2.backward(ctx.ffn_dropout, dr2, df);
      m_ffn.backward(ctx.ffn, df, dh, gm);
    }
    dh += dr2;  // the residual path
    m_ln1.backward(ctx.ln1, dh, dh, gm);
    Tensor<T, Backend> dx_site;
    if (const SiteModule<T, Backend>* m = m_sites.at(Site::attention)) {
      Tensor<T, Backend> dout = clone_as(dh.cview(), MemCategory::workspace);
      if (!dx.empty()) dx_site = Tensor<T, Backend>::zeros(dx.shape());
      m->backward(ctx.attention_site.get(), dout, dx_site, gm);
      m_drop1.backward(ctx.attention_dropout, dout, df);
    } else {
      m_drop1.backward(ctx.attention_dropout, dh, df);
    }
    m_attention.backward(ctx.attention, df, dx, gm);
    if (dx.data() == nullptr) return;
    if (!dx_site.empty()) dx += dx_site;
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
  SiteModules<T, Backend> m_sites;
  const PrefixKV<T, Backend>* m_prefix = nullptr;
};

LST_NAMESPACE_END
