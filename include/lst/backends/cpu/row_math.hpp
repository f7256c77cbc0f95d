// SPDX-License-Identifier: MIT
/// @file row_math.hpp
/// @brief Row kernels on the CPU (attention, LayerNorm), written in Eigen's SIMD packets: sums, dot products
///        and a masked softmax whose results do not depend on where the row lies in memory.
///
/// Eigen's own reductions and array functions over a Map start at the first *aligned* element: a scalar head
/// (scalar std::exp, a different summation order) whose length depends on the address. The same row at two
/// addresses then differs in its last bits, so attention probabilities recomputed in backward would not be
/// the forward's. Here lane k of every packet always holds the elements j = k (mod L), and the elements past
/// the last whole packet are the same ones at any address (the softmax's exp pads them into one more packet,
/// so no element takes a scalar exp), so the arithmetic is a function of the values alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <Eigen/Core>

#include "../../core/shape.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

template <class T>
using Packet = typename Eigen::internal::packet_traits<T>::type;
template <class T>
inline constexpr index_t packet_size = Eigen::internal::unpacket_traits<Packet<T>>::size;

/// sum_j a[j] b[j] over n values, lane-wise in packets, then a fixed tree over the lanes.
template <class T>
T dot(const T* a, const T* b, index_t n) {
  namespace ei = Eigen::internal;
  constexpr index_t L = packet_size<T>;
  const index_t full = n - n % L;
  Packet<T> acc = ei::pset1<Packet<T>>(T(0));
  for (index_t j = 0; j < full; j += L)
    acc = ei::pmadd(ei::ploadu<Packet<T>>(a + j), ei::ploadu<Packet<T>>(b + j), acc);
  T tail = 0;
  for (index_t j = full; j < n; ++j) tail += a[j] * b[j];
  return ei::predux(acc) + tail;
}

/// sum_j x[j], lane-wise in packets (as dot()).
template <class T>
T sum(const T* x, index_t n) {
  namespace ei = Eigen::internal;
  constexpr index_t L = packet_size<T>;
  const index_t full = n - n % L;
  Packet<T> acc = ei::pset1<Packet<T>>(T(0));
  for (index_t j = 0; j < full; j += L) acc = ei::padd(acc, ei::ploadu<Packet<T>>(x + j));
  T tail = 0;
  for (index_t j = full; j < n; ++j) tail += x[j];
  return ei::predux(acc) + tail;
}

/// sum_j (x[j] - c)^2, lane-wise in packets.
template <class T>
T centred_square_sum(const T* x, T c, index_t n) {
  namespace ei = Eigen::internal;
  constexpr index_t L = packet_size<T>;
  const index_t full = n - n % L;
  const Packet<T> pc = ei::pset1<Packet<T>>(c);
  Packet<T> acc = ei::pset1<Packet<T>>(T(0));
  for (index_t j = 0; j < full; j += L) {
    const Packet<T> d = ei::psub(ei::ploadu<Packet<T>>(x + j), pc);
    acc = ei::pmadd(d, d, acc);
  }
  T tail = 0;
  for (index_t j = full; j < n; ++j) tail += (x[j] - c) * (x[j] - c);
  return ei::predux(acc) + tail;
}

/// sum_j a[j] b[j] c[j], lane-wise in packets.
template <class T>
T dot3(const T* a, const T* b, const T* c, index_t n) {
  namespace ei = Eigen::internal;
  constexpr index_t L = packet_size<T>;
  const index_t full = n - n % L;
  Packet<T> acc = ei::pset1<Packet<T>>(T(0));
  for (index_t j = 0; j < full; j += L)
    acc = ei::pmadd(ei::pmul(ei::ploadu<Packet<T>>(a + j), ei::ploadu<Packet<T>>(b + j)),
                    ei::ploadu<Packet<T>>(c + j), acc);
  T tail = 0;
  for (index_t j = full; j < n; ++j) tail += a[j] * b[j] * c[j];
  return ei::predux(acc) + tail;
}

/// exp(s - max) lane by lane, exactly 0 where the score is -inf (a hidden key): Eigen's exp clamps its
/// argument, so exp(-inf) alone would be a tiny positive number, not 0.
template <class T>
Packet<T> masked_exp(Packet<T> s, Packet<T> max) {
  namespace ei = Eigen::internal;
  const Packet<T> hidden = ei::pset1<Packet<T>>(-std::numeric_limits<T>::infinity());
  return ei::pandnot(ei::pexp(ei::psub(s, max)), ei::pcmp_eq(s, hidden));
}

/// The softmax of the row s (n) without its normalisation: s[j] becomes exp(s[j] - max s), 0 for a hidden key
/// (key j >= P is hidden when mask[j - P] == 0; mask may be null: none; a score of -inf is hidden too).
/// Returns the sum of the row (0 when every key is hidden: the row is then all 0).
template <class T>
T masked_exp_row(T* s, index_t n, index_t P, const std::int32_t* mask) {
  namespace ei = Eigen::internal;
  using P_t = Packet<T>;
  constexpr index_t L = packet_size<T>;
  constexpr T hidden = -std::numeric_limits<T>::infinity();
  if (mask)
    for (index_t j = P; j < n; ++j) s[j] = mask[j - P] != 0 ? s[j] : hidden;
  const index_t full = n - n % L;
  const P_t phidden = ei::pset1<P_t>(hidden);
  P_t lane_max = phidden;  // max is exact in any order; lanes only break the dependency chain
  for (index_t j = 0; j < full; j += L) lane_max = ei::pmax(lane_max, ei::ploadu<P_t>(s + j));
  T mx = ei::predux_max(lane_max);
  for (index_t j = full; j < n; ++j) mx = std::max(mx, s[j]);
  if (mx == hidden) {  // every key hidden
    std::fill(s, s + n, T(0));
    return T(0);
  }
  const P_t pmx = ei::pset1<P_t>(mx);
  P_t sum = ei::pset1<P_t>(T(0));  // summed lane-wise
  for (index_t j = 0; j < full; j += L) {
    const P_t e = masked_exp<T>(ei::ploadu<P_t>(s + j), pmx);
    ei::pstoreu(s + j, e);
    sum = ei::padd(sum, e);
  }
  if (full < n) {  // the last partial packet, padded with hidden scores (which become 0)
    alignas(64) T tail[L];
    std::fill(tail, tail + L, hidden);
    std::copy(s + full, s + n, tail);
    const P_t e = masked_exp<T>(ei::pload<P_t>(tail), pmx);
    ei::pstore(tail, e);
    std::copy(tail, tail + (n - full), s + full);
    sum = ei::padd(sum, e);
  }
  return ei::predux(sum);
}

/// s[j] *= a over n values.
template <class T>
void scale_row(T* s, index_t n, T a) {
  namespace ei = Eigen::internal;
  constexpr index_t L = packet_size<T>;
  const index_t full = n - n % L;
  const Packet<T> pa = ei::pset1<Packet<T>>(a);
  for (index_t j = 0; j < full; j += L) ei::pstoreu(s + j, ei::pmul(ei::ploadu<Packet<T>>(s + j), pa));
  for (index_t j = full; j < n; ++j) s[j] *= a;
}

/// Softmax of the row s (n) in place. Key j >= P is hidden when mask[j - P] == 0 (mask may be null: none);
/// a hidden key gets exactly 0, and a row whose keys are all hidden becomes all 0 (not NaN).
template <class T>
void masked_softmax_row(T* s, index_t n, index_t P, const std::int32_t* mask) {
  const T sum = masked_exp_row(s, n, P, mask);
  if (sum != T(0)) scale_row(s, n, T(1) / sum);
}

}  // namespace cpu
LST_NAMESPACE_END
