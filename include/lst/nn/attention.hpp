// SPDX-License-Identifier: MIT
/// @file attention.hpp
/// @brief Multi-head self-attention with a key-padding mask, a prefix key/value hook and attention dropout
///        (Vaswani et al. 2017, 3.2; prefix tuning: Li & Liang 2021, 4.2).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "../core/packed_sequences.hpp"
#include "../core/random.hpp"
#include "../ops/attention.hpp"
#include "../ops/packed_rows.hpp"
#include "linear.hpp"

LST_NAMESPACE_BEGIN

/// Extra key and value vectors prepended to every sequence's keys and values, the same for each batch
/// element: `Attn(x Wq, [P_k; x Wk], [P_v; x Wv])`. Prefix positions are never masked. When the gradient
/// views are non-empty, backward adds the prefix gradients (summed over the batch) into them.
template <class T, class Backend = Cpu>
struct PrefixKV {
  ConstView<T, Backend> key, value;             // (P, C)
  TensorView<T, Backend> key_grad, value_grad;  // (P, C) or empty
};

template <class T, class Backend = Cpu>
class MultiHeadSelfAttention {
 public:
  using Layout = AttentionLayout;
  /// What backward reads; AttentionSaved holds the probabilities kept (or what recomputes them).
  struct Context : AttentionSaved<T, Backend> {
    Tensor<T, Backend> x;                // (B, T, C) or packed (N, C) input, for the q/k/v weight gradients
                                         // (kept only when one of them trains)
    Shape x_shape;                       // x's shape, kept or not
    Tensor<T, Backend> q;                // (B, T, C) or packed (N, C); (B, queries, C) or (B queries, C)
    Tensor<T, Backend> k, v;             // (B, P+T, C), prefix rows first, or packed (N, C)
    Tensor<std::int32_t, Backend> mask;  // (B, T) copy of the padding mask, for recomputing or the row kernel
    Layout layout;
    Tensor<T, Backend> heads;  // as q: concatenated head outputs, input of the output projection
    // Where backward adds the prefix gradients (copied out of the caller's PrefixKV, which need not outlive
    // the forward call); null when there is no prefix or its gradients are not wanted.
    T* prefix_key_grad = nullptr;
    T* prefix_value_grad = nullptr;
    // The forward's attention dropout (0 in inference or without it) and its mask's stream: backward draws
    // the same mask again.
    double dropout = 0;
    std::uint64_t dropout_key = 0;
  };

  MultiHeadSelfAttention(ParameterArena<T, Backend>& arena, const std::string& name, index_t dim,
                         index_t heads, bool bias = true)
      : m_name(name),
        m_dim(dim),
        m_heads(checked_heads(name, dim, heads)),  // before the projections register their parameters
        m_q(arena, name + ".query", dim, dim, bias),
        m_k(arena, name + ".key", dim, dim, bias),
        m_v(arena, name + ".value", dim, dim, bias),
        m_o(arena, name + ".output", dim, dim, bias) {}
  const Linear<T, Backend>& query() const { return m_q; }
  const Linear<T, Backend>& key() const { return m_k; }
  const Linear<T, Backend>& value() const { return m_v; }
  const Linear<T, Backend>& output() const { return m_o; }
  index_t heads() const { return m_heads; }
  index_t head_dim() const { return m_dim / m_heads; }
  /// Training mode keeps the (B, H, T, T) attention probabilities for backward by default. With recomputation
  /// it keeps only the (B, T) mask and recomputes each head's probabilities from the saved q and k in
  /// backward: one extra QK^T GEMM per head, and the largest activation of a layer is gone (the LST side
  /// network's choice: its attention maps would otherwise be as large as the backbone's).
  void set_recompute_probabilities(bool on) { m_recompute = on; }
  bool recomputes_probabilities() const { return m_recompute; }
  /// With skipping, the query rows after a sequence's last real token (as the mask says) are not computed:
  /// their heads and their query gradients are 0 (so their output is the output projection's bias). The rows
  /// of real tokens, the loss and every gradient are unchanged, bit for bit, for a caller that never reads
  /// padded positions (their output gradient is then 0, and a padded key is hidden from every real query, so
  /// a padded row's value reaches nothing), such as a padded model that pools real tokens only. (The LST side
  /// network goes further and packs its sequences: no padded row at all.) Off by default: Hugging Face
  /// computes padded rows.
  void set_skip_padded_queries(bool on) { m_skip_padded_queries = on; }
  bool skips_padded_queries() const { return m_skip_padded_queries; }
  /// Attention dropout (Hugging Face's attention_probs_dropout_prob): in training, each attention probability
  /// is dropped with probability p after the softmax and the kept ones scaled by 1 / (1 - p); inference
  /// drops nothing. The mask of the forward at training step `step` is drawn from stream_key(seed, step)
  /// (core/random.hpp) at the indices AttentionLayout::dropout_index gives (a packed or first-rows layer
  /// drops what the padded whole layer drops), and drawn again in backward: nothing is stored. Give each
  /// layer its own seed. p = 0 (the default): none, and the layer computes exactly what it does without.
  void set_dropout(double p, std::uint64_t seed) {
    LST_CHECK(p >= 0.0 && p < 1.0, "MultiHeadSelfAttention '", m_name, "': attention dropout probability ", p,
              " is outside [0, 1)");
    m_dropout = p;
    m_dropout_seed = seed;
  }
  double dropout() const { return m_dropout; }
  /// Both kernels give the same function (to rounding); tests compare them.
  void set_kernel(AttentionKernel kernel) {
    LST_CHECK(kernel != AttentionKernel::rowwise || head_dim() <= rowwise_max_head_dim,
              "MultiHeadSelfAttention '", m_name, "': the row-wise kernel takes heads up to ",
              rowwise_max_head_dim, " wide; these are ", head_dim(), " wide (use gemm or automatic)");
    m_kernel = kernel;
  }
  /// Whether this layer's heads take the row-wise kernel.
  bool rowwise() const { return attention_rowwise<Backend>(m_kernel, head_dim()); }
  static constexpr index_t rowwise_max_head_dim = ops::Attention<Backend>::rowwise_max_head_dim;

  /// y (B, T, C) = attention over x (B, T, C). `mask` (B, T): 1 for a real token, 0 for padding (Hugging
  /// Face's attention_mask), or an empty view for none. A padded key gets exactly zero probability; a query
  /// whose every key is masked attends to nothing (a zero output row) instead of producing NaN.
  ///
  /// `queries` > 0: only the first `queries` positions of each sequence ask, and y is (B, queries, C); every
  /// position is still a key and a value. Its rows are the whole layer's first rows (to rounding): a caller
  /// that reads only [CLS] from a layer's output pays for one query row in T (the LST side network's last
  /// block). Not with a prefix.
  ///
  /// `packed`: x is (N, C), the real tokens of `packed`'s sequences one after another, with no padding and no
  /// mask (core/packed_sequences.hpp); each sequence attends to its own rows. y is (N, C), or with `queries`
  /// (B queries, C). The rows equal the padded layer's real rows, to rounding. Not with a prefix.
  ///
  /// `step`: the training step, whose attention dropout mask (set_dropout) a training forward draws.
  Context forward(ConstView<T, Backend> x, ConstView<std::int32_t, Backend> mask, TensorView<T, Backend> y,
                  Mode mode, const PrefixKV<T, Backend>* prefix = nullptr, index_t queries = 0,
                  const PackedSequences* packed = nullptr, std::uint64_t step = 0) const {
    const index_t C = m_dim;
    if (packed)
      LST_CHECK_SHAPE(x.shape() == (Shape{packed->rows(), m_dim}) && mask.data() == nullptr && !prefix,
                      "MultiHeadSelfAttention '", m_name, "': packed input x has shape ", x.shape(),
                      ", expected (", packed->rows(), ", ", m_dim, ") for ", packed->count(),
                      " packed sequences, with no mask and no prefix");
    else
      LST_CHECK_SHAPE(x.rank() == 3 && x.dim(2) == m_dim, "MultiHeadSelfAttention '", m_name,
                      "': input x has shape ", x.shape(), ", expected (B, T, ", m_dim, ")");
    const index_t B = packed ? packed->count() : x.dim(0), Tx = packed ? 0 : x.dim(1);
    if (!packed)
      LST_CHECK(queries >= 0 && queries <= Tx && (queries == 0 || queries == Tx || !prefix),
                "MultiHeadSelfAttention '", m_name, "': ", queries, " query rows of ", Tx, " positions",
                prefix ? " (with a prefix every position asks)" : "");
    const index_t Tq = queries > 0 ? queries : Tx;
    const bool all_ask = packed ? queries == 0 : Tq == Tx;
    const Shape q_shape = packed ? Shape{all_ask ? packed->rows() : B * queries, C} : Shape{B, Tq, C};
    LST_CHECK_SHAPE(y.shape() == q_shape, "MultiHeadSelfAttention '", m_name, "': output y has shape ",
                    y.shape(), ", expected ", q_shape, " for input x of shape ", x.shape(),
                    all_ask ? "" : " and its first rows only");
    LST_CHECK_SHAPE(mask.data() == nullptr || mask.shape() == (Shape{B, Tx}), "MultiHeadSelfAttention '",
                    m_name, "': mask has shape ", mask.shape(), ", expected (", B, ", ", Tx,
                    ") for input x of shape ", x.shape());
    const index_t P = prefix ? prefix->key.dim(0) : 0, Tk = P + Tx;
    if (prefix)
      LST_CHECK_SHAPE(prefix->key.shape() == (Shape{P, C}) && prefix->value.shape() == (Shape{P, C}),
                      "MultiHeadSelfAttention '", m_name, "': prefix key ", prefix->key.shape(),
                      " and value ", prefix->value.shape(), " must both be (P, ", C, ")");

    if (prefix)
      LST_CHECK_SHAPE((prefix->key_grad.empty() || prefix->key_grad.shape() == prefix->key.shape()) &&
                          (prefix->value_grad.empty() || prefix->value_grad.shape() == prefix->value.shape()),
                      "MultiHeadSelfAttention '", m_name, "': prefix gradients ", prefix->key_grad.shape(),
                      " and ", prefix->value_grad.shape(), " must be empty or (", P, ", ", C, ")");
    Layout L;
    if (packed) {
      L.x = L.k = *packed;
      L.q = all_ask ? *packed : packed->first_rows(queries);
    } else {
      L.x = PackedSequences::whole(B, Tx);
      L.k = PackedSequences::whole(B, Tk);
      L.q = L.x.first_rows(Tq);  // at their positions in the (B, T) batch, for dropout after the layer
    }
    L.prefix = P;
    L.q_stride = L.q.longest();
    L.k_stride = L.k.longest();
    const Shape k_shape = packed ? Shape{packed->rows(), C} : Shape{B, Tk, C};
    Context ctx;
    // Saved first: y may be x itself, overwritten by the output projection below.
    ctx.x_shape = x.shape();
    if (mode == Mode::training && (m_q.keeps_input() || m_k.keeps_input() || m_v.keeps_input()))
      ctx.x = clone_as(x, MemCategory::activations);
    const MemCategory cat = mode == Mode::training ? MemCategory::activations : MemCategory::workspace;
    Tensor<T, Backend> q(q_shape, cat), k(k_shape, cat), v(k_shape, cat);
    if (all_ask)
      m_q.apply(x, q);
    else
      m_q.apply(first_rows(x, L.x, L.q), q);
    if (P == 0) {
      m_k.apply(x, k);
      m_v.apply(x, v);
    } else {
      for (index_t b = 0; b < B; ++b) {
        k[b].slice(0, P).assign(prefix->key);
        v[b].slice(0, P).assign(prefix->value);
        m_k.apply(x[b], k[b].slice(P, Tk));
        m_v.apply(x[b], v[b].slice(P, Tk));
      }
    }
    Tensor<T, Backend> heads(q_shape, cat);
    AttentionSettings s = settings(mode);
    if (mode == Mode::training && m_dropout > 0.0) {
      ctx.dropout = s.dropout = m_dropout;
      ctx.dropout_key = s.dropout_key = stream_key(m_dropout_seed, step);
    }
    attention_forward<T, Backend>(L, s, q, k, v, mask.data(), heads, mode == Mode::training ? &ctx : nullptr);
    m_o.apply(heads, y);

    ctx.layout = std::move(L);  // also in inference: EncoderLayer reads where the query rows are
    if (mode == Mode::training) {
      ctx.q = std::move(q);
      ctx.k = std::move(k);
      ctx.v = std::move(v);
      // The row-wise backward also reads it to find each sequence's live keys.
      if (mask.data() && (ctx.recompute || rowwise())) ctx.mask = clone_as(mask, MemCategory::activations);
      ctx.heads = std::move(heads);
      if (prefix) {
        ctx.prefix_key_grad = prefix->key_grad.data();
        ctx.prefix_value_grad = prefix->value_grad.data();
      }
    }
    return ctx;
  }

  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx, GradMode gm) const {
    LST_CHECK(!ctx.heads.empty(), "MultiHeadSelfAttention '", m_name,
              "': backward needs a context from a training-mode forward");
    LST_CHECK_SHAPE(dy.shape() == ctx.q.shape(), "MultiHeadSelfAttention '", m_name,
                    "': output gradient dy has shape ", dy.shape(), ", expected the output's ",
                    ctx.q.shape());
    LST_CHECK_SHAPE(dx.empty() || dx.shape() == ctx.x_shape, "MultiHeadSelfAttention '", m_name,
                    "': input gradient dx has shape ", dx.shape(), ", expected ", ctx.x_shape);
    const Layout& L = ctx.layout;
    const index_t B = L.x.count(), C = m_dim, P = L.prefix;
    Tensor<T, Backend> dheads(ctx.q.shape()), dq(ctx.q.shape()), dk(ctx.k.shape()), dv(ctx.k.shape());
    m_o.backward_from(ctx.heads, dy, dheads, gm);
    AttentionSettings s = settings(Mode::training);
    s.dropout = ctx.dropout;  // the forward's mask, drawn again
    s.dropout_key = ctx.dropout_key;
    attention_backward<T, Backend>(L, s, ctx.q, ctx.k, ctx.v, ctx.heads,
                                   ctx.mask.empty() ? nullptr : ctx.mask.data(), ctx, dheads, dq, dk, dv);

    for (index_t b = 0; b < B && P > 0; ++b) {
      if (ctx.prefix_key_grad) TensorView<T, Backend>(ctx.prefix_key_grad, Shape{P, C}) += dk[b].slice(0, P);
      if (ctx.prefix_value_grad)
        TensorView<T, Backend>(ctx.prefix_value_grad, Shape{P, C}) += dv[b].slice(0, P);
    }
    if (ctx.q.shape() !=
        ctx.x_shape) {  // every position feeds k and v, which write dx; the query rows add theirs
      m_k.backward_from(ctx.x, dk, dx, gm);
      m_v.backward_from(ctx.x, dv, dx, gm, T(1));
      Tensor<T, Backend> dxq(dx.empty() ? Shape{0} : Shape{L.q.rows(), C});
      m_q.backward_from(ctx.x.empty() ? Tensor<T, Backend>() : first_rows(ctx.x.cview(), L.x, L.q), dq,
                        dx.empty() ? TensorView<T, Backend>() : TensorView<T, Backend>(dxq), gm);
      if (!dx.empty()) add_first_rows(L.q, L.x, C, dxq.data(), dx.data());
      return;
    }
    // x feeds q, k and v: the first writes dx, the other two add into it (dx_beta = 1).
    m_q.backward_from(ctx.x, dq, dx, gm);
    if (P == 0) {
      m_k.backward_from(ctx.x, dk, dx, gm, T(1));
      m_v.backward_from(ctx.x, dv, dx, gm, T(1));
    } else {
      for (index_t b = 0; b < B; ++b) {
        const GradMode gb = (gm == GradMode::overwrite && b > 0) ? GradMode::accumulate : gm;
        const TensorView<T, Backend> dxb = dx.data() ? dx[b] : TensorView<T, Backend>();
        const ConstView<T, Backend> xb = ctx.x.empty() ? ConstView<T, Backend>() : ctx.x[b];
        m_k.backward_from(xb, dk[b].slice(P, P + L.x.length(b)), dxb, gb, T(1));
        m_v.backward_from(xb, dv[b].slice(P, P + L.x.length(b)), dxb, gb, T(1));
      }
    }
  }

 private:
  static index_t checked_heads(const std::string& name, index_t dim, index_t heads) {
    LST_CHECK(heads > 0 && dim % heads == 0, "MultiHeadSelfAttention '", name, "': width ", dim,
              " is not divisible by ", heads, " heads");
    return heads;
  }

  /// The query rows of x: each sequence's first rows (as many as `q` gives it), packed as `q` lays them out.
  static Tensor<T, Backend> first_rows(ConstView<T, Backend> x, const PackedSequences& from,
                                       const PackedSequences& q) {
    const index_t C = x.shape().cols();
    Tensor<T, Backend> out(Shape{q.rows(), C}, MemCategory::workspace);
    copy_first_rows(from, q, C, x.data(), out.data());
    return out;
  }

  AttentionSettings settings(Mode mode) const {
    AttentionSettings s;
    s.heads = m_heads;
    s.kernel = m_kernel;
    s.keep_probabilities = mode == Mode::training && !m_recompute;
    s.skip_padded_queries = m_skip_padded_queries;
    return s;
  }

  std::string m_name;
  index_t m_dim, m_heads;
  Linear<T, Backend> m_q, m_k, m_v, m_o;
  bool m_recompute = false;
  bool m_skip_padded_queries = false;
  AttentionKernel m_kernel = AttentionKernel::automatic;
  double m_dropout = 0;
  std::uint64_t m_dropout_seed = 0;
};

LST_NAMESPACE_END
