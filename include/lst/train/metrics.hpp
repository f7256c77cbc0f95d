// SPDX-License-Identifier: MIT
/// @file metrics.hpp
/// @brief GLUE's evaluation metrics (Wang et al. 2019, table 1): accuracy, F1 of the positive class, Matthews
///        correlation (CoLA), Pearson and Spearman correlation (STS-B).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "../core/error.hpp"

LST_NAMESPACE_BEGIN

namespace detail {
inline void check_pair_sizes(const char* metric, std::size_t a, std::size_t b) {
  LST_CHECK(a == b, metric, ": ", a, " predictions but ", b, " labels");
  LST_CHECK(a > 0, metric, ": no examples");
}
}  // namespace detail

/// Fraction of predictions equal to their label.
inline double accuracy(const std::vector<std::int32_t>& pred, const std::vector<std::int32_t>& label) {
  detail::check_pair_sizes("accuracy", pred.size(), label.size());
  std::size_t right = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) right += pred[i] == label[i];
  return double(right) / double(pred.size());
}

/// Binary confusion counts with class 1 as positive.
struct Confusion {
  double tp = 0, fp = 0, tn = 0, fn = 0;
};
inline Confusion confusion(const std::vector<std::int32_t>& pred, const std::vector<std::int32_t>& label) {
  detail::check_pair_sizes("confusion", pred.size(), label.size());
  Confusion c;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const bool p = pred[i] == 1, y = label[i] == 1;
    (p ? (y ? c.tp : c.fp) : (y ? c.fn : c.tn)) += 1;
  }
  return c;
}

/// F1 of class 1 (MRPC's "equivalent"): 2 TP / (2 TP + FP + FN); 0 when there are no positives at all.
inline double f1_score(const std::vector<std::int32_t>& pred, const std::vector<std::int32_t>& label) {
  const Confusion c = confusion(pred, label);
  const double denom = 2 * c.tp + c.fp + c.fn;
  return denom > 0 ? 2 * c.tp / denom : 0.0;
}

/// Matthews correlation (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)); 0 when a margin is empty,
/// as scikit-learn defines it (a constant predictor carries no information).
inline double matthews_corr(const std::vector<std::int32_t>& pred, const std::vector<std::int32_t>& label) {
  const Confusion c = confusion(pred, label);
  const double denom = (c.tp + c.fp) * (c.tp + c.fn) * (c.tn + c.fp) * (c.tn + c.fn);
  return denom > 0 ? (c.tp * c.tn - c.fp * c.fn) / std::sqrt(denom) : 0.0;
}

/// Pearson's r; 0 when either side is constant.
inline double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  detail::check_pair_sizes("pearson", x.size(), y.size());
  const double n = double(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
}

/// Ranks 1..n with ties given their average rank (what Spearman's rho needs, as in scipy.stats.rankdata).
inline std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(x.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double r = 0.5 * double(i + j) + 1.0;  // mean of the 1-based ranks i+1 .. j+1
    for (std::size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  return rank;
}

/// Spearman's rho: Pearson's r of the average ranks.
inline double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  detail::check_pair_sizes("spearman", x.size(), y.size());
  return pearson(average_ranks(x), average_ranks(y));
}

LST_NAMESPACE_END
