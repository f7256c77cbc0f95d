// SPDX-License-Identifier: MIT
/// @file gelu.hpp
/// @brief GELU (erf form) and its slope over flat float arrays on the CPU: y = x Phi(x) and
///        slope = Phi(x) + x phi(x), Phi the standard normal CDF and phi its density.
///
/// Eigen's float erf (generic_fast_erf_float) is a 13/8-degree rational function on [-4, 4]: a dozen FMAs and
/// one division per packet, and GELU runs over every FFN element twice per training step (forward, and its
/// slope in backward): 6 % of a cached LST epoch. Here each element takes one pass that loads x once, with
/// AVX-512 (16 lanes) or AVX2 and FMA (8 lanes). On AVX-512 the division (vdivps, one every ~10 cycles) would
/// cost as much as all the FMAs together, so the same polynomials are divided through a reciprocal estimate
/// and one correction step (within about an ulp of the quotient); with AVX2 it is Eigen's division. Elsewhere
/// (double, or neither ISA) Eigen's array erf, as before.
///
/// In the vector kernels a float's result depends on its value alone, never on its position: the ragged end
/// runs through masked loads and stores of the same vector code, so a chunked, threaded call gives the bits
/// of a single one. (Eigen's path takes scalar code for the elements before its first aligned packet.) NaN
/// stays NaN in y and in the slope: every clamp takes its constant first, and vminps / vmaxps return the
/// second operand when either is NaN.
#pragma once

#include <algorithm>
#include <type_traits>

#include <unsupported/Eigen/SpecialFunctions>

#include "row_math.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

namespace gelu_detail {
constexpr double inv_sqrt2 = 0.70710678118654752440;
constexpr double inv_sqrt_2pi = 0.39894228040143267794;

/// out = x phi(x) for Eigen's path, x clamped to [-13, 13] as in slope_lanes: below 1.2e-36 outside, where
/// the unclamped product is inf * 0 = NaN at x = +-inf (the slope there is 1 or 0). Comparisons, not min /
/// max, so that a NaN (false in both) stays a NaN. Elementwise, so out may be x.
template <class T>
void x_times_density(const T* x, T* out, index_t n) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  const Eigen::Map<const Array> xa(x, n);
  Eigen::Map<Array> o(out, n);
  o = (xa > T(13)).select(T(13), (xa < T(-13)).select(T(-13), xa));  // clamped x
  o = o * T(inv_sqrt_2pi) * (T(-0.5) * o * o).exp();
}

/// Eigen's path in blocks of `block` elements, so that x phi(x) lives in a stack buffer, not a heap
/// temporary.
constexpr index_t block = 256;
template <class F>
void for_each_block(index_t n, F&& f) {
  for (index_t i = 0; i < n; i += block) f(i, std::min(block, n - i));
}

#if defined(LST_CPU_LANES)
using Lanes = simd::Lanes;
using V = Lanes::V;

/// erf(x) lane by lane: Eigen's clamp to [-4, 4] (outside it fl(erf) = +-1) and its numerator and
/// denominator.
inline V erf_lanes(V x) {
  using S = Lanes;
  x = S::max(S::set1(-4.f), S::min(S::set1(4.f), x));
  const V x2 = S::mul(x, x);
  V p = S::fma(x2, S::set1(-2.72614225801306e-10f), S::set1(2.77068142495902e-08f));
  p = S::fma(x2, p, S::set1(-2.10102402082508e-06f));
  p = S::fma(x2, p, S::set1(-5.69250639462346e-05f));
  p = S::fma(x2, p, S::set1(-7.34990630326855e-04f));
  p = S::fma(x2, p, S::set1(-2.95459980854025e-03f));
  p = S::fma(x2, p, S::set1(-1.60960333262415e-02f));
  p = S::mul(x, p);
  V q = S::fma(x2, S::set1(-1.45660718464996e-05f), S::set1(-2.13374055278905e-04f));
  q = S::fma(x2, q, S::set1(-1.68282697438203e-03f));
  q = S::fma(x2, q, S::set1(-7.37332916720468e-03f));
  q = S::fma(x2, q, S::set1(-1.42647390514189e-02f));
  return S::quotient(p, q);
}

/// Phi(x) = (1 + erf(x / sqrt 2)) / 2.
inline V normal_cdf_lanes(V x) {
  using S = Lanes;
  const V half = S::set1(0.5f);
  return S::fma(erf_lanes(S::mul(x, S::set1(float(inv_sqrt2)))), half, half);
}

/// Phi(x) + x phi(x), given Phi(x); x is clamped to [-13, 13] for x phi(x), which is below 1.2e-36 there
/// (exp's argument would otherwise leave softmax_exp's range). The last step is an explicit FMA so that no
/// caller's compiler contracts it its own way: the slope stored by gelu_erf_and_slope must be the one
/// gelu_erf_gradient multiplies by.
inline V slope_lanes(V x, V cdf) {
  using S = Lanes;
  const V xc = S::max(S::set1(-13.f), S::min(S::set1(13.f), x));
  const V e = softmax_exp<float>(S::mul(S::mul(xc, S::set1(-0.5f)), xc));
  return S::fma(S::mul(xc, S::set1(float(inv_sqrt_2pi))), e, cdf);
}

/// f(mask, offset) over [0, n) in whole vectors, the last one masked.
template <class F>
inline void for_each_packet(index_t n, F&& f) {
  constexpr index_t L = Lanes::size;
  index_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {  // two independent vectors per iteration
    f(Lanes::all(), i);
    f(Lanes::all(), i + L);
  }
  for (; i + L <= n; i += L) f(Lanes::all(), i);
  if (i < n) f(Lanes::first(n - i), i);
}
#endif
}  // namespace gelu_detail

/// y = x Phi(x) over n values.
template <class T>
void gelu_erf(const T* x, T* y, index_t n) {
#if defined(LST_CPU_LANES)
  if constexpr (std::is_same_v<T, float>) {
    using S = simd::Lanes;
    gelu_detail::for_each_packet(n, [&](S::Mask m, index_t i) {
      const S::V v = S::load(m, x + i);
      S::store(m, y + i, S::mul(v, gelu_detail::normal_cdf_lanes(v)));
    });
    return;
  }
#endif
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  const Eigen::Map<const Array> xa(x, n);
  Eigen::Map<Array>(y, n) = T(0.5) * xa * (T(1) + (xa * T(gelu_detail::inv_sqrt2)).erf());
}

/// y = x Phi(x) and slope = Phi(x) + x phi(x) from one erf. dy * slope is gelu_erf_gradient's dx bit for bit.
template <class T>
void gelu_erf_and_slope(const T* x, T* y, T* slope, index_t n) {
#if defined(LST_CPU_LANES)
  if constexpr (std::is_same_v<T, float>) {
    using S = simd::Lanes;
    gelu_detail::for_each_packet(n, [&](S::Mask m, index_t i) {
      const S::V v = S::load(m, x + i), cdf = gelu_detail::normal_cdf_lanes(v);
      S::store(m, y + i, S::mul(v, cdf));
      S::store(m, slope + i, gelu_detail::slope_lanes(v, cdf));
    });
    return;
  }
#endif
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  gelu_detail::for_each_block(n, [&](index_t i, index_t m) {
    T x_phi[gelu_detail::block];
    gelu_detail::x_times_density(x + i, x_phi, m);
    const Eigen::Map<const Array> xa(x + i, m), xpa(x_phi, m);
    Eigen::Map<Array> ya(y + i, m), sa(slope + i, m);
    ya = T(0.5) * (T(1) + (xa * T(gelu_detail::inv_sqrt2)).erf());  // Phi(x), for now
    sa = ya + xpa;
    ya *= xa;
  });
}

/// dx = dy * (Phi(x) + x phi(x)).
template <class T>
void gelu_erf_gradient(const T* x, const T* dy, T* dx, index_t n) {
#if defined(LST_CPU_LANES)
  if constexpr (std::is_same_v<T, float>) {
    using S = simd::Lanes;
    gelu_detail::for_each_packet(n, [&](S::Mask m, index_t i) {
      const S::V v = S::load(m, x + i);
      const S::V slope = gelu_detail::slope_lanes(v, gelu_detail::normal_cdf_lanes(v));
      S::store(m, dx + i, S::mul(S::load(m, dy + i), slope));
    });
    return;
  }
#endif
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  gelu_detail::for_each_block(n, [&](index_t i, index_t m) {
    T x_phi[gelu_detail::block];
    gelu_detail::x_times_density(x + i, x_phi, m);
    const Eigen::Map<const Array> xa(x + i, m), dya(dy + i, m), xpa(x_phi, m);
    Eigen::Map<Array>(dx + i, m) = dya * (T(0.5) * (T(1) + (xa * T(gelu_detail::inv_sqrt2)).erf()) + xpa);
  });
}

}  // namespace cpu
LST_NAMESPACE_END
