// SPDX-License-Identifier: MIT
/// @file kernels.cuh
/// @brief CUDA kernel tier (tier 3): __global__ kernels and Thrust algorithms, compiled by nvcc only.
/// Declared
///        for every compiler in the shared headers, defined here; a g++-only application adds one generated
///        .cu file that includes this header (Eigen's TensorExecutor split).
#pragma once

#include "../../../config.hpp"

#if !LST_KERNEL_TIER
#error "lst/backends/cuda/kernels/*.cuh are compiled by nvcc only (LST_KERNEL_TIER is set under __CUDACC__)"
#endif
