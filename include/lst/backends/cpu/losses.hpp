// SPDX-License-Identifier: MIT
/// @file losses.hpp
/// @brief The CPU's losses (ops/losses.hpp): serial loops over the rows, summed in double in row order.
#pragma once

#include <cmath>
#include <cstdint>

#include "../../ops/losses.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct LossKernel<Cpu> {
  template <class T>
  static CrossEntropySum cross_entropy(const T* logits, const std::int32_t* labels, index_t N, index_t K,
                                       T* dlogits) {
    CrossEntropySum s;
    for (index_t n = 0; n < N; ++n) {
      const std::int32_t y = labels[n];
      if (y >= K) {
        s.bad_row = n;
        s.bad_label = y;
        return s;
      }
      s.counted += y >= 0;
    }
    double loss = 0;
    const T inv = s.counted ? T(1) / T(s.counted) : T(0);
    for (index_t n = 0; n < N; ++n) {
      const T* z = logits + n * K;
      const std::int32_t y = labels[n];
      T mx = z[0];
      for (index_t j = 1; j < K; ++j) mx = z[j] > mx ? z[j] : mx;
      T sum = 0;
      for (index_t j = 0; j < K; ++j) sum += std::exp(z[j] - mx);
      const T lse = mx + std::log(sum);
      if (y >= 0) loss += double(lse - z[y]);
      if (dlogits) {
        T* d = dlogits + n * K;
        for (index_t j = 0; j < K; ++j)
          d[j] = y >= 0 ? (std::exp(z[j] - lse) - (j == y ? T(1) : T(0))) * inv : T(0);
      }
    }
    s.sum = loss;
    return s;
  }

  template <class T>
  static double squared_error(const T* pred, const T* target, index_t N, T* dpred) {
    double loss = 0;
    for (index_t n = 0; n < N; ++n) {
      const T e = pred[n] - target[n];
      loss += double(e) * double(e);
      if (dpred) dpred[n] = T(2) * e / T(N);
    }
    return loss;
  }
};
}  // namespace ops

LST_NAMESPACE_END
