// SPDX-License-Identifier: MIT
/// @file half.hpp
/// @brief Half-precision conversion of arrays: float to and from f16 / bf16 bits (saved ladder inputs, the
///        tap cache), dispatched on a backend tag (Cpu unless named).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../core/dtype.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's bulk conversions (backends/<name>/half.hpp): `floats_to_f16`, `f16_to_floats`,
/// `floats_to_bf16`, `bf16_to_floats`, each (in, out, n) and each the values of to_f16 / to_bf16 / to_float
/// element by element (a NaN may keep other payload bits).
template <class Backend>
struct HalfKernel;
}  // namespace ops

template <class Backend = Cpu>
void floats_to_f16(const float* in, std::uint16_t* out, std::size_t n) {
  ops::HalfKernel<Backend>::floats_to_f16(in, out, n);
}
template <class Backend = Cpu>
void f16_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
  ops::HalfKernel<Backend>::f16_to_floats(in, out, n);
}
template <class Backend = Cpu>
void floats_to_bf16(const float* in, std::uint16_t* out, std::size_t n) {
  ops::HalfKernel<Backend>::floats_to_bf16(in, out, n);
}
template <class Backend = Cpu>
void bf16_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
  ops::HalfKernel<Backend>::bf16_to_floats(in, out, n);
}

LST_NAMESPACE_END

#include "../backends/cpu/half.hpp"
