// SPDX-License-Identifier: MIT
/// @file config.hpp
/// @brief Version, ABI namespace and the one place that inspects the compiler (ARCHITECTURE.md, "three
/// tiers").
#pragma once

#define LST_VERSION_MAJOR 0
#define LST_VERSION_MINOR 1
#define LST_VERSION_PATCH 0
#define LST_VERSION_STRING "0.1.0"

// The inline ABI namespace carries the version, so two differently-versioned copies of lst linked into one
// program do not silently share (and violate ODR on) inline functions (as in Thrust's THRUST_NAMESPACE).
#define LST_ABI_NAMESPACE v0_1
#define LST_NAMESPACE_BEGIN \
  namespace lst {           \
  inline namespace LST_ABI_NAMESPACE {
#define LST_NAMESPACE_END \
  }                       \
  }

// Host/device qualifiers. Only the CUDA compiler sees __host__ __device__; g++ sees plain inline functions.
// Nothing else in the library may test __CUDACC__ (ODR: an inline function must read the same for both).
#if defined(__CUDACC__)
#define LST_HOST_DEVICE __host__ __device__
#define LST_KERNEL_TIER 1
#else
#define LST_HOST_DEVICE
#define LST_KERNEL_TIER 0
#endif

// Tier 2 (CUDA host code: device memory, cuBLAS) is opt-in through the lst::cuda CMake target.
#ifndef LST_WITH_CUDA
#define LST_WITH_CUDA 0
#endif

// Alignment of every buffer the library allocates: one cache line, and a whole AVX-512 register.
#ifndef LST_ALIGNMENT
#define LST_ALIGNMENT 64
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LST_RESTRICT __restrict__
#define LST_ALWAYS_INLINE inline __attribute__((always_inline))
#define LST_PREFETCH(address) __builtin_prefetch((address), 0, 3)  // read, into every cache level
#else
#define LST_RESTRICT
#define LST_ALWAYS_INLINE inline
#define LST_PREFETCH(address) ((void)(address))
#endif

LST_NAMESPACE_BEGIN
/// The library version as "MAJOR.MINOR.PATCH".
inline const char* version_string() noexcept { return LST_VERSION_STRING; }
LST_NAMESPACE_END
