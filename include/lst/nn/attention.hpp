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
/// keys and values transposed into a contiguous (D, Tk) buffer, in two fused passes over L1-resident data
/// (backends/cpu/attention_rows.hpp). For narrow heads (the LST side network's: D = 64 / r) a GEMM spends
/// more time packing its operands than multiplying them; `automatic` takes `rowwise` up to D = 16 and `gemm`
/// above.
enum class AttentionKernel { automatic, gemm, rowwise };

template <class T, class Backend = Cpu>
class MultiHeadSelfAttention {
 public:
  struct Context {
    Tensor<T, Backend> x;                // (B, T, C) input, for the q/k/v weight gradients
    Tensor<T, Backend> q;                // (B, T, C)
    Tensor<T, Backend> k, v;             // (B, P+T, C), prefix rows first
    Tensor<T, Backend> probs;            // (B, H, T, P+T) softmax output; empty when backward recomputes it
    Tensor<std::int32_t, Backend> mask;  // (B, T) copy of the padding mask, for recomputing or the row kernel
    Tensor<T, Backend> row_stats;  // (B, H, T, 2) each row's softmax max and 1 / sum (row-wise recompute)
    bool recompute = false;
    Tensor<T, Backend> heads;  // (B, T, C) concatenated head outputs, input of the output projection
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
  /// a padded row's value reaches nothing). The LST side network is such a caller: it pools real tokens only.
  /// Off by default: Hugging Face computes padded rows.
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
  Context forward(ConstView<T, Backend> x, ConstView<std::int32_t, Backend> mask, TensorView<T, Backend> y,
                  Mode mode, const PrefixKV<T, Backend>* prefix = nullptr, index_t queries = 0) const {
    LST_CHECK_SHAPE(x.rank() == 3 && x.dim(2) == m_dim, "MultiHeadSelfAttention '", m_name,
                    "': input x has shape ", x.shape(), ", expected (B, T, ", m_dim, ")");
    const index_t B = x.dim(0), Tx = x.dim(1), C = m_dim, H = m_heads, D = C / H;
    LST_CHECK(queries >= 0 && queries <= Tx && (queries == 0 || queries == Tx || !prefix),
              "MultiHeadSelfAttention '", m_name, "': ", queries, " query rows of ", Tx, " positions",
              prefix ? " (with a prefix every position asks)" : "");
    const index_t Tq = queries > 0 ? queries : Tx;
    LST_CHECK_SHAPE(y.shape() == (Shape{B, Tq, C}), "MultiHeadSelfAttention '", m_name,
                    "': output y has shape ", y.shape(), ", expected (", B, ", ", Tq, ", ", C,
                    ") for input x of shape ", x.shape(), Tq < Tx ? " and its first rows only" : "");
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
    Context ctx;
    // Saved first: y may be x itself, overwritten by the output projection below.
    if (mode == Mode::training) ctx.x = clone_as(x, MemCategory::activations);
    const MemCategory cat = mode == Mode::training ? MemCategory::activations : MemCategory::workspace;
    Tensor<T, Backend> q(Shape{B, Tq, C}, cat), k(Shape{B, Tk, C}, cat), v(Shape{B, Tk, C}, cat);
    if (Tq == Tx)
      m_q.apply(x, q);
    else
      m_q.apply(first_rows(x, Tq), q);
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

    // All heads' probabilities when backward reads them; otherwise one head's at a time (inference never
    // holds a (B, H, T, T) tensor).
    const bool keep_probs = mode == Mode::training && !m_recompute;
    // (B, H) pairs are independent: they run in parallel, each thread with its own (Tq, Tk) buffer.
    const index_t workers = threads();
    const bool by_rows = rowwise();
    // Per-thread scratch: the gemm kernel's (Tq, Tk) score block, or the row-wise kernel's K^T, V^T and row.
    Tensor<T, Backend> probs(keep_probs ? Shape{B, H, Tq, Tk}
                             : by_rows  ? Shape{0}
                                        : Shape{workers, Tq, Tk},
                             cat),
        heads(Shape{B, Tq, C}, cat),
        scratch(by_rows ? Shape{workers, forward_scratch(D, Tk)} : Shape{0}, MemCategory::workspace),
        // What the row-wise backward needs to recompute a row's probabilities with one exp each.
        row_stats(by_rows && mode == Mode::training && !keep_probs ? Shape{B, H, Tq, 2} : Shape{0},
                  MemCategory::activations);
    const T scale = T(1) / std::sqrt(T(D));
    // Small problems stay on one thread: starting a parallel region costs more than they do, and far more
    // when a worker thread has to wait for a busy core.
    const bool parallel = B * H * Tq * Tk >= parallel_min_elements;
    LST_PARALLEL_FOR_IF(parallel)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      const std::int32_t* mrow = mask.data() ? mask.data() + b * Tx : nullptr;
      if (by_rows) {
        forward_rows(q, k, v, mrow, P, b, h, scale,
                     scratch.data() + index_t(thread_index()) * forward_scratch(D, Tk), heads,
                     keep_probs ? probs.data() + bh * Tq * Tk : nullptr,
                     row_stats.empty() ? nullptr : row_stats.data() + bh * Tq * 2);
        continue;
      }
      T* s = probs.data() + (keep_probs ? bh : index_t(thread_index())) * Tq * Tk;
      // S (T, Tk) = scale * Q_h (T, D) K_h^T (D, Tk); heads are column blocks of width D, leading dim C.
      gemm<T>(Trans::no, Trans::yes, scale, head(q, b, h, Tq), head(k, b, h, Tk), T(0),
              MatrixRef<T, Backend>(s, Tq, Tk));
      for (index_t i = 0; i < Tq; ++i) cpu::masked_softmax_row(s + i * Tk, Tk, P, mrow);
      // O_h (T, D) = P (T, Tk) V_h (Tk, D)
      gemm<T>(Trans::no, Trans::no, T(1), MatrixRef<const T, Backend>(s, Tq, Tk), head(v, b, h, Tk), T(0),
              head(heads, b, h, Tq));
      // Computed, then cleared: the row-wise kernel's result, to rounding.
      for (index_t i = query_rows(mrow, Tx, Tq); i < Tq; ++i)
        std::fill_n(heads.data() + (b * Tq + i) * C + h * D, D, T(0));
    }
    m_o.apply(heads, y);

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
    const index_t B = ctx.x.dim(0), Tx = ctx.x.dim(1), Tq = ctx.q.dim(1), C = m_dim, H = m_heads, D = C / H;
    const index_t Tk = ctx.k.dim(1), P = Tk - Tx;
    const T scale = T(1) / std::sqrt(T(D));

    Tensor<T, Backend> dheads(Shape{B, Tq, C}), dq(Shape{B, Tq, C}), dk(Shape{B, Tk, C}), dv(Shape{B, Tk, C});
    // (B, H) pairs run in parallel; each thread holds one head's score gradient (and probabilities, when
    // recomputed) at a time.
    const index_t workers = threads();
    const bool by_rows = rowwise();
    Tensor<T, Backend> ds_all(by_rows ? Shape{workers, backward_scratch(D, Tk)} : Shape{workers, Tq, Tk});
    Tensor<T, Backend> recomputed(ctx.recompute && !by_rows ? Shape{workers, Tq, Tk} : Shape{0});
    m_o.backward_from(ctx.heads, dy, dheads, gm);
    const bool parallel = B * H * Tq * Tk >= parallel_min_elements;  // as in forward
    LST_PARALLEL_FOR_IF(parallel)
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H, w = thread_index();
      if (by_rows) {
        backward_rows(ctx, dheads, P, b, h, scale, ds_all.data() + w * backward_scratch(D, Tk), dq, dk, dv);
        continue;
      }
      const TensorView<T, Backend> ds(ds_all.data() + w * Tq * Tk, Shape{Tq, Tk});
      const T* p = nullptr;
      if (ctx.recompute) {  // the forward's scores and softmax again, bit for bit
        T* s = recomputed.data() + w * Tq * Tk;
        gemm<T>(Trans::no, Trans::yes, scale, head(ctx.q, b, h, Tq), head(ctx.k, b, h, Tk), T(0),
                MatrixRef<T, Backend>(s, Tq, Tk));
        const std::int32_t* mrow = ctx.mask.empty() ? nullptr : ctx.mask.data() + b * Tx;
        for (index_t i = 0; i < Tq; ++i) cpu::masked_softmax_row(s + i * Tk, Tk, P, mrow);
        p = s;
      } else {
        p = ctx.probs.data() + ((b * H + h) * Tq) * Tk;
      }
      const MatrixRef<const T, Backend> pm(p, Tq, Tk);
      // dP (T, Tk) = dO_h V_h^T ; dV_h (Tk, D) = P^T dO_h
      gemm<T>(Trans::no, Trans::yes, T(1), head(dheads, b, h, Tq), head(ctx.v, b, h, Tk), T(0),
              MatrixRef<T, Backend>(ds));
      gemm<T>(Trans::yes, Trans::no, T(1), pm, head(dheads, b, h, Tq), T(0), head(dv, b, h, Tk));
      // Softmax backward, row by row: dS = P * (dP - sum_j dP_j P_j).
      for (index_t i = 0; i < Tq; ++i) {
        T* d = ds.data() + i * Tk;
        const T* pr = p + i * Tk;
        T dot = 0;
        for (index_t j = 0; j < Tk; ++j) dot += d[j] * pr[j];
        for (index_t j = 0; j < Tk; ++j) d[j] = pr[j] * (d[j] - dot);
      }
      // dQ_h = scale * dS K_h ; dK_h = scale * dS^T Q_h
      gemm<T>(Trans::no, Trans::no, scale, MatrixRef<const T, Backend>(ds), head(ctx.k, b, h, Tk), T(0),
              head(dq, b, h, Tq));
      gemm<T>(Trans::yes, Trans::no, scale, MatrixRef<const T, Backend>(ds), head(ctx.q, b, h, Tq), T(0),
              head(dk, b, h, Tk));
    }

    for (index_t b = 0; b < B && P > 0; ++b) {
      if (ctx.prefix_key_grad) TensorView<T, Backend>(ctx.prefix_key_grad, Shape{P, C}) += dk[b].slice(0, P);
      if (ctx.prefix_value_grad)
        TensorView<T, Backend>(ctx.prefix_value_grad, Shape{P, C}) += dv[b].slice(0, P);
    }
    if (Tq < Tx) {  // every position feeds k and v, which write dx; the query rows add theirs
      m_k.backward_from(ctx.x, dk, dx, gm);
      m_v.backward_from(ctx.x, dv, dx, gm, T(1));
      Tensor<T, Backend> dxq(dx.empty() ? Shape{0} : Shape{B, Tq, C});
      m_q.backward_from(first_rows(ctx.x.cview(), Tq), dq,
                        dx.empty() ? TensorView<T, Backend>() : TensorView<T, Backend>(dxq), gm);
      for (index_t b = 0; b < B && !dx.empty(); ++b) dx[b].slice(0, Tq) += dxq[b];
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
        m_k.backward_from(ctx.x[b], dk[b].slice(P, Tk), dxb, gb, T(1));
        m_v.backward_from(ctx.x[b], dv[b].slice(P, Tk), dxb, gb, T(1));
      }
    }
  }

 private:
  static index_t checked_heads(const std::string& name, index_t dim, index_t heads) {
    LST_CHECK(heads > 0 && dim % heads == 0, "MultiHeadSelfAttention '", name, "': width ", dim,
              " is not divisible by ", heads, " heads");
    return heads;
  }

  /// (B, n, C): the first n positions of each sequence of x (B, T, C).
  static Tensor<T, Backend> first_rows(ConstView<T, Backend> x, index_t n) {
    const index_t B = x.dim(0), Tx = x.dim(1), C = x.dim(2);
    Tensor<T, Backend> out(Shape{B, n, C}, MemCategory::workspace);
    for (index_t b = 0; b < B; ++b) std::copy_n(x.data() + b * Tx * C, n * C, out.data() + b * n * C);
    return out;
  }

  /// Head h of sequence b in a (B, T, C) tensor: a (T, D) matrix with leading dimension C.
  template <class Tensorish>
  MatrixRef<T, Backend> head(const Tensorish& t, index_t b, index_t h, index_t rows) const {
    const index_t D = m_dim / m_heads;
    return MatrixRef<T, Backend>(t.data() + b * rows * m_dim + h * D, rows, D, m_dim);
  }

  /// kt (D, Tp) = the first `live` keys of head h of sequence b in t (B, Tk, C), transposed: key j's D values
  /// become column j; the columns past `live` (up to Tp = cpu::padded_keys(live)) are 0.
  template <class Tensorish>
  void transpose_head(const Tensorish& t, index_t b, index_t h, index_t Tk, index_t live, T* kt) const {
    const index_t C = m_dim, D = C / m_heads, Tp = cpu::padded_keys<T>(live);
    const T* src = t.data() + b * Tk * C + h * D;
    for (index_t d = 0; d < D; ++d) {
      for (index_t j = 0; j < live; ++j) kt[d * Tp + j] = src[j * C + d];
      std::fill(kt + d * Tp + live, kt + (d + 1) * Tp, T(0));
    }
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
  /// backward K^T, V^T, dK^T, dV^T (D rows each), the probabilities and dP of up to
  /// cpu::attention_max_rows_per_call rows, and the key bias. Rounded up to whole 64-byte lines: two threads'
  /// scratch never shares a cache line (false sharing on values written every row made the second thread
  /// nearly useless).
  static index_t forward_scratch(index_t D, index_t Tk) {
    return whole_lines((2 * D + 1 + cpu::attention_max_rows_per_call) * cpu::padded_keys<T>(Tk));
  }
  static index_t backward_scratch(index_t D, index_t Tk) {
    return whole_lines((4 * D + 2 * cpu::attention_max_rows_per_call + 1) * cpu::padded_keys<T>(Tk));
  }
  static index_t whole_lines(index_t n) {
    constexpr index_t per_line = index_t(64 / sizeof(T));
    return (n + per_line - 1) / per_line * per_line;
  }

  /// Forward of the row-wise kernel for head h of sequence b: that head's columns of `heads` (B, Tq, C);
  /// `probs` (Tq, Tk) gets the probabilities when training keeps them (else null), `stats` (Tq, 2) each row's
  /// max and 1 / sum when backward recomputes them (else null). `work` holds forward_scratch(D, Tk) values.
  /// Only the live keys are visited (live_keys) and only the live query rows computed (live_queries); the
  /// others get 0 everywhere.
  void forward_rows(const Tensor<T, Backend>& q, const Tensor<T, Backend>& k, const Tensor<T, Backend>& v,
                    const std::int32_t* mask_row, index_t P, index_t b, index_t h, T scale, T* work,
                    Tensor<T, Backend>& heads, T* probs, T* stats) const {
    const index_t Tq = q.dim(1), Tk = k.dim(1), Tx = Tk - P, C = m_dim, D = C / m_heads;
    const index_t keys = live_keys(mask_row, Tx, P), rows = query_rows(mask_row, Tx, Tq);
    const index_t Tp = cpu::padded_keys<T>(keys);
    T *kt = work, *vt = kt + D * Tp, *bias = vt + D * Tp, *e = bias + Tp;
    transpose_head(k, b, h, Tk, keys, kt);
    transpose_head(v, b, h, Tk, keys, vt);
    key_bias(mask_row, keys, P, bias);
    cpu::with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      // Rows i .. i + N - 1 in one call: they share each load of K^T and V^T.
      const auto rows_from = [&](index_t i, auto count) {
        constexpr int N = decltype(count)::value;
        const T* qi = q.data() + (b * Tq + i) * C + h * D;
        T* o = heads.data() + (b * Tq + i) * C + h * D;
        cpu::SoftmaxRowStats<T> st[N];
        cpu::attention_rows_forward<T, Dc, N>(qi, o, C, scale, kt, vt, bias, Tp, e, st);
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
      std::fill_n(heads.data() + (b * Tq + i) * C + h * D, D, T(0));
      if (stats) stats[2 * i] = stats[2 * i + 1] = T(0);
      if (probs) std::fill_n(probs + i * Tk, Tk, T(0));
    }
  }

  /// Backward of the row-wise kernel for head h of sequence b: dq, dk, dv (B, Tq | Tk, C) get that head's
  /// columns. `work` holds backward_scratch(D, Tk) values.
  void backward_rows(const Context& ctx, const Tensor<T, Backend>& dheads, index_t P, index_t b, index_t h,
                     T scale, T* work, Tensor<T, Backend>& dq, Tensor<T, Backend>& dk,
                     Tensor<T, Backend>& dv) const {
    const index_t Tq = ctx.q.dim(1), Tx = ctx.x.dim(1), Tk = ctx.k.dim(1), C = m_dim, H = m_heads, D = C / H;
    const std::int32_t* mask_row = ctx.mask.empty() ? nullptr : ctx.mask.data() + b * Tx;
    const index_t keys = live_keys(mask_row, Tx, P), rows = query_rows(mask_row, Tx, Tq);  // as in forward
    const index_t Tp = cpu::padded_keys<T>(keys);
    constexpr index_t R_max = cpu::attention_max_rows_per_call;
    T *kt = work, *vt = kt + D * Tp, *dkt = vt + D * Tp, *dvt = dkt + D * Tp, *p = dvt + D * Tp,
      *dp = p + R_max * Tp, *bias = dp + R_max * Tp;
    transpose_head(ctx.k, b, h, Tk, keys, kt);
    transpose_head(ctx.v, b, h, Tk, keys, vt);
    std::fill(dkt, dkt + 2 * D * Tp, T(0));
    if (ctx.recompute)
      key_bias(mask_row, keys, P, bias);
    else
      std::fill(p, p + R_max * Tp, T(0));  // the kept rows are copied in front of these zeros
    cpu::with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      // Rows i .. i + N - 1 in one call: they share each load and store of dK^T and dV^T.
      const auto rows_from = [&](index_t i, auto count) {
        constexpr int N = decltype(count)::value;
        const index_t first = (b * H + h) * Tq + i;  // the rows' index in (B, H, Tq)
        const T* q = ctx.q.data() + (b * Tq + i) * C + h * D;
        const T* go = dheads.data() + (b * Tq + i) * C + h * D;  // dO rows
        T* gq = dq.data() + (b * Tq + i) * C + h * D;
        cpu::SoftmaxRowStats<T> stats[N] = {};  // used only when recomputing
        if (ctx.recompute) {
          for (int r = 0; r < N; ++r)
            stats[r] = {ctx.row_stats.data()[2 * (first + r)], ctx.row_stats.data()[2 * (first + r) + 1]};
          cpu::attention_rows_backward<T, Dc, N, true>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, p, dp,
                                                       dkt, dvt);
        } else {
          for (int r = 0; r < N; ++r) std::copy_n(ctx.probs.data() + (first + r) * Tk, keys, p + r * Tp);
          cpu::attention_rows_backward<T, Dc, N, false>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, p, dp,
                                                        dkt, dvt);
        }
      };
      cpu::for_row_blocks<cpu::attention_rows_per_call<Dc>>(rows, rows_from);
    });
    for (index_t i = rows; i < Tq; ++i) std::fill_n(dq.data() + (b * Tq + i) * C + h * D, D, T(0));
    T* gk = dk.data() + b * Tk * C + h * D;
    T* gv = dv.data() + b * Tk * C + h * D;
    for (index_t j = 0; j < keys; ++j)
      for (index_t d = 0; d < D; ++d) {
        gk[j * C + d] = dkt[d * Tp + j];
        gv[j * C + d] = dvt[d * Tp + j];
      }
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
