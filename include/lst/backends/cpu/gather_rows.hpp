// SPDX-License-Identifier: MIT
/// @file gather_rows.hpp
/// @brief The CPU's row gather (ops/gather_rows.hpp).
#pragma once

#include "../../ops/gather_rows.hpp"
#include "narrow_gemm.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
template <>
struct GatherRowsKernel<Cpu> {
  template <class T>
  static void gather(const RowTable<T>& x, T* out) {
    cpu::gather_rows(x.row, x.rows, x.cols, out);
  }
};
}  // namespace ops

LST_NAMESPACE_END
