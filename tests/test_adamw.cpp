// SPDX-License-Identifier: MIT
#include <lst/train/adamw.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("AdamW matches the algorithm computed by hand for three steps") {
  ParameterArena<double> arena;
  auto w = arena.add("w", Shape{2});
  arena.allocate(true);
  w.value()(0) = 1.0;
  w.value()(1) = -2.0;
  AdamWConfig cfg{0.9, 0.99, 1e-8, 0.1};
  AdamW<double> opt(arena, cfg);
  double ref[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  const double grads[3][2] = {{0.5, -1.0}, {0.1, 2.0}, {-0.3, 0.0}};
  for (int t = 1; t <= 3; ++t) {
    for (int i = 0; i < 2; ++i) w.grad()(i) = grads[t - 1][i];
    opt.step(0.01);
    for (int i = 0; i < 2; ++i) {
      const double g = grads[t - 1][i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.99 * v[i] + 0.01 * g * g;
      const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.99, t));
      ref[i] = ref[i] - 0.01 * 0.1 * ref[i] - 0.01 * mh / (std::sqrt(vh) + 1e-8);
      CHECK(w.value()(i) == doctest::Approx(ref[i]).epsilon(1e-12));
    }
  }
}

TEST_CASE("AdamW state is tracked as optimizer memory and refuses a frozen arena") {
  const std::size_t before = memory_tracker().current(MemCategory::optimizer);
  ParameterArena<float> arena;
  arena.add("w", Shape{100});
  arena.allocate(true);
  {
    AdamW<float> opt(arena);
    CHECK(memory_tracker().current(MemCategory::optimizer) - before == 2 * 448);
  }
  ParameterArena<float> frozen;
  frozen.add("w", Shape{4});
  frozen.allocate(false);
  CHECK_THROWS_AS(AdamW<float>{frozen}, Error);
}
