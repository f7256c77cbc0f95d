// SPDX-License-Identifier: MIT
/// @file gemm_instances.hpp
/// @brief Explicit instantiations of the CPU GEMM: include in exactly one TU of a project that defines
///        LST_EXTERN_TEMPLATES everywhere (see gemm.hpp).
#pragma once

#define LST_INSTANTIATING_TEMPLATES
#include "gemm.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {
template void gemm<float>(Trans, Trans, float, const MatrixRef<const float, Cpu>&,
                          const MatrixRef<const float, Cpu>&, float, const MatrixRef<float, Cpu>&);
template void gemm<double>(Trans, Trans, double, const MatrixRef<const double, Cpu>&,
                           const MatrixRef<const double, Cpu>&, double, const MatrixRef<double, Cpu>&);
}  // namespace cpu
LST_NAMESPACE_END
