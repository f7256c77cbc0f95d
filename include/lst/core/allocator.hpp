// SPDX-License-Identifier: MIT
/// @file allocator.hpp
/// @brief Tracked, aligned raw allocation per backend, and the owning Buffer built on it.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "error.hpp"
#include "memory_tracker.hpp"

LST_NAMESPACE_BEGIN

/// Raw memory of a backend. Specialised per backend tag; Cpu here, Cuda in backends/cuda (tier 2).
template <class Backend>
struct Allocator;

template <>
struct Allocator<Cpu> {
  /// The bytes really taken for a request: rounded up to the alignment, as aligned_alloc requires.
  static constexpr std::size_t footprint(std::size_t bytes) noexcept {
    return (bytes + LST_ALIGNMENT - 1) / LST_ALIGNMENT * LST_ALIGNMENT;
  }
  static void* allocate(std::size_t bytes, MemCategory category) {
    const std::size_t size = footprint(bytes);
    if (size == 0) return nullptr;
    void* p = std::aligned_alloc(LST_ALIGNMENT, size);
    if (!p)
      detail::raise<Error>("lst: out of host memory allocating ", size, " bytes of ", to_string(category),
                           " (", memory_tracker<Cpu>().total_current(), " bytes already held by lst)");
    memory_tracker<Cpu>().on_allocate(category, size);
    return p;
  }
  static void deallocate(void* p, std::size_t bytes, MemCategory category) noexcept {
    if (!p) return;
    std::free(p);
    memory_tracker<Cpu>().on_free(category, footprint(bytes));
  }
};

namespace detail {
/// Owns `count` elements of T in one tracked allocation. Move-only. Elements are left uninitialised:
/// every producer in the library writes a whole tensor, and zero-filling gigabytes of activations would cost
/// a full memory pass for nothing.
template <class T, class Backend>
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::size_t count, MemCategory category)
      : m_data(static_cast<T*>(Allocator<Backend>::allocate(checked_bytes(count), category))),
        m_count(count),
        m_category(category) {}
  Buffer(Buffer&& o) noexcept
      : m_data(std::exchange(o.m_data, nullptr)),
        m_count(std::exchange(o.m_count, 0)),
        m_category(o.m_category) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      m_data = std::exchange(o.m_data, nullptr);
      m_count = std::exchange(o.m_count, 0);
      m_category = o.m_category;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  T* data() const noexcept { return m_data; }
  std::size_t size() const noexcept { return m_count; }
  MemCategory category() const noexcept { return m_category; }

 private:
  static std::size_t checked_bytes(std::size_t count) {
    if (count > (std::size_t(-1) - LST_ALIGNMENT) / sizeof(T))
      raise<Error>("lst: a buffer of ", count, " elements of ", sizeof(T),
                   " bytes overflows the address space");
    return count * sizeof(T);
  }
  void release() noexcept {
    Allocator<Backend>::deallocate(m_data, m_count * sizeof(T), m_category);
    m_data = nullptr;
    m_count = 0;
  }

  T* m_data = nullptr;
  std::size_t m_count = 0;
  MemCategory m_category = MemCategory::workspace;
};
}  // namespace detail

/// Asks the C library to keep freed tensor memory for the next allocation instead of handing it back to the
/// kernel. A training step frees and reallocates the same activation tensors every step; with glibc's
/// defaults blocks above its mmap threshold are unmapped on free and the heap top is trimmed, so every step
/// faults its activations in again from zeroed pages (8 % of a full fine-tuning step of all-MiniLM-L6-v2,
/// measured with perf). This raises the mmap threshold to glibc's maximum (32 MiB on 64-bit) and the trim
/// threshold to 1 GiB. The peak RSS does not change (the same blocks are reused); the RSS between steps stays
/// at the peak, as with PyTorch's caching allocator. It also keeps one malloc arena for all threads: with
/// glibc's per-thread arenas, blocks a worker thread freed (the LST training step's second side-network
/// shard) were kept for that thread alone, and the process's peak RSS became the sum of each arena's peak
/// (+15 MiB over the tracker in the training-step bench) instead of the peak of their sum. Process-wide, so
/// the library never calls it itself: programs opt in (lst's own do), before starting threads. Returns false
/// where it is not supported (not glibc, or malloc replaced, as under AddressSanitizer).
inline bool retain_freed_host_memory() {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
         mallopt(M_ARENA_MAX, 1) == 1;
#else
  return false;
#endif
}

LST_NAMESPACE_END
