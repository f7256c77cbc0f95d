// SPDX-License-Identifier: MIT
/// @file memory_tracker.hpp
/// @brief Byte accounting by category, current and peak: "it tells them exactly where every byte went".
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <string>

#include "../fwd.hpp"

LST_NAMESPACE_BEGIN

/// What an allocation is for. Every buffer the library allocates carries exactly one.
enum class MemCategory : int {
  weights,      ///< parameters, trainable or frozen
  gradients,    ///< parameter gradients
  optimizer,    ///< optimizer state (AdamW moments, momentum)
  activations,  ///< tensors saved by forward for backward
  taps,         ///< backbone outputs handed to a side network (ladder inputs), cached or live
  workspace,    ///< everything else: layer outputs, temporaries of backward, scratch
};
inline constexpr int num_mem_categories = 6;

inline const char* to_string(MemCategory c) {
  static const char* const names[num_mem_categories] = {"weights",     "gradients", "optimizer",
                                                        "activations", "taps",      "workspace"};
  return names[static_cast<int>(c)];
}

/// Current and peak bytes per category and in total, plus the number of allocations made.
///
/// Counts the bytes the allocator really hands out (sizes rounded up to LST_ALIGNMENT), so the figures
/// agree with what the process feels. The total peak is the peak of the sum, not the sum of the peaks.
/// Thread-safe: counters are atomics, peaks are raised with compare-exchange.
class MemoryTracker {
 public:
  struct Snapshot {
    std::array<std::size_t, num_mem_categories> current{}, peak{};
    std::size_t total_current = 0, total_peak = 0, allocations = 0;
  };

  void on_allocate(MemCategory c, std::size_t bytes) noexcept {
    const int i = static_cast<int>(c);
    raise_peak(m_peak[i], m_current[i].fetch_add(bytes) + bytes);
    raise_peak(m_total_peak, m_total.fetch_add(bytes) + bytes);
    m_allocations.fetch_add(1);
  }
  void on_free(MemCategory c, std::size_t bytes) noexcept {
    m_current[static_cast<int>(c)].fetch_sub(bytes);
    m_total.fetch_sub(bytes);
  }

  std::size_t current(MemCategory c) const noexcept { return m_current[static_cast<int>(c)].load(); }
  std::size_t peak(MemCategory c) const noexcept { return m_peak[static_cast<int>(c)].load(); }
  std::size_t total_current() const noexcept { return m_total.load(); }
  std::size_t total_peak() const noexcept { return m_total_peak.load(); }
  /// Allocations made since construction: a test that an operation allocates nothing compares two reads.
  std::size_t allocation_count() const noexcept { return m_allocations.load(); }

  /// Starts a new measurement window: every peak becomes the current value.
  void reset_peaks() noexcept {
    for (int i = 0; i < num_mem_categories; ++i) m_peak[i].store(m_current[i].load());
    m_total_peak.store(m_total.load());
  }

  Snapshot snapshot() const noexcept {
    Snapshot s;
    for (int i = 0; i < num_mem_categories; ++i) {
      s.current[i] = m_current[i].load();
      s.peak[i] = m_peak[i].load();
    }
    s.total_current = m_total.load();
    s.total_peak = m_total_peak.load();
    s.allocations = m_allocations.load();
    return s;
  }

  /// A table of current and peak bytes per category, in MiB with the exact byte counts beside them.
  std::string report(const char* title = "lst memory") const {
    const Snapshot s = snapshot();
    std::string out;
    char line[160];
    std::snprintf(line, sizeof line, "%s\n  %-12s %12s %16s %12s %16s\n", title, "category", "current MiB",
                  "current bytes", "peak MiB", "peak bytes");
    out += line;
    auto row = [&](const char* name, std::size_t cur, std::size_t pk) {
      std::snprintf(line, sizeof line, "  %-12s %12.2f %16zu %12.2f %16zu\n", name, cur / 1048576.0, cur,
                    pk / 1048576.0, pk);
      out += line;
    };
    for (int i = 0; i < num_mem_categories; ++i)
      row(to_string(static_cast<MemCategory>(i)), s.current[i], s.peak[i]);
    row("total", s.total_current, s.total_peak);
    return out;
  }

 private:
  static void raise_peak(std::atomic<std::size_t>& peak, std::size_t value) noexcept {
    std::size_t seen = peak.load();
    while (value > seen && !peak.compare_exchange_weak(seen, value)) {
    }
  }

  std::array<std::atomic<std::size_t>, num_mem_categories> m_current{}, m_peak{};
  std::atomic<std::size_t> m_total{0}, m_total_peak{0}, m_allocations{0};
};

/// The tracker of one backend's memory (host memory for Cpu, device memory for Cuda): one per process.
template <class Backend = Cpu>
MemoryTracker& memory_tracker() {
  static MemoryTracker tracker;
  return tracker;
}

LST_NAMESPACE_END
