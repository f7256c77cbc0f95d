// SPDX-License-Identifier: MIT
/// @file fwd.hpp
/// @brief Forward declarations of the public types: backend tags, tensors, layers.
#pragma once

#include <cstdint>

#include "config.hpp"

LST_NAMESPACE_BEGIN

/// Index type of every extent and offset: signed, so that `i - 1` and reverse loops never wrap.
using index_t = std::int64_t;

/// Backend tags: types, not values, so that overload resolution picks the implementation (Thrust's
/// system tags). `Cpu` evaluates with plain C++ and Eigen; `Cuda` with cuBLAS and kernels (tier 2/3).
struct Cpu {};
struct Cuda {};

/// Whether a backend's memory is host memory, which the program may read and write element by element.
template <class Backend>
inline constexpr bool is_host_backend_v = false;
template <>
inline constexpr bool is_host_backend_v<Cpu> = true;

enum class MemCategory : int;
class MemoryTracker;

struct Shape;
template <class T, class Backend = Cpu>
class Tensor;
template <class T, class Backend = Cpu>
class TensorView;

/// Training keeps what backward needs in a context; inference keeps nothing (ARCHITECTURE.md, contracts).
enum class Mode { training, inference };

/// What a layer's backward does with parameter gradients (tiny-cuda-nn's GradientMode):
/// `ignore` skips them (frozen), `overwrite` writes them, `accumulate` adds to them.
enum class GradMode { ignore, overwrite, accumulate };

LST_NAMESPACE_END
