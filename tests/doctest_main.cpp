// SPDX-License-Identifier: MIT
// The test runner's main, and the one TU that instantiates the CPU GEMM for every test
// (LST_EXTERN_TEMPLATES).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <lst/backends/cpu/gemm_instances.hpp>
