// SPDX-License-Identifier: MIT
#include <lst/nn/activation.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("Every activation's backward matches finite differences") {
  for (ActivationKind kind : {ActivationKind::relu, ActivationKind::gelu, ActivationKind::gelu_tanh,
                              ActivationKind::tanh, ActivationKind::sigmoid}) {
    CAPTURE(static_cast<int>(kind));
    Rng rng(41 + static_cast<int>(kind));
    Activation<double> act(kind);
    auto x = lst_test::randn(Shape{3, 9}, rng, 2.0);
    auto g = lst_test::randn(x.shape(), rng);
    Tensor<double> y(x.shape()), dx(x.shape());
    auto ctx = act.forward(x, y, Mode::training);
    act.backward(ctx, g, dx);
    lst_test::check_gradients({{"x", x.view(), dx.view()}}, [&] {
      act.forward(x, y, Mode::inference);
      return lst_test::dot(y, g);
    });
  }
}

TEST_CASE("Hugging Face activation names map to kinds; unknown names are a clear error") {
  CHECK(activation_from_name("gelu") == ActivationKind::gelu);
  CHECK(activation_from_name("gelu_new") == ActivationKind::gelu_tanh);
  CHECK(activation_from_name("relu") == ActivationKind::relu);
  CHECK(lst_test::error_of([] { activation_from_name("swish"); }).find("swish") != std::string::npos);
}

TEST_CASE("GELU over a long tensor (fixed chunks, split over threads) matches the erf formula") {
  Rng rng(44);
  const index_t n = 70001;  // several chunks and a ragged last one
  Tensor<float> x(Shape{n}), y(Shape{n}), dy(Shape{n}), dx(Shape{n});
  for (index_t i = 0; i < n; ++i) {
    x.data()[i] = float(3 * rng.normal());
    dy.data()[i] = float(rng.normal());
  }
  activation_forward(ActivationKind::gelu, x.cview(), y.view());
  activation_backward(ActivationKind::gelu, x.cview(), dy.cview(), dx.view());
  for (index_t i = 0; i < n; ++i) {
    const double v = x.data()[i], cdf = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
    const double pdf = std::exp(-0.5 * v * v) / std::sqrt(2 * 3.14159265358979323846);
    REQUIRE(y.data()[i] == doctest::Approx(v * cdf).epsilon(1e-5).scale(0.1));
    REQUIRE(dx.data()[i] == doctest::Approx(dy.data()[i] * (cdf + v * pdf)).epsilon(1e-5).scale(0.1));
  }
}

TEST_CASE("activation_and_slope: the forward's bits, and dy * slope is the backward's dx bit for bit") {
  // The FFN backward takes both from one call; it must give what the separate forward and backward give.
  for (ActivationKind kind : {ActivationKind::relu, ActivationKind::gelu, ActivationKind::gelu_tanh,
                              ActivationKind::tanh, ActivationKind::sigmoid}) {
    CAPTURE(static_cast<int>(kind));
    Rng rng(45);
    const index_t n = 40001;  // several GELU chunks and a ragged last one
    Tensor<float> x(Shape{n}), dy(Shape{n}), y(Shape{n}), dx(Shape{n}), y2(Shape{n}), slope(Shape{n});
    for (index_t i = 0; i < n; ++i) {
      x.data()[i] = float(3 * rng.normal());
      dy.data()[i] = float(rng.normal());
    }
    activation_forward<float, Cpu>(kind, x, y);
    activation_backward<float, Cpu>(kind, x, dy, dx);
    activation_and_slope<float, Cpu>(kind, x, y2, slope);
    for (index_t i = 0; i < n; ++i) {
      CAPTURE(i);
      REQUIRE(y2.data()[i] == y.data()[i]);
      REQUIRE(dy.data()[i] * slope.data()[i] == dx.data()[i]);
    }
  }
  Tensor<float> x(Shape{4}), y(Shape{4}), bad(Shape{3});
  CHECK_THROWS_AS((activation_and_slope<float, Cpu>(ActivationKind::gelu, x, y, bad)), Error);
}
