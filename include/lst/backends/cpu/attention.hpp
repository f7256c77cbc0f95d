// SPDX-License-Identifier: MIT
/// @file attention.hpp
/// @brief The CPU's attention (ops/attention.hpp): (sequence, head) pairs in parallel, each by GEMMs and a
///        row-wise softmax, or for narrow heads by the fused row kernels of attention_rows.hpp; attention
///        dropout's mask drawn row by row (attention_dropout_scales) in forward and again in backward.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../../ops/attention.hpp"
#include "attention_rows.hpp"
#include "gemm.hpp"
#include "row_math.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

namespace cpu {
/// One attention call's geometry and the per-head algorithms, forward and backward.
template <class T>
struct AttentionHeads {
  const AttentionLayout& L;
  index_t C, H, D;
  bool skip_padded_queries;
  /// Attention dropout (training only): whether it is on, its stream, the least 24-bit draw kept and the
  /// kept probabilities' scale 1 / (1 - p).
  bool dropout = false;
  std::uint64_t dropout_key = 0, keep_from = 0;
  T keep_scale = T(1);

  AttentionHeads(const AttentionLayout& layout, const AttentionSettings& s, index_t C_, bool training)
      : L(layout), C(C_), H(s.heads), D(C_ / s.heads), skip_padded_queries(s.skip_padded_queries) {
    LST_CHECK(s.dropout >= 0.0 && s.dropout < 1.0, "attention: dropout probability ", s.dropout,
              " is outside [0, 1)");
    if (training && s.dropout > 0.0) {
      dropout = true;
      dropout_key = s.dropout_key;
      keep_from = dropout_keep_from(s.dropout);
      keep_scale = T(1.0 / (1.0 - s.dropout));
    }
  }

  /// m (n) = the keep-scales of probabilities (b, h, i, 0 .. n - 1): 1 / (1 - p) where kept, else 0
  /// (AttentionLayout::dropout_index).
  void dropout_scales(index_t b, index_t h, index_t i, index_t n, T* m) const {
    attention_dropout_scales<T>(dropout_key, L.dropout_index(b, h, H, i), keep_from, keep_scale, n, m);
  }

  /// Head h of sequence b in a tensor whose sequences sit as `rows` says: a (rows, D) matrix with leading
  /// dimension C.
  template <class U>
  MatrixRef<U, Cpu> head(U* t, const PackedSequences& rows, index_t b, index_t h) const {
    return MatrixRef<U, Cpu>(t + rows.first_row(b) * C + h * D, rows.length(b), D, C);
  }

  /// kt (D, Tp) = the first `live` keys of head h of the sequence whose rows start at `first` in t (.., C),
  /// transposed: key j's D values become column j; the columns past `live` (up to Tp = padded_keys(live))
  /// are 0.
  void transpose_head(const T* t, index_t first, index_t h, index_t live, T* kt) const {
    const index_t Tp = padded_keys<T>(live);
    const T* src = t + first * C + h * D;
    with_head_dim(D, [&](auto width) {  // key by key: D contiguous reads, D unrolled writes
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
    const index_t Tp = padded_keys<T>(Tk);
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
    return std::min(Tq, skip_padded_queries ? live_keys(mask_row, Tx, 0) : Tx);
  }

  /// Per-thread scratch of the row-wise kernel, in values (Tp = Tk padded to whole packets): forward K^T, V^T
  /// (D rows of Tp each), the key bias (Tp) and the exps of up to attention_max_rows_per_call rows; backward
  /// K^T, V^T, dK^T, dV^T (D rows each), the kept probabilities of up to attention_max_rows_per_call rows
  /// (none when they are recomputed), and the key bias; with dropout, both also the keep-scales of up to
  /// attention_max_rows_per_call rows. Rounded up to whole 64-byte lines: two threads' scratch never shares
  /// a cache line (false sharing on values written every row made the second thread nearly useless).
  index_t forward_scratch(index_t Tk) const {
    return whole_lines((2 * D + 1 + attention_max_rows_per_call + dropout_rows()) * padded_keys<T>(Tk));
  }
  index_t backward_scratch(index_t Tk, bool recompute) const {
    return whole_lines((4 * D + kept_rows(recompute) + 1 + dropout_rows()) * padded_keys<T>(Tk));
  }
  /// Rows of keep-scales in the row-wise kernel's scratch.
  index_t dropout_rows() const { return dropout ? attention_max_rows_per_call : 0; }
  /// Rows of kept probabilities in the backward scratch.
  static index_t kept_rows(bool recompute) { return recompute ? 0 : attention_max_rows_per_call; }
  static index_t whole_lines(index_t n) {
    constexpr index_t per_line = index_t(64 / sizeof(T));
    return (n + per_line - 1) / per_line * per_line;
  }

  /// Forward of the row-wise kernel for head h of sequence b: that head's columns of `heads` (laid out as q);
  /// `probs` (Tq, Tk) gets the probabilities when training keeps them (else null), `stats` (Tq, 2) each row's
  /// max and 1 / sum when backward recomputes them (else null), Tq and Tk the sequence's own. `work` holds
  /// forward_scratch(D, Tk) values. Only the live keys are visited (live_keys) and only the live query rows
  /// computed (query_rows); the others get 0 everywhere.
  void forward_rows(const T* q, const T* k, const T* v, const std::int32_t* mask_row, index_t b, index_t h,
                    T scale, T* work, T* heads, T* probs, T* stats) const {
    const index_t Tq = L.q.length(b), Tk = L.k.length(b), P = L.prefix, Tx = Tk - P, q0 = L.q.first_row(b);
    const index_t keys = live_keys(mask_row, Tx, P), rows = query_rows(mask_row, Tx, Tq);
    const index_t Tp = padded_keys<T>(keys);
    T *kt = work, *vt = kt + D * Tp, *bias = vt + D * Tp, *e = bias + Tp,
      *m = e + attention_max_rows_per_call * Tp;  // keep-scales, with dropout
    transpose_head(k, L.k.first_row(b), h, keys, kt);
    transpose_head(v, L.k.first_row(b), h, keys, vt);
    key_bias(mask_row, keys, P, bias);
    with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      // Rows i .. i + N - 1 in one call: they share each load of K^T and V^T.
      const auto rows_from = [&](index_t i, auto count) {
        constexpr int N = decltype(count)::value;
        const T* qi = q + (q0 + i) * C + h * D;
        T* o = heads + (q0 + i) * C + h * D;
        SoftmaxRowStats<T> st[N];
        if (dropout) {  // the rows' keep-scales over whole packets (those past the live keys meet exps of 0)
          for (int r = 0; r < N; ++r) dropout_scales(b, h, i + r, Tp, m + r * Tp);
          if (probs)
            attention_rows_forward<T, Dc, N, true, true>(qi, o, C, scale, kt, vt, bias, Tp, e, st, m);
          else
            attention_rows_forward<T, Dc, N, false, true>(qi, o, C, scale, kt, vt, bias, Tp, e, st, m);
        } else if (probs) {  // the exps become the kept probabilities below
          attention_rows_forward<T, Dc, N, true>(qi, o, C, scale, kt, vt, bias, Tp, e, st);
        } else {
          attention_rows_forward<T, Dc, N, false>(qi, o, C, scale, kt, vt, bias, Tp, e, st);
        }
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
      for_row_blocks<attention_rows_per_call<Dc>>(rows, rows_from);
    });
    for (index_t i = rows; i < Tq; ++i) {
      std::fill_n(heads + (q0 + i) * C + h * D, D, T(0));
      if (stats) stats[2 * i] = stats[2 * i + 1] = T(0);
      if (probs) std::fill_n(probs + i * Tk, Tk, T(0));
    }
  }

  /// Backward of the row-wise kernel for head h of sequence b: dq, dk, dv (laid out as q and k) get that
  /// head's columns. `work` holds backward_scratch(Tk, saved.recompute) values. With dropout, each row's
  /// keep-scales are drawn again.
  void backward_rows(const T* q_all, const T* k_all, const T* v_all, const T* heads, const std::int32_t* mask,
                     const AttentionSaved<T, Cpu>& saved, const T* dheads, index_t b, index_t h, T scale,
                     T* work, T* dq, T* dk, T* dv) const {
    const index_t Tq = L.q.length(b), Tx = L.x.length(b), Tk = L.k.length(b), P = L.prefix,
                  q0 = L.q.first_row(b), k0 = L.k.first_row(b);
    const std::int32_t* mask_row = mask ? mask + b * Tx : nullptr;
    const index_t keys = live_keys(mask_row, Tx, P), rows = query_rows(mask_row, Tx, Tq);  // as in forward
    const index_t Tp = padded_keys<T>(keys);
    const index_t R_kept = kept_rows(saved.recompute);
    T *kt = work, *vt = kt + D * Tp, *dkt = vt + D * Tp, *dvt = dkt + D * Tp, *p = dvt + D * Tp,
      *bias = p + R_kept * Tp, *m = bias + Tp;  // m: keep-scales, with dropout
    transpose_head(k_all, k0, h, keys, kt);
    transpose_head(v_all, k0, h, keys, vt);
    std::fill(dkt, dkt + 2 * D * Tp, T(0));
    if (saved.recompute)
      key_bias(mask_row, keys, P, bias);
    else
      std::fill(p, p + R_kept * Tp, T(0));  // the kept rows are copied in front of these zeros
    with_head_dim(D, [&](auto width) {
      constexpr int Dc = decltype(width)::value;
      // Rows i .. i + N - 1 in one call: they share each load and store of dK^T and dV^T.
      const auto rows_from = [&](index_t i, auto count) {
        constexpr int N = decltype(count)::value;
        const index_t first = (b * H + h) * L.q_stride + i;  // the rows' index in (B, H, Tq)
        const index_t at = (q0 + i) * C + h * D;
        const T *q = q_all + at, *go = dheads + at, *o = heads + at;  // dO, O rows
        T* gq = dq + at;
        T delta[N];  // go . o: the softmax backward's sum_j p_j dP_j
        for (int r = 0; r < N; ++r) delta[r] = attention_row_delta<T, Dc>(go + r * C, o + r * C);
        SoftmaxRowStats<T> stats[N] = {};  // used only when recomputing
        if (dropout)
          for (int r = 0; r < N; ++r) dropout_scales(b, h, i + r, Tp, m + r * Tp);
        if (saved.recompute) {
          for (int r = 0; r < N; ++r)
            stats[r] = {saved.row_stats.data()[2 * (first + r)], saved.row_stats.data()[2 * (first + r) + 1]};
          if (dropout)
            attention_rows_backward<T, Dc, N, true, true>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, delta,
                                                          nullptr, dkt, dvt, m);
          else
            attention_rows_backward<T, Dc, N, true>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, delta,
                                                    nullptr, dkt, dvt);
        } else {
          const T* kept = saved.probs.data() + (b * H + h) * L.q_stride * L.k_stride;
          for (int r = 0; r < N; ++r) std::copy_n(kept + (i + r) * Tk, keys, p + r * Tp);
          if (dropout)
            attention_rows_backward<T, Dc, N, false, true>(q, go, gq, C, scale, kt, vt, bias, Tp, stats,
                                                           delta, p, dkt, dvt, m);
          else
            attention_rows_backward<T, Dc, N, false>(q, go, gq, C, scale, kt, vt, bias, Tp, stats, delta, p,
                                                     dkt, dvt);
        }
      };
      for_row_blocks<attention_rows_per_call<Dc>>(rows, rows_from);
    });
    for (index_t i = rows; i < Tq; ++i) std::fill_n(dq + (q0 + i) * C + h * D, D, T(0));
    T* gk = dk + k0 * C + h * D;
    T* gv = dv + k0 * C + h * D;
    with_head_dim(D, [&](auto width) {
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
};
}  // namespace cpu

namespace ops {
template <>
struct Attention<Cpu> {
  static constexpr index_t rowwise_max_head_dim = cpu::attention_row_max_head_dim;

  template <class T>
  static void forward(const AttentionLayout& L, const AttentionSettings& settings, ConstView<T, Cpu> q,
                      ConstView<T, Cpu> k, ConstView<T, Cpu> v, const std::int32_t* mask,
                      TensorView<T, Cpu> heads, AttentionSaved<T, Cpu>* saved) {
    const index_t B = L.x.count(), C = q.shape().cols(), H = settings.heads, D = C / H, P = L.prefix;
    const bool training = saved != nullptr;
    const cpu::AttentionHeads<T> A(L, settings, C, training);  // dropout in training only
    const index_t Sq = L.q_stride, Sk = L.k_stride;            // one (b, h) block's extents
    // All heads' probabilities when backward reads them; otherwise one head's at a time (inference never
    // holds a (B, H, T, T) tensor).
    const bool keep_probs = training && settings.keep_probabilities;
    const MemCategory cat = training ? MemCategory::activations : MemCategory::workspace;
    // (B, H) pairs are independent: they run in parallel, each thread with its own (Tq, Tk) buffer.
    const index_t workers = threads();
    const bool by_rows = attention_rowwise<Cpu>(settings.kernel, D);
    LST_CHECK(!by_rows || D <= rowwise_max_head_dim, "attention: heads of ", D,
              " values are wider than the row kernels take");
    // Per-thread scratch: the gemm kernel's (Tq, Tk) score block, or the row-wise kernel's K^T, V^T and row.
    Tensor<T, Cpu> probs(keep_probs ? Shape{B, H, Sq, Sk}
                         : by_rows  ? Shape{0}
                                    : Shape{workers, Sq, Sk},
                         cat),
        scratch(by_rows ? Shape{workers, A.forward_scratch(Sk)} : Shape{0}, MemCategory::workspace),
        // The gemm kernel's dropout: a row of keep-scales, and the dropped (Tq, Tk) block when P is kept.
        dropped(A.dropout && !by_rows ? Shape{workers, (keep_probs ? Sq + 1 : 1) * Sk} : Shape{0},
                MemCategory::workspace),
        // What the row-wise backward needs to recompute a row's probabilities with one exp each.
        row_stats(by_rows && training && !keep_probs ? Shape{B, H, Sq, 2} : Shape{0},
                  MemCategory::activations);
    const T scale = T(1) / std::sqrt(T(D));
    // Small problems stay on one thread: starting a parallel region costs more than they do, and far more
    // when a worker thread has to wait for a busy core.
    const bool parallel = B * H * Sq * Sk >= parallel_min_elements;
    LST_PARALLEL_FOR_UNEVEN_IF(parallel)  // packed sequences of unequal lengths
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      const std::int32_t* mrow = mask ? mask + b * L.x.length(b) : nullptr;
      if (by_rows) {
        A.forward_rows(q.data(), k.data(), v.data(), mrow, b, h, scale,
                       scratch.data() + index_t(thread_index()) * A.forward_scratch(Sk), heads.data(),
                       keep_probs ? probs.data() + bh * Sq * Sk : nullptr,
                       row_stats.empty() ? nullptr : row_stats.data() + bh * Sq * 2);
        continue;
      }
      const index_t Tqb = L.q.length(b), Tkb = L.k.length(b);
      T* s = probs.data() + (keep_probs ? bh : index_t(thread_index())) * Sq * Sk;
      // S (Tq, Tk) = scale * Q_h (Tq, D) K_h^T (D, Tk); heads are column blocks of width D, leading dim C.
      cpu::gemm<T>(Trans::no, Trans::yes, scale, A.head(q.data(), L.q, b, h), A.head(k.data(), L.k, b, h),
                   T(0), MatrixRef<T, Cpu>(s, Tqb, Tkb));
      for (index_t i = 0; i < Tqb; ++i) cpu::masked_softmax_row(s + i * Tkb, Tkb, P, mrow);
      const T* pv = s;  // what multiplies V: P, or dropout(P)
      if (A.dropout) {  // dropped in place, or into a copy when backward reads the kept P
        T* m = dropped.data() + index_t(thread_index()) * (keep_probs ? Sq + 1 : 1) * Sk;
        T* pd = keep_probs ? m + Sk : s;
        for (index_t i = 0; i < Tqb; ++i) {
          A.dropout_scales(b, h, i, Tkb, m);
          for (index_t j = 0; j < Tkb; ++j) pd[i * Tkb + j] = s[i * Tkb + j] * m[j];
        }
        pv = pd;
      }
      // O_h (Tq, D) = dropout(P) (Tq, Tk) V_h (Tk, D)
      cpu::gemm<T>(Trans::no, Trans::no, T(1), MatrixRef<const T, Cpu>(pv, Tqb, Tkb),
                   A.head(v.data(), L.k, b, h), T(0), A.head(heads.data(), L.q, b, h));
      // Computed, then cleared: the row-wise kernel's result, to rounding.
      for (index_t i = A.query_rows(mrow, L.x.length(b), Tqb); i < Tqb; ++i)
        std::fill_n(heads.data() + (L.q.first_row(b) + i) * C + h * D, D, T(0));
    }
    if (training) {
      if (keep_probs) saved->probs = std::move(probs);
      saved->recompute = !keep_probs;
      saved->row_stats = std::move(row_stats);
    }
  }

  template <class T>
  static void backward(const AttentionLayout& L, const AttentionSettings& settings, ConstView<T, Cpu> q,
                       ConstView<T, Cpu> k, ConstView<T, Cpu> v, ConstView<T, Cpu> heads,
                       const std::int32_t* mask, const AttentionSaved<T, Cpu>& saved,
                       ConstView<T, Cpu> dheads, TensorView<T, Cpu> dq, TensorView<T, Cpu> dk,
                       TensorView<T, Cpu> dv) {
    const index_t B = L.x.count(), C = q.shape().cols(), H = settings.heads, D = C / H, P = L.prefix;
    const cpu::AttentionHeads<T> A(L, settings, C, true);  // the forward's dropout, drawn again
    const index_t Sq = L.q_stride, Sk = L.k_stride;        // as in forward
    const T scale = T(1) / std::sqrt(T(D));
    // (B, H) pairs run in parallel; each thread holds one head's score gradient (and probabilities, when
    // recomputed) at a time.
    const index_t workers = threads();
    const bool by_rows = attention_rowwise<Cpu>(settings.kernel, D);
    Tensor<T, Cpu> ds_all(by_rows ? Shape{workers, A.backward_scratch(Sk, saved.recompute)}
                                  : Shape{workers, Sq, Sk});
    Tensor<T, Cpu> recomputed(saved.recompute && !by_rows ? Shape{workers, Sq, Sk} : Shape{0});
    // The gemm kernel's dropout: the keep-scales M and dropout(P) = P M of one head per thread.
    Tensor<T, Cpu> dropped(A.dropout && !by_rows ? Shape{workers, 2, Sq, Sk} : Shape{0});
    const bool parallel = B * H * Sq * Sk >= parallel_min_elements;  // as in forward
    LST_PARALLEL_FOR_UNEVEN_IF(parallel)                             // packed sequences of unequal lengths
    for (index_t bh = 0; bh < B * H; ++bh) {
      const index_t b = bh / H, h = bh % H, w = thread_index();
      if (by_rows) {
        A.backward_rows(q.data(), k.data(), v.data(), heads.data(), mask, saved, dheads.data(), b, h, scale,
                        ds_all.data() + w * A.backward_scratch(Sk, saved.recompute), dq.data(), dk.data(),
                        dv.data());
        continue;
      }
      const index_t Tqb = L.q.length(b), Tkb = L.k.length(b);
      const TensorView<T, Cpu> ds(ds_all.data() + w * Sq * Sk, Shape{Tqb, Tkb});
      const T* p = nullptr;
      if (saved.recompute) {  // the forward's scores and softmax again, bit for bit
        T* s = recomputed.data() + w * Sq * Sk;
        cpu::gemm<T>(Trans::no, Trans::yes, scale, A.head(q.data(), L.q, b, h), A.head(k.data(), L.k, b, h),
                     T(0), MatrixRef<T, Cpu>(s, Tqb, Tkb));
        const std::int32_t* mrow = mask ? mask + b * L.x.length(b) : nullptr;
        for (index_t i = 0; i < Tqb; ++i) cpu::masked_softmax_row(s + i * Tkb, Tkb, P, mrow);
        p = s;
      } else {
        p = saved.probs.data() + (b * H + h) * Sq * Sk;
      }
      const T* pv = p;                                                // what multiplied V: P, or dropout(P)
      T* m = A.dropout ? dropped.data() + w * 2 * Sq * Sk : nullptr;  // keep-scales (Tq, Tk)
      if (A.dropout) {
        T* pd = m + Sq * Sk;
        for (index_t i = 0; i < Tqb; ++i) {
          A.dropout_scales(b, h, i, Tkb, m + i * Tkb);
          for (index_t j = 0; j < Tkb; ++j) pd[i * Tkb + j] = p[i * Tkb + j] * m[i * Tkb + j];
        }
        pv = pd;
      }
      const MatrixRef<const T, Cpu> pm(pv, Tqb, Tkb);
      // dP (Tq, Tk) = dO_h V_h^T (with dropout, the dropped probabilities' gradient); dV_h (Tk, D) =
      // dropout(P)^T dO_h
      cpu::gemm<T>(Trans::no, Trans::yes, T(1), A.head(dheads.data(), L.q, b, h), A.head(v.data(), L.k, b, h),
                   T(0), MatrixRef<T, Cpu>(ds));
      cpu::gemm<T>(Trans::yes, Trans::no, T(1), pm, A.head(dheads.data(), L.q, b, h), T(0),
                   A.head(dv.data(), L.k, b, h));
      // Through the dropout: dP = M dP_dropped.
      if (A.dropout)
        for (index_t i = 0; i < Tqb * Tkb; ++i) ds.data()[i] *= m[i];
      // Softmax backward, row by row: dS = P * (dP - sum_j dP_j P_j).
      for (index_t i = 0; i < Tqb; ++i) {
        T* d = ds.data() + i * Tkb;
        const T* pr = p + i * Tkb;
        T dot = 0;
        for (index_t j = 0; j < Tkb; ++j) dot += d[j] * pr[j];
        for (index_t j = 0; j < Tkb; ++j) d[j] = pr[j] * (d[j] - dot);
      }
      // dQ_h = scale * dS K_h ; dK_h = scale * dS^T Q_h
      cpu::gemm<T>(Trans::no, Trans::no, scale, MatrixRef<const T, Cpu>(ds), A.head(k.data(), L.k, b, h),
                   T(0), A.head(dq.data(), L.q, b, h));
      cpu::gemm<T>(Trans::yes, Trans::no, scale, MatrixRef<const T, Cpu>(ds), A.head(q.data(), L.q, b, h),
                   T(0), A.head(dk.data(), L.k, b, h));
    }
  }
};
}  // namespace ops

LST_NAMESPACE_END
