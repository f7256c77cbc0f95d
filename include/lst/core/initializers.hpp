// SPDX-License-Identifier: MIT
/// @file initializers.hpp
/// @brief Parameter initialisers: normal, uniform, constant.
#pragma once

#include "random.hpp"
#include "tensor.hpp"

LST_NAMESPACE_BEGIN
namespace init {

/// N(mean, std^2) into every element (BERT initialises its weights with std 0.02; LST's ladders with 0.01).
template <class T>
void normal(const TensorView<T, Cpu>& w, Rng& rng, double std, double mean = 0.0) {
  for (index_t i = 0; i < w.numel(); ++i) w.data()[i] = static_cast<T>(mean + std * rng.normal());
}
/// U(lo, hi) into every element.
template <class T>
void uniform(const TensorView<T, Cpu>& w, Rng& rng, double lo, double hi) {
  for (index_t i = 0; i < w.numel(); ++i) w.data()[i] = static_cast<T>(rng.uniform(lo, hi));
}
template <class T>
void constant(const TensorView<T, Cpu>& w, T value) {
  w.fill(value);
}

}  // namespace init
LST_NAMESPACE_END
