// SPDX-License-Identifier: MIT
#include <lst/train/metrics.hpp>

#include <cmath>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("classification metrics match hand-counted confusion matrices") {
  // tp = 2 (rows 0, 3), fp = 1 (row 2), tn = 1 (row 1), fn = 0.
  const std::vector<std::int32_t> pred = {1, 0, 1, 1}, label = {1, 0, 0, 1};
  CHECK(accuracy(pred, label) == doctest::Approx(0.75));
  CHECK(f1_score(pred, label) == doctest::Approx(0.8));  // 2*2 / (2*2 + 1 + 0)
  // (2*1 - 1*0) / sqrt((2+1)(2+0)(1+1)(1+0)) = 2 / sqrt(12)
  CHECK(matthews_corr(pred, label) == doctest::Approx(2.0 / std::sqrt(12.0)));
  CHECK(matthews_corr(label, label) == doctest::Approx(1.0));
  const std::vector<std::int32_t> flipped = {0, 1, 1, 0};
  CHECK(matthews_corr(flipped, label) == doctest::Approx(-1.0));
}

TEST_CASE("degenerate predictions give 0, not NaN, as scikit-learn does") {
  const std::vector<std::int32_t> all_zero = {0, 0, 0}, label = {1, 0, 1};
  CHECK(matthews_corr(all_zero, label) == 0.0);
  CHECK(f1_score(all_zero, std::vector<std::int32_t>{0, 0, 0}) == 0.0);
  CHECK(pearson({1, 1, 1}, {1, 2, 3}) == 0.0);
}

TEST_CASE("Pearson and Spearman (average ranks for ties) match values computed by hand") {
  // x - 2.5 = (-1.5, -.5, .5, 1.5), y - 5 = (-3, -1, 0, 4): r = 11 / sqrt(5 * 26)
  CHECK(pearson({1, 2, 3, 4}, {2, 4, 5, 9}) == doctest::Approx(11.0 / std::sqrt(130.0)));
  const auto ranks = average_ranks({3, 1, 2, 2, 5});
  CHECK(ranks == std::vector<double>{4, 1, 2.5, 2.5, 5});
  // ranks (4, 1, 2.5, 2.5, 5) and (2, 1, 3, 4, 5): r = 6.5 / sqrt(9.5 * 10)
  CHECK(spearman({3, 1, 2, 2, 5}, {1, 0, 2, 3, 4}) == doctest::Approx(6.5 / std::sqrt(95.0)));
  CHECK(spearman({1, 2, 3}, {10, 200, 3000}) == doctest::Approx(1.0));  // monotone, not linear
}

TEST_CASE("metrics refuse mismatched or empty inputs") {
  CHECK_THROWS_WITH_AS(accuracy({1, 0}, {1}), doctest::Contains("2 predictions but 1 labels"), Error);
  CHECK_THROWS_AS(pearson({}, {}), Error);
}
