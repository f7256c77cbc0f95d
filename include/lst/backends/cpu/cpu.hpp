// SPDX-License-Identifier: MIT
/// @file cpu.hpp
/// @brief The CPU backend: expression evaluation and GEMM on host memory.
#pragma once

#include "executor.hpp"
#include "gemm.hpp"
