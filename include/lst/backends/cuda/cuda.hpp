// SPDX-License-Identifier: MIT
/// @file cuda.hpp
/// @brief CUDA backend, host tier (tier 2): device memory, streams, cuBLAS. Compiles with g++; enabled by
///        LST_WITH_CUDA=1, which the lst::cuda CMake target will set (ARCHITECTURE.md, "three tiers").
///
/// This tier holds only its structure and switches so far: the `Cuda` backend tag (fwd.hpp), the qualifier
/// macros (config.hpp) and this guard. Allocator<Cuda>, Executor<Cuda> and the cuBLAS GEMM come with the CUDA
/// work; until then a program that names the Cuda backend fails to compile, never at run time.
#pragma once

#include "../../config.hpp"

#if !LST_WITH_CUDA
#error \
    "lst/backends/cuda/cuda.hpp needs LST_WITH_CUDA=1 (link the lst::cuda target); CPU users include lst/lst.hpp"
#endif
