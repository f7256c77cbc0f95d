// SPDX-License-Identifier: MIT
/// @file bench_shape.hpp
/// @brief The flags every model bench shares: checkpoint directory, batch, sequence, repetitions, threads.
#pragma once

#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <lst/lst.hpp>

namespace lst_bench {

struct BenchShape {
  std::string model = default_model_dir();
  lst::index_t batch = 32, seq = 128;
  int reps = 5;
  int threads = 0;  // 0: OpenMP's default

  /// $LST_MODEL_DIR, else scripts/fetch-model.py's default cache.
  static std::string default_model_dir() {
    if (const char* env = std::getenv("LST_MODEL_DIR")) return env;
    const char* home = std::getenv("HOME");
    return std::string(home ? home : ".") + "/.cache/lst/all-MiniLM-L6-v2";
  }

  /// Registers --model, --batch, --seq, --reps (`what` names one repetition) and --threads.
  void add_to(CLI::App& app, const std::string& what) {
    app.add_option("--model", model, "checkpoint directory (default $LST_MODEL_DIR)");
    app.add_option("--batch", batch, "batch size")->check(CLI::Range(1, 1 << 20));
    app.add_option("--seq", seq, "sequence length")->check(CLI::Range(1, 1 << 20));
    app.add_option("--reps", reps, "timed " + what + " after the warm-up (the median is printed)")
        ->check(CLI::Range(1, 1 << 20));
    app.add_option("--threads", threads, "threads (0 = OpenMP's default)")->check(CLI::Range(0, 4096));
  }

  /// After parsing: sets the thread count (when given) and keeps freed memory as lst's programs do
  /// (core/allocator.hpp).
  void apply() const {
    if (threads > 0) lst::set_threads(threads);
    lst::retain_freed_host_memory();
  }
};

}  // namespace lst_bench
