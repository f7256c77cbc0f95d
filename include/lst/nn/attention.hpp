// SPDX-License-Identifier: MIT
/// @file attention.hpp
/// @brief Multi-head self-attention with a key-padding mask and a prefix key/value hook (Vaswani et al. 2017,
///        3.2; prefix tuning: Li & Liang 2021, 4.2).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "../backends/cpu/attention_rows.hpp"
#include "../backends/cpu/row_math.hpp"
#include "../core/threads.hpp"
#include "linear.hpp"
#include "packed_sequences.hpp"

LST_NAMESPACE_BEGIN

/// Extra key and value vectors prepended to every sequence's keys and values, the same for each batch
/// element: `Attn(x Wq, [P_k; x Wk], [P_v; x Wv])`. Prefix positions are never masked. When the gradient
/// views are non-empty, backward adds the prefix gradients (summed over the batch) into them.
template <class T, class Backend = Cpu>
struct PrefixKV {
  ConstView<T, Backend> key, value;             // (P, C)
  TensorView<T, Backend> key_grad, value_grad;  // (P, C) or empty
};

/// How each (batch, head) pair's attention is computed. `gemm`: score and output GEMMs over the whole head,
/// then the softmax row by row. `rowwise` (heads up to 16 wide): one query row at a time against the head's
/// keys and values transposed into a contiguous (D, Tk) buffer, over L1-resident data: two fused passes
/// forward, one backward (backends/cpu/attention_rows.hpp). For narrow heads (the LST side network's: D = 64
/// / r) a GEMM spends more time packing its operands than multiplying them; `automatic` takes `rowwise` up to
/// D = 16 and `gemm` above.
enum class AttentionKernel { automatic, gemm, rowwise };

template <class T, class Backend = Cpu>
class MultiHeadSelfAttention {
 public:
  /// Where each sequence's rows sit: in x, in q (and the heads and y), and in k and v. A padded (B, T) batch
  /// is B sequences of T rows each (of P + T in k and v, prefix first); packed sequences are their own.
  struct Layout {
    PackedSequences x, q, k;
    index_t prefix = 0;                  // P
    index_t q_stride = 0, k_stride = 0;  // the longest sequence's rows in q and k: a (bh) block's extents
  };
  struct Context {
    Tensor<T, Backend> x;      // (B, T, C) or packed (N, C) input, for the q/k/v weight gradients
    Tensor<T, Backend> q;      // (B, T, C) or packed (N, C); (B, queries, C) or (B queries, C)
    Tensor<T, Backend> k, v;   // (B, P+T, C), prefix rows first, or packed (N, C)
    Tensor<T, Backend> probs;  // (B, H, Tq, Tk) softmax output (longest rows); empty when backward recomputes
    Tensor<std::int32_t, Backend> mask;  // (B, T) copy of the padding mask, for recomputing or the row kernel
    Tensor<T, Backend> row_stats;  // (B, H, Tq, 2) each row's softmax max and 1 / sum (row-wise recompute)
    bool recompute = false;
    Layout layout;
    Tensor<T, Backend> heads;  // as q: concatenated head outputs, input of the output projection
    // Where backward adds the prefix gradients (copied out of the caller's PrefixKV, which need not outlive
    // the forward call); null when there is no prefix or its gradients are not wanted.
    T* prefix_key_grad = nullptr;
    T* prefix_value_grad = nullptr;
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
  /// Both kernels give the same function (to rounding); tests compare them.
  void set_kernel(AttentionKernel kernel) {
    LST_CHECK(kernel != AttentionKernel::rowwise || head_dim() <= rowwise_max_head_dim,
              "MultiHeadSelfAttention '", m_name, "': the row-wise kernel takes heads up to ",
              rowwise_max_head_dim, " wide; these are ", head_dim(), " wide (use gemm or automatic)");
    m_kernel = kernel;
  }
  /// Whether this layer's heads take the row-wise kernel.
  bool rowwise() const {
    return m_kernel == AttentionKernel::rowwise ||
           (m_kernel == AttentionKernel::automatic && head_dim() <= rowwise_max_head_dim);
  }
  static constexpr index_t rowwise_max_head_dim = cpu::attention_row_max_head_dim;

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
  /// mask (nn/packed_sequences.hpp); each sequence attends to its own rows. y is (N, C), or with `queries`
  /// (B queries, C). The rows equal the padded layer's real rows, to rounding. Not with a prefix.
  Context forward(ConstView<T, Backend> x, ConstView<std::int32_t, Backend> mask, TensorView<T, Backend> y,
                  Mode mode, const PrefixKV<T, Backend>* prefix = nullptr, index_t queries = 0,
                  const PackedSequences* packed = nullptr) const {
    const index_t C = m_dim, H = m_heads, D = C / H;
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
    if (mode == Mode::training) ctx.x = clone_as(x, MemCategory::activations);
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
    const index_t Sq = L.q_stride, Sk = L.k_stride;  // one (b, h) block's extents

    // All heads' probabilities when backward reads them; otherwise one head's at a time (inference never
    // holds a (B, H, T, T) tensor).
    const bool keep_probs = mode == Mode::training && !m_recompute;
    // (B, H) pairs are independent: they run in parallel, each thread with its own (Tq, Tk) buffer.
    const index_t workers = threads();
    const bool by_rows = rowwise();
    // Per-thread scratch: the gemm kernel's (Tq, Tk) score block, or the row-wise kernel's K^T, V^T and row.
    Tensor<T, Backend> probs(keep_probs ? Shape{B, H, Sq, Sk}
                             : by_rows  ? Shape{0}
                                        : Shape{workers, Sq, Sk},
                             cat),
        heads(q_shape, cat),
        scratch(by_rows ? Shape{workers, forward_scratch(D, Sk)} : Shape{0}, MemCategory::workspace),
        // What the row-wise backward needs to recompute a row's probabilities with one exp each.
        row_stats(by_rows && mode == Mode::training && !keep_probs ? Shape{B, H, Sq, 2} : Shape{0},
                  MemCategory::activations);
    const T scale = T(1) / std::sqrt(T(D));
    // Small problems stay on one thread: starting a parallel region costs more than they do, and far more
    // when a worker thread has to wait for a busy core.
    const bool parallel = B * H * Sq * Sk >= parallel_min_elements;
    LST_PARALLEL_FOR_UNEVEN_IF(parallel)  // packed sequences of unequal lengths
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      const std::int32_t* mrow = mask.data() ? mask.data() + b * Tx : nullptr;
      if (by_rows) {
        forward_rows(L, q, k, v, mrow, b, h, scale,
                     scratch.data() + index_t(thread_index()) * forward_scratch(D, Sk), heads,
                     keep_probs ? probs.data() + bh * Sq * Sk : nullptr,
                     row_stats.empty() ? nullptr : row_stats.data() + bh * Sq * 2);
        continue;
      }
      const index_t Tqb = L.q.length(b), Tkb = L.k.length(b);
      T* s = probs.data() + (keep_probs ? bh : index_t(thread_index())) * Sq * Sk;
      // S (Tq, Tk) = scale * Q_h (Tq, D) K_h^T (D, Tk); heads are column blocks of width D, leading dim C.
      gemm<T>(Trans::no, Trans::yes, scale, head(q, L.q, b, h), head(k, L.k, b, h), T(0),
              MatrixRef<T, Backend>(s, Tqb, Tkb));
      for (index_t i = 0; i < Tqb; ++i) cpu::masked_softmax_row(s + i * Tkb, Tkb, P, mrow);
      // O_h (Tq, D) = P (Tq, Tk) V_h (Tk, D)
      gemm<T>(Trans::no, Trans::no, T(1), MatrixRef<const T, Backend>(s, Tqb, Tkb), head(v, L.k, b, h), T(0),
              head(heads, L.q, b, h));
      // Computed, then cleared: the row-wise kernel's result, to rounding.
      for (index_t i = query_rows(mrow, L.x.length(b), Tqb); i < Tqb; ++i)
        std::fill_n(heads.data() + (L.q.first_row(b) + i) * C + h * D, D, T(0));
    }
    m_o.apply(heads, y);

    ctx.layout = std::move(L);  // also in inference: EncoderLayer reads where the query rows are
    if (mode == Mode::training) {
      ctx.q = std::move(q);
      ctx.k = std::move(k);
      ctx.v = std::move(v);
      if (keep_probs) ctx.probs = std::move(probs);
      ctx.recompute = !keep_probs;
      // The row-wise backward also reads it to find each sequence's live keys.
      if (mask.data() && (ctx.recompute || by_rows)) ctx.mask = clone_as(mask, MemCategory::activations);
      ctx.row_stats = std::move(row_stats);
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
    LST_CHECK_SHAPE(dx.empty() || dx.shape() == ctx.x.shape(), "MultiHeadSelfAttention '", m_name,
                    "': input gradient dx has shape ", dx.shape(), ", expected ", ctx.x.shape());
    const Layout& L = ctx.layout;
    const index_t B = L.x.count(), C = m_dim, H = m_heads, D = C / H, P = L.prefix;
    const index_t Sq = L.q_stride, Sk = L.k_stride;  // as in forward
    const T scale = T(1) / std::sqrt(T(D));

    Tensor<T, Backend> dheads(ctx.q.shape()), dq(ctx.q.shape()), dk(ctx.k.shape()), dv(ctx.k.shape());
    // (B, H) pairs run in parallel; each thread holds one head's score gradient (and probabilities, when
    // recomputed) at a time.
    const index_t workers = threads();
    const bool by_rows = rowwise();
    Tensor<T, Backend> ds_all(by_rows ? Shape{workers, backward_scratch(D, Sk, ctx.recompute)}
                                      : Shape{workers, Sq, Sk});
    Tensor<T, Backend> recomputed(ctx.recompute && !by_rows ? Shape{workers, Sq, Sk} : Shape{0});
    m_o.backward_from(ctx.heads, dy, dheads, gm);
    const bool parallel = B * H * Sq * Sk >= parallel_min_elements;  // as in forward
    LST_PARALLEL_FOR_UNEVEN_IF(parallel)                             // packed sequences of unequal lengths
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H, w = thread_index();
      if (by_rows) {
        backward_rows(ctx, dheads, b, h, scale, ds_all.data() + w * backward_scratch(D, Sk, ctx.recompute),
                      dq, dk, dv);
        continue;
      }
      const index_t Tqb = L.q.length(b), Tkb = L.k.length(b);
      const TensorView<T, Backend> ds(ds_all.data() + w * Sq * Sk, Shape{Tqb, Tkb});
      const T* p = nullptr;
      if (ctx.recompute) {  // the forward's scores and softmax again, bit for bit
        T* s = recomputed.data() + w * Sq * Sk;
        gemm<T>(Trans::no, Trans::yes, scale, head(ctx.q, L.q, b, h), head(ctx.k, L.k, b, h), T(0),
                MatrixRef<T, Backend>(s, Tqb, Tkb));
        const std::int32_t* mrow = ctx.mask.empty() ? nullptr : ctx.mask.data() + b * L.x.length(b);
        for (index_t i = 0; i < Tqb; ++i) cpu::masked_softmax_row(s + i * Tkb, Tkb, P, mrow);
        p = s;
      } else {
        p = ctx.probs.data() + (b * H + h) * Sq * Sk;
      }
      const MatrixRef<const T, Backend> pm(p, Tqb, Tkb);
      // dP (Tq, Tk) = dO_h V_h^T ; dV_h (Tk, D) = P^T dO_h
      gemm<T>(Trans::no, Trans::yes, T(1), head(dheads, L.q, b, h), head(ctx.v, L.k, b, h), T(0),
              MatrixRef<T, Backend>(ds));
      gemm<T>(Trans::yes, Trans::no, T(1), pm, head(dheads, L.q, b, h), T(0), head(dv, L.k, b, h));
      // Softmax backward, row by row: dS = P * (dP - sum_j dP_j P_j).
      for (index_t i = 0; i < Tqb; ++i) {
        T* d = ds.data() + i * Tkb;
        const T* pr = p + i * Tkb;
        T dot = 0;
        for (index_t j = 0; j < Tkb; ++j) dot += d[j] * pr[j];
        for (index_t j = 0; j < Tkb; ++j) d[j] = pr[j] * (d[j] - dot);
      }
      // dQ_h = scale * dS K_h ; dK_h = scale * dS^T Q_h
      gemm<T>(Trans::no, Trans::no, scale, MatrixRef<const T, Backend>(ds), head(ctx.k, L.k, b, h), T(0),
              head(dq, L.q, b, h));
      gemm<T>(Trans::yes, Trans::no, scale, MatrixRef<const T, Backend>(ds), head(ctx.q, L.q, b, h), T(0),
              head(dk, L.k, b, h));
    }

    for (index_t b = 0; b < B && P > 0; ++b) {
      if (ctx.prefix_key_grad) TensorView<T, Backend>(ctx.prefix_key_grad, Shape{P, C}) += dk[b].slice(0, P);
      if (ctx.prefix_value_grad)
        TensorView<T, Backend>(ctx.prefix_value_grad, Shape{P, C}) += dv[b].slice(0, P);
    }
    if (ctx.q.shape() !=
        ctx.x.shape()) {  // every position feeds k and v, which write dx; the query rows add theirs
      m_k.backward_from(ctx.x, dk, dx, gm);
      m_v.backward_from(ctx.x, dv, dx, gm, T(1));
      Tensor<T, Backend> dxq(dx.empty() ? Shape{0} : Shape{L.q.rows(), C});
      m_q.backward_from(first_rows(ctx.x.cview(), L.x, L.q), dq,
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
        m_k.backward_from(ctx.x[b], dk[b].slice(P, P + L.x.length(b)), dxb, gb, T(1));
        m_v.backward_from(ctx.x[b], dv[b].slice(P, P + L.x.length(b)), dxb, gb, T(1));
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

  /// Head h of sequence b in a tensor whose sequences sit as `rows` says: a (rows, D) matrix with leading
  /// dimension C.
  template <class Tensorish>
  MatrixRef<T, Backend> head(const Tensorish& t, const PackedSequences& rows, index_t b, index_t h) const {
    const index_t D = m_dim / m_heads;
    return MatrixRef<T, Backend>(t.data() + rows.first_row(b) * m_dim + h * D, rows.length(b), D, m_dim);
  }

  /// kt (D, Tp) = the first `live` keys of head h of the sequence whose rows start at `first` in t (.., C),
  /// transposed: key j's D values become column j; the columns past `live` (up to Tp =
  /// cpu::padded_keys(live)) are 0.
  template <class Tensorish>
  void transpose_head(const Tensorish& t, index_t first, index_t h, index_t live, T* kt) const {
    const index_t C = m_dim, D = C / m_heads, Tp = cpu::padded_keys<T>(live);
    LST_CHECK(D <= cpu::attention_row_max_head_dim, "attention '", m_name, "': heads of ", D,
              " values are wider than the row kernels take");
    const T* src = t.data() + first * C + h * D;
    cpu::with_head_dim(D, [&](auto width) {  // key by key: D contiguous reads, D unrolled writes
      constexpr int Dc = decltype(width)::value;
      for (index_t j = 0; j < live; ++j)
        for (int d = 0; d < Dc; ++d) kt[d * Tp + j] = src[j * C + d];
    });
    for (index_t d = 0; d < D; ++d) std::fill(kt + d * Tp + live, kt + (d + 1) * Tp, T(0));
  }

  /// bias (Tp) = 0 for prefix keys and real tokens, -inf for padding (mask row of length Tk - P, or null) and
  /// for the columns past Tk: the mask and the packet padding cost no pass of their own.
  static void key_bias(const std::int32_t* mask, index_t Tk, index_t P, T* bias) {
    constexpr T hidden = -std::numeric_limits<T>::infinity();
    const index_t Tp = cpu::padded_keys<T>(Tk);
    for (index_t j = 0; j < Tk; ++j) bias[j] = (j < P || !mask || mask[j - P] != 0) ? T(0) : hidden;
    std::fill(bias + Tk, bias + Tp, hidden);
  }

  /// The keys that any query of a sequence can see: the prefix and the tokens up to the last real one (all of
  /// them without a mask). The row-wise kernels stop there: the keys after it have probability 0 in every
  /// row, so leaving them out changes no sum and no bit (Tk = 128 padded for sequences of 50 tokens did 2.5x
  /// the work).
  static index_t live_keys(const std::int32_t* mask_row, index_t Tq, index_t P) {
    index_t last = Tq;
    while (mask_row && last > 0 && mask_row[last - 1] == 0) --last;
    return P + last;
  }
  /// The query rows that are computed, of Tq asked by a sequence of Tx positions: all of them, or with
  /// skipping those up to the last real token.
  index_t query_rows(const std::int32_t* mask_row, index_t Tx, index_t Tq) const {
    return std::min(Tq, m_skip_padded_queries ? live_keys(mask_row, Tx, 0) : Tx);
  }

  /// Per-thread scratch of the row-wise kernel, in values (Tp = Tk padded to whole packets): forward K^T, V^T
  /// (D rows of Tp each), the key bias (Tp) and the exps of up to cpu::attention_max_rows_per_call rows;
  /// backward K^T, V^T, dK^T, dV^T (D rows each), the kept probabilities of up to
  /// cpu::attention_max_rows_per_call rows (none when they are recomputed), and the key bias. Rounded up to
  /// whole 64-byte lines: two threads' scratch never shares a cache line (false sharing on values written
  /// every row made the second thread nearly useless).
  static index_t forward_scratch(index_t D, index_t Tk) {
    return whole_lines((2 * D + 1 + cpu::attention_max_rows_per_call) * cpu::padded_keys<T>(Tk));
  }
  static index_t backward_scratch(index_t D, index_t Tk, bool recompute) {
    return whole_lines((4 * D + kept_rows(recompute) + 1) * cpu::padded_keys<T>(Tk));
  }
  /// Rows of kept probabilities in the backward scratch.
  static index_t kept_rows(bool recompute) { return recompute ? 0 : cpu::attention_max_rows_per_call; }
  static index_t whole_lines(index_t n) {
    constexpr index_t per_line = index_t(64 / sizeof(T));
    return (n + per_line - 1) / per_line * per_line;
  }

  /// Forward of the row-wise kernel for head h of sequence b: that head's columns of `heads` (laid out as q);
  /// `probs` (Tq, Tk) gets the probabilities when training keeps them (else null), `stats` (Tq, 2) each row's
  /// max and 1 / sum when backward recomputes them (else null), Tq and Tk the sequence's own. `work` holds
  /// forward_scratch(D, Tk) values. Only the live keys are visited (live_keys) and only the live query rows
  /// computed (query_rows); the others get 0 everywhere.
  void forward_rows(const Layout& L, const Tensor<T, Backend>& q, const Tensor<T, Backend>& k,
                    const Tensor<T, Backend>& v, const std::int32_t* mask_row, index_t b, index_t h, T scale,
                    T* work, Tensor<T, Backend>& heads, T* probs, T* stats) const {
    const index_t Tq = L.q.length(b), Tk = L.k.length(b), P = L.prefix, Tx = Tk - P, C = m_dim,
                  D = C / m_heads, q0 = L.q.first_row(b);
    const index_t keys = live_keys(mask_row, Tx, P), rows = query_rows(mask_row, Tx, Tq);
    const index_t Tp = cpu::padded_keys<T>(keys);
    T *kt = work, *vt = kt + D * Tp, *bias = vt + D * Tp, *e = bias + Tp;
    transpose_head(k, L.k.first_row(b), h, keys, kt);
    transpose_head(v, L.k.first_row(b), h, keys, vt);
    key_bias(mask_row, keys, P, bias);
    cpu::with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      // Rows i .. i + N - 1 in one call: they share each load of K^T and V^T.
      const auto rows_from = [&](index_t i, auto count) {
        constexpr int N = decltype(count)::value;
        const T* qi = q.data() + (q0 + i) * C + h * D;
        T* o = heads.data() + (q0 + i) * C + h * D;
        cpu::SoftmaxRowStats<T> st[N];
        if (probs)  // the exps become the kept probabilities below
          cpu::attention_rows_forward<T, Dc, N, true>(qi, o, C, scale, kt, vt, bias, Tp, e, st);
        else
          cpu::attention_rows_forward<T, Dc, N, false>(qi, o, C, scale, kt, vt, bias, Tp, e, st);
        for (int r = 0; r < N; ++r) {
          if (stats) {
            stats[2 * (i + r)] = st[r].max;
            stats[2 * (i + r) + 1] = st[r].inv_sum;
          }
          // The same product backward's recomputation takes: kept and recomputed rows are equal bit for bit.
          if (probs) {
            for (index_t j = 0; j < keys; ++j) probs[(i + r) * Tk + j] = e[r * Tp + j] * st[r].inv_sum;
            std::fill(probs + (i + r) * Tk + keys, probs + (i + r + 1) * Tk, T(0));
          }
        }
      };
      cpu::for_row_blocks<cpu::attention_rows_per_call<Dc>>(rows, rows_from);
    });
    for (index_t i = rows; i < Tq; ++i) {
      std::fill_n(heads.data() + (q0 + i) * C + h * D, D, T(0));
      if (stats) stats[2 * i] = stats[2 * i + 1] = T(0);
      if (probs) std::fill_n(probs + i * Tk, Tk, T(0));
    }
  }

  /// Backward of the row-wise kernel for head h of sequence b: dq, dk, dv (laid out as q and k) get that
  /// head's columns. `work` holds backward_scratch(D, Tk, ctx.recompute) values.
  void backward_rows(const Context& ctx, const Tensor<T, Backend>& dheads, index_t b, index_t h, T scale,
                     T* work, Tensor<T, Backend>& dq, Tensor<T, Backend>& dk, Tensor<T, Backend>& dv) const {
    const Layout& L = ctx.layout;
    const index_t Tq = L.q.length(b), Tx = L.x.length(b), Tk = L.k.length(b), P = L.prefix, C = m_dim,
                  H = m_heads, D = C / H, q0 = L.q.first_row(b), k0 = L.k.first_row(b);
    const std::int32_t* mask_row = ctx.mask.empty() ? nullptr : ctx.mask.data() + b * Tx;
    const index_t keys = live_keys(mask_row, Tx, P), rows = query_rows(mask_row, Tx, Tq);  // as in forward
    const index_t Tp = cpu::padded_keys<T>(keys);
    const index_t R_kept = kept_rows(ctx.recompute);
    T *kt = work, *vt = kt + D * Tp, *dkt = vt + D * Tp, *dvt = dkt + D * Tp, *p = dvt + D * Tp,
      *bias = p + R_kept * Tp;
    transpose_head(ctx.k, k0, h, keys, kt);
    transpose_head(ctx.v, k0, h, keys, vt);
    std::fill(dkt, dkt + 2 * D * Tp, T(0));
    if (ctx.recompute)
      key_bias(mask_row, keys, P, bias);
    else
      std::fill(p, p + R_kept * Tp, T(0));  // the kept rows are copied in front of these zeros
    cpu::with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      // Rows i .. i + N - 1 in one call: they share each load and store of dK^T and dV^T.
      const auto rows_from = [&](index_t i, auto count) {
        constexpr int N = decltype(count)::value;
        const index_t first = (b * H + h) * L.q_stride + i;  // the rows' index in (B, H, Tq)
        const index_t at = (q0 + i) * C + h * D;
        const T *q = ctx.q.data() + at, *go = dheads.data() + at, *o = ctx.heads.data() + at;  // dO, O rows
        T* gq = dq.data() + at;
        T delta[N];  // go . o: the softmax backward's sum_j p_j dP_j
        for (int r = 0; r < N; ++r) delta[r] = cpu::attention_row_delta<T, Dc>(go + r * C, o + r * C);
        cpu::SoftmaxRowStats<T> stats[N] = {};  // used only when recomputing
        if (ctx.recompute) {
          for (int r = 0; r < N; ++r)
            stats[r] = {ctx.row_stats.data()[2 * (first + r)], ctx.row_stats.data()[2 * (first + r) + 1]};
          cpu::attention_rows_backward<T, Dc, N, true>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, delta,
                                                       nullptr, dkt, dvt);
        } else {
          const T* kept = ctx.probs.data() + (b * H + h) * L.q_stride * L.k_stride;
          for (int r = 0; r < N; ++r) std::copy_n(kept + (i + r) * Tk, keys, p + r * Tp);
          cpu::attention_rows_backward<T, Dc, N, false>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, delta,
                                                        p, dkt, dvt);
        }
      };
      cpu::for_row_blocks<cpu::attention_rows_per_call<Dc>>(rows, rows_from);
    });
    for (index_t i = rows; i < Tq; ++i) std::fill_n(dq.data() + (q0 + i) * C + h * D, D, T(0));
    T* gk = dk.data() + k0 * C + h * D;
    T* gv = dv.data() + k0 * C + h * D;
    cpu::with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      for (index_t j = 0; j < keys; ++j)
        for (int d = 0; d < Dc; ++d) {
          gk[j * C + d] = dkt[d * Tp + j];
          gv[j * C + d] = dvt[d * Tp + j];
        }
    });
    for (index_t j = keys; j < Tk; ++j) {  // a hidden key gets no gradient
      std::fill_n(gk + j * C, D, T(0));
      std::fill_n(gv + j * C, D, T(0));
    }
  }

  std::string m_name;
  index_t m_dim, m_heads;
  Linear<T, Backend> m_q, m_k, m_v, m_o;
  bool m_recompute = false;
  bool m_skip_padded_queries = false;
  AttentionKernel m_kernel = AttentionKernel::automatic;
};

LST_NAMESPACE_END
