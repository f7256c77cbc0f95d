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
#include <type_traits>

#include <Eigen/Core>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include "../../core/shape.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

template <class T>
using Packet = typename Eigen::internal::packet_traits<T>::type;
template <class T>
inline constexpr index_t packet_size = Eigen::internal::unpacket_traits<Packet<T>>::size;

/// The vector registers the build's ISA gives a kernel: 32 with AVX-512 (zmm0-31) and on AArch64, 16 with
/// AVX / AVX2 (ymm0-15) and SSE. Register-blocked kernels (the narrow GEMM's tiles, the attention rows per
/// call) size their blocks by it: a tile sized for 32 registers spills a third of its accumulators to the
/// stack on an AVX2 machine.
inline constexpr int vector_registers =
#if defined(__AVX512F__) || defined(__aarch64__)
    32;
#else
    16;
#endif

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

/// f(std::integral_constant<int, n>{}) for a run-time count 1 <= n <= N; nothing for any other n.
template <int N, class F>
void with_count(index_t n, F&& f) {
  if constexpr (N > 0) {
    if (n == N)
      f(std::integral_constant<int, N>{});
    else
      with_count<N - 1>(n, f);
  }
}

/// out[c] += sum over rows i of x[i * cols + c] for columns [c_begin, c_end), the rows added one after the
/// other (the bits of `for i: for c: out[c] += x[i][c]`). Each column's sum is one chain of additions, so a
/// pass over the rows holds as many packets of columns as it can (up to 8) in registers: that many chains
/// run side by side instead of one after another.
template <class T>
void add_column_sums(const T* x, index_t rows, index_t cols, index_t c_begin, index_t c_end, T* out) {
  namespace ei = Eigen::internal;
  using P = Packet<T>;
  constexpr index_t L = packet_size<T>;
  constexpr index_t most = 8;
  const auto pass = [&](index_t c, auto count) {  // `count` packets of columns from column c
    constexpr int n = decltype(count)::value;
    P acc[n];
    for (int k = 0; k < n; ++k) acc[k] = ei::ploadu<P>(out + c + k * L);
    for (index_t i = 0; i < rows; ++i) {
      const T* row = x + i * cols + c;
      for (int k = 0; k < n; ++k) acc[k] = ei::padd(acc[k], ei::ploadu<P>(row + k * L));
    }
    for (int k = 0; k < n; ++k) ei::pstoreu(out + c + k * L, acc[k]);
  };
  index_t c = c_begin;
  for (; c + most * L <= c_end; c += most * L) pass(c, std::integral_constant<int, most>{});
  const index_t left = (c_end - c) / L;  // the remaining whole packets, fewer than `most`, in one pass
  with_count<most - 1>(left, [&](auto count) { pass(c, count); });
  for (c += left * L; c < c_end; ++c) {
    T acc = out[c];
    for (index_t i = 0; i < rows; ++i) acc += x[i * cols + c];
    out[c] = acc;
  }
}

namespace simd {
#if defined(__AVX512F__)
/// The float vectors of the element-wise kernels (GELU, the softmax's exp): 16 lanes, a ragged end through
/// mask registers, p / q through a 14-bit reciprocal estimate and one correction step (Markstein's: t + (p -
/// q t) r with the residual exact in the FMA), within about an ulp of the quotient. vdivps issues once every
/// ~10 cycles here and would cost as much as all the FMAs together in GELU's erf, whose q lies in [-0.21,
/// -0.014], far from 0 and from overflow.
struct Lanes {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr index_t size = 16;
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V quotient(V p, V q) {
    const V r = _mm512_rcp14_ps(q), t = _mm512_mul_ps(p, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, t, p), r, t);
  }
  static Mask all() { return static_cast<Mask>(0xFFFF); }
  static Mask first(index_t n) { return static_cast<Mask>((1u << n) - 1u); }
  static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(Mask m, float* p, V v) { _mm512_mask_storeu_ps(p, m, v); }
};
#define LST_CPU_LANES 1
#elif defined(__AVX2__) && defined(__FMA__)
/// The same in 8 lanes, the ragged end through vmaskmovps. Here p / q is a division, Eigen's own (the same
/// bits as its erf): vdivps ymm issues every 3.5 cycles on Zen 3, far less than the FMAs around it.
struct Lanes {
  using V = __m256;
  struct Mask {  // vmaskmovps only for the ragged end: its store is microcoded on AMD (Zen 2 and 3)
    __m256i lanes;
    bool whole;
  };
  static constexpr index_t size = 8;
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V quotient(V p, V q) { return _mm256_div_ps(p, q); }
  static Mask all() { return {_mm256_setzero_si256(), true}; }
  static Mask first(index_t n) {  // lanes below n
    return {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
        false};
  }
  static V load(const Mask& m, const float* p) {
    return m.whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m.lanes);
  }
  static void store(const Mask& m, float* p, V v) {
    if (m.whole)
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, m.lanes, v);
  }
};
#define LST_CPU_LANES 1
#endif

#if defined(LST_CPU_LANES)
/// Cephes' polynomial for exp(r) on [-ln(2) / 2, ln(2) / 2], evaluated as Eigen's pexp does (the same FMAs in
/// the same order, so the same bits).
inline Lanes::V exp_polynomial(Lanes::V r) {
  using S = Lanes;
  using V = S::V;
  const V r2 = S::mul(r, r), r3 = S::mul(r2, r);
  V y = S::fma(S::set1(1.9875691500E-4f), r, S::set1(1.3981999507E-3f));
  V y1 = S::fma(S::set1(4.1665795894E-2f), r, S::set1(1.6666665459E-1f));
  const V y2 = S::add(r, S::set1(1.0f));
  y = S::fma(y, r, S::set1(8.3334519073E-3f));
  y1 = S::fma(y1, r, S::set1(5.0000001201E-1f));
  y = S::fma(y, r3, y1);
  return S::fma(y, r2, y2);
}
#endif
}  // namespace simd

/// exp(x) for x <= 0 (a score minus its row's max), -inf or NaN; the result is garbage for those two, which
/// masked_exp() masks. With AVX-512 this is Eigen's pexp<Packet16f> (the same Cephes reduction and
/// polynomial, so the same bits for x >= -87.3) without its clamping of x and its integer construction of
/// 2^m: one vscalefps scales by 2^m instead. That is 12 instructions and 10 constants instead of 17 and 13,
/// which matters where the exp is most of the work (the side network's 4-wide attention heads) and where the
/// constants compete with a few rows' accumulators for the 32 registers. Below -87.3 it returns the true
/// exp (a denormal, or 0) where Eigen returns 0 or exp(-88.4). With AVX2 and FMA the same in 8 lanes, 2^m
/// from its exponent bits (no clamp of x, no two-step ldexp). Elsewhere Eigen's pexp.
template <class T>
Packet<T> softmax_exp(Packet<T> x) {
  namespace ei = Eigen::internal;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && packet_size<T> == 16) {
    // exp(x) = 2^m exp(r): m = floor(x log2(e) + 1/2), r = x - m ln(2) (one FMA, within an ulp).
    const __m512 m =
        _mm512_floor_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)));
    const __m512 r = _mm512_fmadd_ps(m, _mm512_set1_ps(-0.6931471805599453f), x);
    const __m512 y = simd::exp_polynomial(r);
    return _mm512_scalef_ps(y, m);
  }
#elif defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float> && packet_size<T> == 8) {
    // Eigen's generic pexp (AVX2) in the same reduction and polynomial, so the same bits on [-87.3, 0]
    // (every float there, checked once), without its clamp of x and with one multiply by 2^m, built from its
    // exponent bits with m clamped at -127 (2^-127 builds as 0): below -87.3 the result is a denormal or 0.
    const __m256 m = _mm256_max_ps(
        _mm256_set1_ps(-127.f),
        _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f))));
    // r = x - m ln(2) in two FMAs, ln(2) split as Eigen's generic pexp splits it (its AVX-512 pexp takes
    // one).
    const __m256 r = _mm256_fmadd_ps(m, _mm256_set1_ps(2.12194440e-4f),
                                     _mm256_fmadd_ps(m, _mm256_set1_ps(-0.693359375f), x));
    const __m256 y = simd::exp_polynomial(r);
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
  }
#endif
  return ei::pexp(x);
}

/// exp(s - max) lane by lane, exactly 0 where the score is -inf (a hidden key): the exp of -inf alone is not
/// 0 (Eigen's exp clamps its argument; softmax_exp gives NaN).
template <class T>
Packet<T> masked_exp(Packet<T> s, Packet<T> max) {
  namespace ei = Eigen::internal;
  const Packet<T> hidden = ei::pset1<Packet<T>>(-std::numeric_limits<T>::infinity());
  return ei::pandnot(softmax_exp<T>(ei::psub(s, max)), ei::pcmp_eq(s, hidden));
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
