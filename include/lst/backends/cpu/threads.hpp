// SPDX-License-Identifier: MIT
/// @file threads.hpp
/// @brief CPU threads: one setting for Eigen's GEMM and lst's own parallel loops (attention heads).
///
/// Threads come from OpenMP, and only when the program is compiled with it (-fopenmp; lst's CMake links
/// OpenMP::OpenMP_CXX into its programs with LST_OPENMP=ON). Without OpenMP everything runs on one thread and
/// set_threads() is a no-op, so the header-only library never forces a threading runtime on its users.
#pragma once

#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

#include <Eigen/Core>

#include "../../config.hpp"

#if defined(_OPENMP)
#include <omp.h>
// A `for` loop whose iterations are independent, split statically over the threads (the same split every run,
// so results do not depend on scheduling). Expands to nothing without OpenMP, so -Wunknown-pragmas stays
// quiet.
#define LST_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#define LST_PRAGMA_(x) _Pragma(#x)
// The same, only when `condition` holds (large loops: a parallel region costs microseconds to start).
#define LST_PARALLEL_FOR_IF(condition) LST_PRAGMA_(omp parallel for schedule(static) if (condition))
// The same for iterations of unequal cost (one sequence of a packed batch each, whose attention costs its
// length squared): handed out one at a time as threads finish, so that no thread idles at the end while
// another works through the long sequences. Only for iterations whose results do not depend on which thread
// runs them.
#define LST_PARALLEL_FOR_UNEVEN_IF(condition) LST_PRAGMA_(omp parallel for schedule(dynamic, 1) if (condition))
#else
#define LST_PARALLEL_FOR
#define LST_PARALLEL_FOR_IF(condition)
#define LST_PARALLEL_FOR_UNEVEN_IF(condition)
#endif

LST_NAMESPACE_BEGIN
/// Elementwise loops shorter than this stay on one thread.
constexpr long parallel_min_elements = 1L << 15;
LST_NAMESPACE_END

LST_NAMESPACE_BEGIN

/// Whether this build can run on more than one thread.
constexpr bool threads_available() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

/// Threads for GEMM and the parallel loops; n <= 0 means every hardware thread. Returns the count in effect
/// (always 1 without OpenMP).
inline int set_threads(int n) {
#if defined(_OPENMP)
  if (n <= 0) n = int(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
  return n;
#else
  (void)n;
  return 1;
#endif
}

/// The thread count in effect.
inline int threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Runs f(begin, end) over [0, n) in chunks of `chunk` elements (the last one shorter), in parallel when n is
/// long. The chunks do not depend on the thread count, so neither do results whose arithmetic depends on
/// where a range starts (a vectorised loop's scalar tail): keep `chunk` a multiple of the SIMD width.
template <class F>
void for_each_chunk(long n, long chunk, F&& f) {
  const long chunks = (n + chunk - 1) / chunk;
  LST_PARALLEL_FOR_IF(n >= parallel_min_elements && chunks > 1)
  for (long i = 0; i < chunks; ++i) f(i * chunk, std::min(n, (i + 1) * chunk));
}

/// Runs task(i) for i in [0, n) over the threads, one task at a time to each thread that is free: independent
/// pieces of one pass (the side network's training shards). Each task runs on its thread alone: its own
/// parallel loops stay on that thread, whatever the OpenMP nesting settings (so a thread_local such as the
/// gradient shard holds for all of its work). Whatever a task throws is rethrown here once all have run (the
/// lowest i's), not left to end the program as an exception leaving a parallel region would.
template <class F>
void run_tasks(long n, F&& task) {
  std::vector<std::exception_ptr> errors(std::size_t(std::max(n, 0L)));
  LST_PARALLEL_FOR_UNEVEN_IF(n > 1)
  for (long i = 0; i < n; ++i) {
    try {
#if defined(_OPENMP)
      if (n > 1) omp_set_num_threads(1);  // this implicit task's setting only: the caller's is untouched
#endif
      task(i);
    } catch (...) {
      errors[std::size_t(i)] = std::current_exception();
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

/// The calling thread's index inside a LST_PARALLEL_FOR loop (0 outside one, or without OpenMP).
inline int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

LST_NAMESPACE_END
