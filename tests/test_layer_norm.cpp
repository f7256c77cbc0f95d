// SPDX-License-Identifier: MIT
#include <lst/nn/layer_norm.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("LayerNorm backward matches finite differences") {
  Rng rng(21);
  ParameterArena<double> arena;
  LayerNorm<double> ln(arena, "ln", 7, 1e-5);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{2, 3, 7}, rng, 2.0);
  auto g = lst_test::randn(x.shape(), rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto ctx = ln.forward(x, y, Mode::training);
  ln.backward(ctx, g, dx, GradMode::overwrite);
  auto checked = lst_test::parameters_of(arena);
  checked.push_back({"x", x.view(), dx.view()});
  lst_test::check_gradients(checked, [&] {
    ln.forward(x, y, Mode::inference);
    return lst_test::dot(y, g);
  });
}

TEST_CASE("LayerNorm output has zero mean and unit variance per row before the affine part") {
  Rng rng(22);
  ParameterArena<double> arena;
  LayerNorm<double> ln(arena, "ln", 16);
  arena.allocate(false);
  ln.weight().value().fill(1.0);
  auto x = lst_test::randn(Shape{5, 16}, rng, 3.0);
  x += 1000.0;  // a large offset: two-pass statistics stay exact
  Tensor<double> y(x.shape()), m(Shape{5}), v(Shape{5});
  ln.forward(x, y, Mode::inference);
  m = row_mean(y);
  v = row_variance(y);
  for (index_t r = 0; r < 5; ++r) {
    CHECK(std::abs(m(r)) < 1e-10);
    CHECK(v(r) == doctest::Approx(1.0).epsilon(1e-9));
  }
}

TEST_CASE("LayerNorm works in place and rejects a wrong width naming the layer") {
  ParameterArena<float> arena;
  LayerNorm<float> ln(arena, "encoder.3.output_norm", 8);
  arena.allocate(false);
  Tensor<float> x = Tensor<float>::full(Shape{2, 8}, 2.0f);
  CHECK_NOTHROW(ln.forward(x, x, Mode::inference));
  Tensor<float> bad = Tensor<float>::zeros(Shape{2, 6});
  const std::string msg = lst_test::error_of([&] { ln.forward(bad, bad, Mode::inference); });
  CHECK(msg.find("encoder.3.output_norm") != std::string::npos);
  CHECK(msg.find("(2, 6)") != std::string::npos);
}
