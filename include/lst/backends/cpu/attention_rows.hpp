// SPDX-License-Identifier: MIT
/// @file attention_rows.hpp
/// @brief Attention for narrow heads one query row at a time, forward and backward each in two fused passes
///        over the row's keys (the LST side network's heads are 64 / r wide: 4 at r = 8).
///
/// A head's keys and values are laid out as K^T and V^T, (D, Tp) with Tp = Tk rounded up to whole SIMD
/// packets and zeros past Tk, beside a key bias (Tp): 0 for a visible key, -inf for a hidden one and for the
/// padding. Every loop then runs over whole packets (no scalar tail, no second code path), and lane k of a
/// packet always holds the keys j = k (mod L), so the arithmetic of a row does not depend on where it lies in
/// memory.
///
/// The forward returns the row's softmax statistics (its max and 1 / sum). Backward takes them back and
/// recomputes each probability with one exp, bit for bit the forward's (the same scores, exp and product):
/// no max or sum pass of its own, and the (Tq, Tk) probabilities are never stored (as FlashAttention keeps
/// only its log-sum-exp; Dao et al. 2022, 3.1). The head width D is a template parameter so that the D
/// accumulators of a row stay in registers.
#pragma once

#include <limits>
#include <type_traits>

#include "row_math.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

/// The widest head the row kernels take; a wider head has enough work per key for a GEMM.
inline constexpr index_t attention_row_max_head_dim = 16;

/// Tk rounded up to whole packets: the length of every key row in the row kernels' layout.
template <class T>
index_t padded_keys(index_t Tk) {
  return (Tk + packet_size<T> - 1) / packet_size<T> * packet_size<T>;
}

/// A row's softmax statistics: probability j = exp(s_j - max) * inv_sum. A row whose keys are all hidden has
/// max 0 and inv_sum 0 (all its probabilities are 0).
template <class T>
struct SoftmaxRowStats {
  T max;
  T inv_sum;
};

namespace detail {
/// scores (packet at key j) = bias + sum_d q[d] scale K^T[d]: the bias first, then one fused multiply-add per
/// d in order (forward and backward must compute the same bits).
template <class T, int D>
Packet<T> attention_scores(const T* scaled_q, const T* kt, const T* bias, index_t Tp, index_t j) {
  namespace ei = Eigen::internal;
  Packet<T> s = ei::ploadu<Packet<T>>(bias + j);
  for (int d = 0; d < D; ++d)
    s = ei::pmadd(ei::pset1<Packet<T>>(scaled_q[d]), ei::ploadu<Packet<T>>(kt + d * Tp + j), s);
  return s;
}

}  // namespace detail

/// Forward of one query row of a head of width D: o (D) = softmax(scale q K^T + bias) V. q (D) is the query
/// row; kt, vt, bias in the layout above; `e` (Tp) is scratch and holds exp(s - max) afterwards (0 past Tk).
/// Pass 1 scores the keys and takes their max; pass 2 takes the exps, their sum and the D weighted sums of V
/// at once, and normalises the D outputs instead of the Tk probabilities.
template <class T, int D>
SoftmaxRowStats<T> attention_row_forward(const T* q, T scale, const T* kt, const T* vt, const T* bias,
                                         index_t Tp, T* e, T* o) {
  namespace ei = Eigen::internal;
  using P = Packet<T>;
  constexpr index_t L = packet_size<T>;
  constexpr T hidden = -std::numeric_limits<T>::infinity();
  T scaled_q[D];
  for (int d = 0; d < D; ++d) scaled_q[d] = scale * q[d];
  P lane_max = ei::pset1<P>(hidden);  // max is exact in any order; lanes only break the dependency chain
  for (index_t j = 0; j < Tp; j += L) {
    const P s = detail::attention_scores<T, D>(scaled_q, kt, bias, Tp, j);
    ei::pstoreu(e + j, s);
    lane_max = ei::pmax(lane_max, s);
  }
  const T mx = ei::predux_max(lane_max);
  if (mx == hidden) {  // every key hidden: attend to nothing
    for (index_t j = 0; j < Tp; ++j) e[j] = T(0);
    for (int d = 0; d < D; ++d) o[d] = T(0);
    return {T(0), T(0)};
  }
  const P pmx = ei::pset1<P>(mx);
  P sum = ei::pset1<P>(T(0)), acc[D];
  for (int d = 0; d < D; ++d) acc[d] = ei::pset1<P>(T(0));
  for (index_t j = 0; j < Tp; j += L) {
    const P x = masked_exp<T>(ei::ploadu<P>(e + j), pmx);
    ei::pstoreu(e + j, x);
    sum = ei::padd(sum, x);
    for (int d = 0; d < D; ++d) acc[d] = ei::pmadd(x, ei::ploadu<P>(vt + d * Tp + j), acc[d]);
  }
  const T inv = T(1) / ei::predux(sum);
  for (int d = 0; d < D; ++d) o[d] = ei::predux(acc[d]) * inv;
  return {mx, inv};
}

/// Backward of one query row (the forward's inputs plus go (D) = dL/do and the forward's statistics):
/// dK^T, dV^T (D, Tp) accumulate this row's share, gq (D) = dL/dq. `kept_p` (Tp, zero past Tk) holds the
/// row's probabilities when the forward kept them, or is null: they are then recomputed from the scores.
/// `p`, `dp` (Tp) are scratch.
/// Pass 1: p, dP = go V^T, dV^T += go (x) p and p . dP. Pass 2: dS = scale p (dP - p . dP), gq = dS K and
/// dK^T += q (x) dS.
template <class T, int D>
void attention_row_backward(const T* q, T scale, const T* go, const T* kt, const T* vt, const T* bias,
                            index_t Tp, SoftmaxRowStats<T> stats, const T* kept_p, T* p, T* dp, T* dkt,
                            T* dvt, T* gq) {
  namespace ei = Eigen::internal;
  using P = Packet<T>;
  constexpr index_t L = packet_size<T>;
  T scaled_q[D];
  for (int d = 0; d < D; ++d) scaled_q[d] = scale * q[d];
  const P pmx = ei::pset1<P>(stats.max), pinv = ei::pset1<P>(stats.inv_sum);
  P pdp = ei::pset1<P>(T(0));
  for (index_t j = 0; j < Tp; j += L) {
    const P pj =
        kept_p
            ? ei::ploadu<P>(kept_p + j)
            : ei::pmul(masked_exp<T>(detail::attention_scores<T, D>(scaled_q, kt, bias, Tp, j), pmx), pinv);
    P dpj = ei::pmul(ei::pset1<P>(go[0]), ei::ploadu<P>(vt + j));
    for (int d = 1; d < D; ++d) dpj = ei::pmadd(ei::pset1<P>(go[d]), ei::ploadu<P>(vt + d * Tp + j), dpj);
    for (int d = 0; d < D; ++d)
      ei::pstoreu(dvt + d * Tp + j, ei::pmadd(ei::pset1<P>(go[d]), pj, ei::ploadu<P>(dvt + d * Tp + j)));
    pdp = ei::pmadd(pj, dpj, pdp);
    ei::pstoreu(p + j, pj);
    ei::pstoreu(dp + j, dpj);
  }
  const P p_dot_dp = ei::pset1<P>(ei::predux(pdp)), pscale = ei::pset1<P>(scale);
  P acc[D];
  for (int d = 0; d < D; ++d) acc[d] = ei::pset1<P>(T(0));
  for (index_t j = 0; j < Tp; j += L) {
    const P ds = ei::pmul(ei::pmul(pscale, ei::ploadu<P>(p + j)), ei::psub(ei::ploadu<P>(dp + j), p_dot_dp));
    for (int d = 0; d < D; ++d) {
      acc[d] = ei::pmadd(ds, ei::ploadu<P>(kt + d * Tp + j), acc[d]);
      ei::pstoreu(dkt + d * Tp + j, ei::pmadd(ei::pset1<P>(q[d]), ds, ei::ploadu<P>(dkt + d * Tp + j)));
    }
  }
  for (int d = 0; d < D; ++d) gq[d] = ei::predux(acc[d]);
}

/// Calls f(std::integral_constant<int, D>{}) for a runtime head width 1 <= D <= 16 (checked by the caller).
template <class F>
void with_head_dim(index_t D, F&& f) {
  switch (D) {
#define LST_HEAD_DIM_CASE_(n) \
  case n:                     \
    return f(std::integral_constant<int, n>{});
    LST_HEAD_DIM_CASE_(1)
    LST_HEAD_DIM_CASE_(2)
    LST_HEAD_DIM_CASE_(3)
    LST_HEAD_DIM_CASE_(4)
    LST_HEAD_DIM_CASE_(5)
    LST_HEAD_DIM_CASE_(6)
    LST_HEAD_DIM_CASE_(7)
    LST_HEAD_DIM_CASE_(8)
    LST_HEAD_DIM_CASE_(9)
    LST_HEAD_DIM_CASE_(10)
    LST_HEAD_DIM_CASE_(11)
    LST_HEAD_DIM_CASE_(12)
    LST_HEAD_DIM_CASE_(13)
    LST_HEAD_DIM_CASE_(14)
    LST_HEAD_DIM_CASE_(15)
    LST_HEAD_DIM_CASE_(16)
#undef LST_HEAD_DIM_CASE_
    default:
      return;  // unreachable: the caller checks 1 <= D <= attention_row_max_head_dim
  }
}

}  // namespace cpu
LST_NAMESPACE_END
