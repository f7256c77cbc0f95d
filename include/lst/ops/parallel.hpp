// SPDX-License-Identifier: MIT
/// @file parallel.hpp
/// @brief Host threads for layers and methods: the thread count (set_threads, threads) and run_tasks, which
///        runs independent pieces of one pass (the LST side network's training shards) side by side.
///
/// Host threads are the CPU backend's (OpenMP, backends/cpu/threads.hpp); this header is how code above the
/// ops floor reaches them without naming OpenMP. A device backend's streams are its own business.
#pragma once

#include "../backends/cpu/threads.hpp"
