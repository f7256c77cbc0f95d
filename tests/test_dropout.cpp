// SPDX-License-Identifier: MIT
#include <lst/nn/dropout.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("Dropout is reproducible from its seed and step, and differs across steps and seeds") {
  Tensor<float> x = Tensor<float>::full(Shape{64, 64}, 1.0f), a(x.shape()), b(x.shape()), c(x.shape());
  Dropout<float> d1(0.25, 1234), d2(0.25, 1234), d3(0.25, 999);
  d1.forward(x, a, Mode::training, 7);
  d2.forward(x, b, Mode::training, 7);
  CHECK(a.to_vector() == b.to_vector());
  d1.forward(x, c, Mode::training, 8);
  CHECK(a.to_vector() != c.to_vector());
  d3.forward(x, c, Mode::training, 7);
  CHECK(a.to_vector() != c.to_vector());
  // Kept elements are scaled by 1 / (1 - p); the kept fraction is close to 1 - p (4096 draws: sd ~0.007).
  index_t kept = 0;
  for (float v : a.to_vector()) {
    CHECK((v == 0.0f || v == doctest::Approx(1.0f / 0.75f)));
    kept += v != 0.0f;
  }
  CHECK(double(kept) / 4096 == doctest::Approx(0.75).epsilon(0.04));
  // Masks of neighbouring steps, and of neighbouring elements, are independent: kept in both ~ (1 - p)^2.
  d1.forward(x, c, Mode::training, 8);
  index_t both_steps = 0, both_neighbours = 0;
  for (index_t i = 0; i < 4096; ++i) {
    both_steps += a.data()[i] != 0.0f && c.data()[i] != 0.0f;
    both_neighbours += i > 0 && a.data()[i] != 0.0f && a.data()[i - 1] != 0.0f;
  }
  CHECK(double(both_steps) / 4096 == doctest::Approx(0.5625).epsilon(0.06));
  CHECK(double(both_neighbours) / 4095 == doctest::Approx(0.5625).epsilon(0.06));
}

TEST_CASE("Dropout is the identity in inference mode and its backward reuses the forward mask") {
  Rng rng(51);
  Dropout<double> d(0.5, 77);
  auto x = lst_test::randn(Shape{4, 10}, rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  d.forward(x, y, Mode::inference, 3);
  CHECK(y.to_vector() == x.to_vector());
  auto g = lst_test::randn(x.shape(), rng);
  auto ctx = d.forward(x, y, Mode::training, 3);
  d.backward(ctx, g, dx);
  lst_test::check_gradients({{"x", x.view(), dx.view()}}, [&] {
    d.forward(x, y, Mode::training, 3);
    return lst_test::dot(y, g);
  });
  CHECK_THROWS_AS(Dropout<float>(1.0, 1), Error);
}

TEST_CASE("Dropout of rows taken from a larger tensor gives them that tensor's mask") {
  Rng rng(53);
  Dropout<double> d(0.5, 91);
  const index_t B = 3, T = 7, C = 5, rows = 2;
  auto x = lst_test::randn(Shape{B, T, C}, rng);
  Tensor<double> y(x.shape()), first(Shape{B, rows, C}), y_first(first.shape());
  for (index_t b = 0; b < B; ++b) first[b].assign(x[b].slice(0, rows));
  d.forward(x, y, Mode::training, 4);
  auto ctx = d.forward(first, y_first, Mode::training, 4, {rows * C, T * C});
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < rows * C; ++i) {
      CAPTURE(b);
      CAPTURE(i);
      REQUIRE(y_first.data()[b * rows * C + i] == y.data()[b * T * C + i]);
    }
  // Backward takes the same mapping from the context.
  Tensor<double> dx(first.shape());
  d.backward(ctx, first, dx);
  CHECK(dx.to_vector() == y_first.to_vector());
  CHECK_THROWS_AS(d.forward(first, y_first, Mode::training, 4, {7, T * C}), Error);  // 30 is not whole blocks
  CHECK_THROWS_AS(d.forward(first, y_first, Mode::training, 4, {rows * C, C}), Error);  // stride < block
}
