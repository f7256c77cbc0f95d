// SPDX-License-Identifier: MIT
/// @file interrupt.hpp
/// @brief Ctrl-C as a request, not a kill: the first SIGINT (or SIGTERM) asks the training loop to stop after
///        the current step and write a resumable checkpoint; a second one terminates at once.
#pragma once

#include <atomic>
#include <csignal>

#include "../config.hpp"

LST_NAMESPACE_BEGIN

namespace detail {
// A lock-free atomic is the one kind of object a signal handler may touch.
inline std::atomic<int> stop_signal{0};
extern "C" inline void on_stop_signal(int sig) {
  if (stop_signal.exchange(sig) != 0) {  // the second request: do what the user asked twice
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}
}  // namespace detail

/// Routes SIGINT and SIGTERM to stop_requested().
inline void install_stop_handler() {
  static_assert(std::atomic<int>::is_always_lock_free, "the stop flag must be lock-free");
  std::signal(SIGINT, detail::on_stop_signal);
  std::signal(SIGTERM, detail::on_stop_signal);
}
/// The signal that asked to stop, or 0.
inline int stop_requested() { return detail::stop_signal.load(); }
/// Asks the loop to stop, as Ctrl-C would (tests, embedding applications).
inline void request_stop(int sig = SIGINT) { detail::stop_signal.store(sig); }
inline void clear_stop_request() { detail::stop_signal.store(0); }

LST_NAMESPACE_END
