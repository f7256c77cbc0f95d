// SPDX-License-Identifier: MIT
#include <lst/lst.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("The tracker counts exact bytes per category, rounded up to the alignment") {
  MemoryTracker& t = memory_tracker();
  const auto base = t.snapshot();
  {
    Tensor<float> w(Shape{10, 10}, MemCategory::weights);  // 400 bytes -> 448
    Tensor<double> g(Shape{3}, MemCategory::gradients);    // 24 -> 64
    Tensor<float> a(Shape{16}, MemCategory::activations);  // 64 -> 64
    CHECK(t.current(MemCategory::weights) - base.current[0] == 448);
    CHECK(t.current(MemCategory::gradients) - base.current[1] == 64);
    CHECK(t.current(MemCategory::activations) - base.current[3] == 64);
    CHECK(t.total_current() - base.total_current == 576);
    CHECK(t.allocation_count() - base.allocations == 3);
  }
  CHECK(t.total_current() == base.total_current);
  CHECK(t.total_peak() >= base.total_current + 576);
}

TEST_CASE("Peaks: per category and the peak of the total, not the sum of the peaks") {
  MemoryTracker t;
  t.on_allocate(MemCategory::activations, 1000);
  t.on_free(MemCategory::activations, 1000);
  t.on_allocate(MemCategory::workspace, 600);
  CHECK(t.peak(MemCategory::activations) == 1000);
  CHECK(t.peak(MemCategory::workspace) == 600);
  CHECK(t.total_peak() == 1000);
  CHECK(t.total_current() == 600);
  t.reset_peaks();
  CHECK(t.peak(MemCategory::activations) == 0);
  CHECK(t.total_peak() == 600);
  const std::string report = t.report();
  CHECK(report.find("workspace") != std::string::npos);
  CHECK(report.find("600") != std::string::npos);
}

TEST_CASE("A parameter arena makes one allocation per block, parameters aligned inside it") {
  MemoryTracker& t = memory_tracker();
  const auto base = t.snapshot();
  ParameterArena<float> arena("side");
  auto w = arena.add("w", Shape{3, 5});  // 15 floats, padded to 16
  auto b = arena.add("b", Shape{3});
  arena.allocate(true);
  CHECK(t.allocation_count() - base.allocations == 2);
  CHECK(arena.size() == 19);
  CHECK(arena.parameter_count() == 18);
  CHECK(t.current(MemCategory::weights) - base.current[0] == 128);  // 76 bytes -> 128
  CHECK(t.current(MemCategory::gradients) - base.current[1] == 128);
  CHECK(reinterpret_cast<std::uintptr_t>(b.value().data()) % LST_ALIGNMENT == 0);
  CHECK(b.value().data() - w.value().data() == 16);
  CHECK(arena.find("b").value().data() == b.value().data());
  CHECK(lst_test::error_of([&] { arena.find("nope"); }).find("nope") != std::string::npos);
  CHECK_THROWS(arena.add("late", Shape{1}));
  ParameterArena<float> frozen("backbone");
  frozen.add("w", Shape{4});
  frozen.allocate(false);
  CHECK(frozen.find("w").grad().empty());
}

// Not under AddressSanitizer: it replaces malloc, so glibc's mallopt and mallinfo2 do not apply (the call
// returns false there, as documented).
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
TEST_CASE("retain_freed_host_memory: a 16 MiB tensor comes from the kept heap, not from mmap, and stays") {
  REQUIRE(retain_freed_host_memory());
  const Shape shape{4 << 20};  // 16 MiB of floats: above glibc's default mmap threshold (128 KiB)
  const std::size_t mapped_before = mallinfo2().hblkhd;
  {
    Tensor<float> t(shape);
    t.fill(1.f);
    // From the heap: glibc's default would mmap it and munmap it on free, so the next step faults it in
    // again.
    CHECK(mallinfo2().hblkhd == mapped_before);
  }
  // Freed, the heap keeps it (the trim threshold is 1 GiB): the next tensor of this size reuses its pages.
  CHECK(mallinfo2().arena >= (std::size_t(16) << 20));
  CHECK(mallinfo2().fordblks >= (std::size_t(16) << 20));
}
#endif
