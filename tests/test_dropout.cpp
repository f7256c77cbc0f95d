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
