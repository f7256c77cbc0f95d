// SPDX-License-Identifier: MIT
/// @file schedule.hpp
/// @brief Learning-rate schedule: linear warm-up from 0 to the peak, then linear decay to 0 at the last step
///        (BERT's schedule; Hugging Face's get_linear_schedule_with_warmup).
#pragma once

#include <algorithm>

#include "../core/error.hpp"

LST_NAMESPACE_BEGIN

class LinearSchedule {
 public:
  /// `warmup_steps` of `total_steps` rise linearly; the rest fall linearly to zero.
  LinearSchedule(double peak_lr, long warmup_steps, long total_steps)
      : m_peak(peak_lr), m_warmup(warmup_steps), m_total(total_steps) {
    LST_CHECK(peak_lr > 0 && total_steps > 0 && warmup_steps >= 0 && warmup_steps <= total_steps,
              "LinearSchedule: need lr > 0 and 0 <= warm-up steps <= total steps > 0 (got lr ", peak_lr,
              ", warm-up ", warmup_steps, ", total ", total_steps, ")");
  }
  /// The rate for update number `step` (0-based), as Hugging Face's LambdaLR evaluates it.
  double lr(long step) const {
    if (step < m_warmup) return m_peak * double(step) / double(std::max(1L, m_warmup));
    return m_peak * std::max(0.0, double(m_total - step) / double(std::max(1L, m_total - m_warmup)));
  }
  double peak() const { return m_peak; }
  long warmup_steps() const { return m_warmup; }
  long total_steps() const { return m_total; }

 private:
  double m_peak;
  long m_warmup, m_total;
};

LST_NAMESPACE_END
