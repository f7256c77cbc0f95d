// SPDX-License-Identifier: MIT
/// @file gelu.hpp
/// @brief GELU (erf form) and its slope over flat float arrays on the CPU: y = x Phi(x) and
///        slope = Phi(x) + x phi(x), Phi the standard normal CDF and phi its density.
///
/// Eigen's float erf (generic_fast_erf_float) is a 13/8-degree rational function on [-4, 4]: a dozen FMAs and
/// one division per packet. On AVX-512 the division (vdivps, one every ~10 cycles) costs as much as all the
/// FMAs together, and GELU runs over every FFN element twice per training step (forward, and its slope in
/// backward): 6 % of a cached LST epoch. Here the same polynomials are divided through a reciprocal estimate
/// and one correction step (within about an ulp of the quotient), each element in one pass that
/// loads x once. Elsewhere (double, no AVX-512) Eigen's array erf, as before.
///
/// On AVX-512 a float's result depends on its value alone, never on its position: the ragged end runs through
/// masked loads and stores of the same vector code, so a chunked, threaded call gives the bits of a single
/// one. (Eigen's path, elsewhere, takes scalar code for the elements before its first aligned packet.) NaN
/// stays NaN in y and in the slope: every clamp takes its constant first, and vminps / vmaxps return the
/// second operand when either is NaN.
#pragma once

#include <type_traits>

#include <unsupported/Eigen/SpecialFunctions>

#include "row_math.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

namespace gelu_detail {
constexpr double inv_sqrt2 = 0.70710678118654752440;
constexpr double inv_sqrt_2pi = 0.39894228040143267794;

/// x phi(x) for Eigen's path, x clamped to [-13, 13] as in slope16: below 1.2e-36 outside, where the
/// unclamped product is inf * 0 = NaN at x = +-inf (the slope there is 1 or 0). Comparisons, not min / max,
/// so that a NaN (false in both) stays a NaN.
template <class ArrayExpr>
auto x_times_density(const ArrayExpr& x) {
  using T = typename ArrayExpr::Scalar;
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  const Array xc = (x > T(13)).select(T(13), (x < T(-13)).select(T(-13), x));
  return (xc * T(inv_sqrt_2pi) * (T(-0.5) * xc * xc).exp()).eval();
}

#if defined(__AVX512F__)
/// erf(x) lane by lane: Eigen's clamp to [-4, 4] (outside it fl(erf) = +-1) and its numerator and
/// denominator.
inline __m512 erf16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-4.f), _mm512_min_ps(_mm512_set1_ps(4.f), x));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p =
      _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.72614225801306e-10f), _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(x, p);
  __m512 q =
      _mm512_fmadd_ps(x2, _mm512_set1_ps(-1.45660718464996e-05f), _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.42647390514189e-02f));
  // p / q from a 14-bit estimate r of 1/q: t = p r, then t + (p - q t) r with the residual exact in the FMA
  // (Markstein's correction), which leaves the quotient within about an ulp, as the division. q lies in
  // [-0.21, -0.014], far from 0 and from overflow.
  const __m512 r = _mm512_rcp14_ps(q), t = _mm512_mul_ps(p, r);
  return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, t, p), r, t);
}

/// Phi(x) = (1 + erf(x / sqrt 2)) / 2.
inline __m512 normal_cdf16(__m512 x) {
  const __m512 half = _mm512_set1_ps(0.5f);
  return _mm512_fmadd_ps(erf16(_mm512_mul_ps(x, _mm512_set1_ps(float(inv_sqrt2)))), half, half);
}

/// Phi(x) + x phi(x), given Phi(x); x is clamped to [-13, 13] for x phi(x), which is below 1.2e-36 there
/// (exp's argument would otherwise leave softmax_exp's range). The last step is an explicit FMA so that no
/// caller's compiler contracts it its own way: the slope stored by gelu_erf_and_slope must be the one
/// gelu_erf_gradient multiplies by.
inline __m512 slope16(__m512 x, __m512 cdf) {
  const __m512 xc = _mm512_max_ps(_mm512_set1_ps(-13.f), _mm512_min_ps(_mm512_set1_ps(13.f), x));
  const __m512 e = softmax_exp<float>(_mm512_mul_ps(_mm512_mul_ps(xc, _mm512_set1_ps(-0.5f)), xc));
  return _mm512_fmadd_ps(_mm512_mul_ps(xc, _mm512_set1_ps(float(inv_sqrt_2pi))), e, cdf);
}

/// f(mask, offset) over [0, n) in packets of 16, the last one masked.
template <class F>
inline void for_each_packet(index_t n, F&& f) {
  index_t i = 0;
  for (; i + 32 <= n; i += 32) {  // two independent packets per iteration
    f(static_cast<__mmask16>(0xFFFF), i);
    f(static_cast<__mmask16>(0xFFFF), i + 16);
  }
  for (; i + 16 <= n; i += 16) f(static_cast<__mmask16>(0xFFFF), i);
  if (i < n) f(static_cast<__mmask16>((1u << (n - i)) - 1u), i);
}
#endif
}  // namespace gelu_detail

/// y = x Phi(x) over n values.
template <class T>
void gelu_erf(const T* x, T* y, index_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    gelu_detail::for_each_packet(n, [&](__mmask16 m, index_t i) {
      const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
      _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, gelu_detail::normal_cdf16(v)));
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
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    gelu_detail::for_each_packet(n, [&](__mmask16 m, index_t i) {
      const __m512 v = _mm512_maskz_loadu_ps(m, x + i), cdf = gelu_detail::normal_cdf16(v);
      _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, cdf));
      _mm512_mask_storeu_ps(slope + i, m, gelu_detail::slope16(v, cdf));
    });
    return;
  }
#endif
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  const Eigen::Map<const Array> xa(x, n);
  Eigen::Map<Array> ya(y, n), sa(slope, n);
  ya = T(0.5) * (T(1) + (xa * T(gelu_detail::inv_sqrt2)).erf());  // Phi(x), for now
  sa = ya + gelu_detail::x_times_density(xa);
  ya *= xa;
}

/// dx = dy * (Phi(x) + x phi(x)).
template <class T>
void gelu_erf_gradient(const T* x, const T* dy, T* dx, index_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    gelu_detail::for_each_packet(n, [&](__mmask16 m, index_t i) {
      const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
      const __m512 slope = gelu_detail::slope16(v, gelu_detail::normal_cdf16(v));
      _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), slope));
    });
    return;
  }
#endif
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  const Eigen::Map<const Array> xa(x, n), dya(dy, n);
  Eigen::Map<Array>(dx, n) =
      dya * (T(0.5) * (T(1) + (xa * T(gelu_detail::inv_sqrt2)).erf()) + gelu_detail::x_times_density(xa));
}

}  // namespace cpu
LST_NAMESPACE_END
