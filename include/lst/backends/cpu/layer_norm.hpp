// SPDX-License-Identifier: MIT
/// @file layer_norm.hpp
/// @brief The CPU's LayerNorm rows (ops/layer_norm.hpp): rows split over threads, SIMD row reductions.
#pragma once

#include <cmath>

#include "../../ops/layer_norm.hpp"
#include "row_math.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct LayerNormKernel<Cpu> {
  template <class T>
  static void forward(const T* x, const T* g, const T* b, T eps, T* y, T* xhat, T* rstd_out, index_t rows,
                      index_t c) {
    // Rows are independent: each is one thread's, whatever the thread count (y may alias x).
    LST_PARALLEL_FOR_IF(rows * c >= parallel_min_elements)
    for (index_t r = 0; r < rows; ++r) {
      const T* xr = x + r * c;
      T* yr = y + r * c;
      // Both passes are SIMD reductions (a scalar sum is one long dependency chain).
      const T mean = cpu::sum(xr, c) / T(c);
      const T var = cpu::centred_square_sum(xr, mean, c) / T(c);
      const T rstd = T(1) / std::sqrt(var + eps);
      if (xhat) {
        T* h = xhat + r * c;
        for (index_t j = 0; j < c; ++j) h[j] = (xr[j] - mean) * rstd;
        rstd_out[r] = rstd;
      }
      for (index_t j = 0; j < c; ++j) yr[j] = (xr[j] - mean) * rstd * g[j] + b[j];
    }
  }

  template <class T>
  static void parameter_gradients(const T* xhat, const T* dy, T* dg, T* db, index_t rows, index_t c) {
    for (index_t r = 0; r < rows; ++r) {
      const T* h = xhat + r * c;
      const T* g = dy + r * c;
      if (dg && db) {
        for (index_t j = 0; j < c; ++j) {
          dg[j] += g[j] * h[j];
          db[j] += g[j];
        }
      } else if (dg) {
        for (index_t j = 0; j < c; ++j) dg[j] += g[j] * h[j];
      } else if (db) {
        for (index_t j = 0; j < c; ++j) db[j] += g[j];
      }
    }
  }

  template <class T>
  static void input_gradient(const T* xhat, const T* rstd, const T* gamma, const T* dy, T* dx, index_t rows,
                             index_t c) {
    LST_PARALLEL_FOR_IF(rows * c >= parallel_min_elements)
    for (index_t r = 0; r < rows; ++r) {
      const T* h = xhat + r * c;
      const T* g = dy + r * c;
      const T mean_g = cpu::dot(g, gamma, c) / T(c);
      const T mean_gh = cpu::dot3(g, gamma, h, c) / T(c);
      const T s = rstd[r];
      T* d = dx + r * c;  // written last: dx may alias dy
      for (index_t j = 0; j < c; ++j) d[j] = s * (g[j] * gamma[j] - mean_g - h[j] * mean_gh);
    }
  }
};
}  // namespace ops

LST_NAMESPACE_END
