// SPDX-License-Identifier: MIT
/// @file progress.hpp
/// @brief A one-line progress bar on stderr: steps, loss, learning rate, tokens/s and the time left. On a
///        terminal it redraws in place; into a file or pipe it writes a plain line every 5 %.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "../config.hpp"

LST_NAMESPACE_BEGIN

inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

class ProgressBar {
 public:
  /// `first` is where a resumed run starts (the ETA counts from it), `total` the last step.
  ProgressBar(long first, long total, bool enabled = true)
      : m_first(first),
        m_total(total),
        m_enabled(enabled),
        m_tty(isatty(fileno(stderr)) == 1),
        m_start(std::chrono::steady_clock::now()) {}

  void update(long step, double loss, double lr, double tokens) {
    if (!m_enabled) return;
    const double elapsed = seconds();
    const double rate = elapsed > 0 ? double(step - m_first) / elapsed : 0;
    const double eta = rate > 0 ? double(m_total - step) / rate : -1;
    const int pct = m_total > 0 ? int(100.0 * double(step) / double(m_total)) : 100;
    if (!m_tty && pct < m_last_pct + 5 && step != m_total) return;
    m_last_pct = pct;
    constexpr int width = 24;
    std::string bar(width, ' ');
    for (int i = 0; i < width * pct / 100; ++i) bar[std::size_t(i)] = '#';
    std::fprintf(stderr, "%s[%s] %ld/%ld %3d%% loss %.4f lr %.2e %.0f tok/s elapsed %s ETA %s%s",
                 m_tty ? "\r" : "", bar.c_str(), step, m_total, pct, loss, lr,
                 elapsed > 0 ? tokens / elapsed : 0.0, format_duration(elapsed).c_str(),
                 format_duration(eta).c_str(), m_tty ? "\x1b[K" : "\n");
    std::fflush(stderr);
  }
  /// Ends the redrawn line before other output.
  void break_line() {
    if (m_enabled && m_tty) std::fprintf(stderr, "\n");
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
  }

 private:
  long m_first, m_total;
  bool m_enabled, m_tty;
  int m_last_pct = -100;
  std::chrono::steady_clock::time_point m_start;
};

LST_NAMESPACE_END
