// SPDX-License-Identifier: MIT
#include <lst/nn/activation.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <unsupported/Eigen/SpecialFunctions>

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

TEST_CASE(
    "cpu::gelu_erf and its slope: within a few ulp of Eigen's erf everywhere, and each value's bits alone") {
  // The AVX-512 kernel divides through a reciprocal estimate and a correction step; the AVX2 one and Eigen's
  // array erf divide. Both are within a couple of ulp of erf; an ulp of erf (6e-8 near +-1) moves x Phi(x) by
  // up to |x| 3e-8.
  std::vector<float> x;
  for (int i = -20000; i <= 20000; ++i) x.push_back(float(i) * 1e-3f);
  for (float v : {1e-30f, 1e-6f, 7.5f, 13.5f, 40.f, 1e30f, 3e38f}) {
    x.push_back(v);
    x.push_back(-v);
  }
  const index_t n = static_cast<index_t>(x.size());
  std::vector<float> y(x.size()), slope(x.size()), y_ref(x.size()), dx_ref(x.size()), ones(x.size(), 1.f);
  cpu::gelu_erf_and_slope(x.data(), y.data(), slope.data(), n);
  {  // Eigen's array erf, the reference kernel before this one
    using Array = Eigen::ArrayXf;
    const Eigen::Map<const Array> xa(x.data(), n);
    Eigen::Map<Array>(y_ref.data(), n) = 0.5f * xa * (1.f + (xa * 0.70710678f).erf());
    Eigen::Map<Array>(dx_ref.data(), n) =
        0.5f * (1.f + (xa * 0.70710678f).erf()) + xa * 0.39894228f * (-0.5f * xa * xa).exp();
  }
  for (index_t i = 0; i < n; ++i) {
    CAPTURE(x[i]);
    REQUIRE(std::isfinite(y[i]));
    REQUIRE(std::isfinite(slope[i]));
    if (std::abs(x[i]) >= 5.7f) {  // erf(x / sqrt 2) is clamped to +-1 exactly: y is x or -0
      REQUIRE(y[i] == y_ref[i]);
      continue;
    }
    const float erf_ulps = 1.2e-7f * std::max(1.f, std::abs(x[i]));  // two ulp of erf, through x / 2
    REQUIRE(std::abs(y[i] - y_ref[i]) <= 4e-7f * std::abs(y_ref[i]) + erf_ulps);
    REQUIRE(std::abs(slope[i] - dx_ref[i]) <= 4e-7f * std::abs(dx_ref[i]) + 1.2e-7f);
  }
  // The other two entries give the same values, and a NaN stays NaN in y and in the slope (a NaN that the
  // clamps turned into a number would hide a diverged step behind a finite gradient).
  std::vector<float> dx(x.size()), y2(x.size());
  cpu::gelu_erf(x.data(), y2.data(), n);
  cpu::gelu_erf_gradient(x.data(), ones.data(), dx.data(), n);
  for (index_t i = 0; i < n; ++i) {
    REQUIRE(y2[i] == y[i]);
    REQUIRE(dx[i] == slope[i]);
  }
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> special = {nan, inf, 1.f, nan}, ys(4), ss(4), ds(4);
  cpu::gelu_erf_and_slope(special.data(), ys.data(), ss.data(), 4);
  cpu::gelu_erf_gradient(special.data(), ones.data(), ds.data(), 4);
  for (const int i : {0, 3}) {
    CHECK(std::isnan(ys[std::size_t(i)]));
    CHECK(std::isnan(ss[std::size_t(i)]));
    CHECK(std::isnan(ds[std::size_t(i)]));
  }
  CHECK(ys[1] == inf);
  CHECK(ss[1] == 1.f);
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  // One value at a time (the masked tail) gives the bits of the full packets. (Only with the vector kernels:
  // Eigen's path computes the elements before its first aligned packet in scalar code.)
  std::vector<float> y1(1), s1(1);
  for (index_t i = 0; i < n; i += 97) {
    CAPTURE(x[i]);
    cpu::gelu_erf_and_slope(x.data() + i, y1.data(), s1.data(), 1);
    REQUIRE(y1[0] == y[i]);
    REQUIRE(s1[0] == slope[i]);
  }
#endif
}
