// SPDX-License-Identifier: MIT
#include <lst/nn/layer_norm.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("LayerNorm backward matches finite differences") {
  // Width 7 is all scalar tail; 21 is whole packets of double (two with AVX-512, five with AVX2) and a tail.
  for (const index_t width : {7, 21}) {
    CAPTURE(width);
    Rng rng(21);
    ParameterArena<double> arena;
    LayerNorm<double> ln(arena, "ln", width, 1e-5);
    arena.allocate(true);
    lst_test::randomize(arena, rng);
    auto x = lst_test::randn(Shape{2, 3, width}, rng, 2.0);
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

TEST_CASE("LayerNorm on many rows (the parallel path) matches a double-precision reference") {
  Rng rng(23);
  ParameterArena<float> arena;
  LayerNorm<float> ln(arena, "ln", 384);
  arena.allocate(true);
  for (index_t i = 0; i < arena.size(); ++i) arena.values().data()[i] = float(1 + 0.1 * rng.normal());
  const index_t rows = 300;  // 115,200 values: above the threshold where rows split over threads
  Tensor<float> x(Shape{rows, 384}), y(x.shape()), dy(x.shape()), dx(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) {
    x.data()[i] = float(5 + 2 * rng.normal());
    dy.data()[i] = float(rng.normal());
  }
  auto ctx = ln.forward(x, y, Mode::training);
  ln.backward(ctx, dy, dx, GradMode::overwrite);
  const float* gamma = ln.weight().value().data();
  const float* beta = ln.bias().value().data();
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * 384;
    double mean = 0, var = 0;
    for (index_t j = 0; j < 384; ++j) mean += xr[j];
    mean /= 384;
    for (index_t j = 0; j < 384; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    var /= 384;
    const double rstd = 1 / std::sqrt(var + 1e-12);
    double mean_g = 0, mean_gh = 0;
    for (index_t j = 0; j < 384; ++j) {
      const double h = (xr[j] - mean) * rstd, g = double(dy.data()[r * 384 + j]) * gamma[j];
      REQUIRE(y.data()[r * 384 + j] == doctest::Approx(h * gamma[j] + beta[j]).epsilon(1e-5));
      mean_g += g / 384;
      mean_gh += g * h / 384;
    }
    for (index_t j = 0; j < 384; ++j) {
      const double h = (xr[j] - mean) * rstd, g = double(dy.data()[r * 384 + j]) * gamma[j];
      REQUIRE(dx.data()[r * 384 + j] ==
              doctest::Approx(rstd * (g - mean_g - h * mean_gh)).epsilon(1e-4).scale(1));
    }
  }
}
