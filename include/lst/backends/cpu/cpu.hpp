// SPDX-License-Identifier: MIT
/// @file cpu.hpp
/// @brief The CPU backend: expression evaluation and every op's definition on host memory.
#pragma once

#include "activation.hpp"
#include "attention.hpp"
#include "dropout.hpp"
#include "embedding.hpp"
#include "executor.hpp"
#include "gate.hpp"
#include "gather_rows.hpp"
#include "gemm.hpp"
#include "layer_norm.hpp"
#include "linear.hpp"
#include "losses.hpp"
#include "packed_rows.hpp"
#include "threads.hpp"
