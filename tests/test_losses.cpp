// SPDX-License-Identifier: MIT
#include <lst/nn/losses.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("Cross-entropy: value, gradient by finite differences, ignored labels, huge logits") {
  Rng rng(61);
  auto z = lst_test::randn(Shape{5, 3}, rng, 3.0);
  Tensor<std::int32_t> y(Shape{5});
  const std::int32_t v[] = {0, 2, -100, 1, 2};
  std::copy(v, v + 5, y.data());
  Tensor<double> dz(z.shape());
  const double loss = cross_entropy<double, Cpu>(z, y, dz);
  double want = 0;
  for (index_t n : {0, 1, 3, 4}) {
    double s = 0;
    for (index_t j = 0; j < 3; ++j) s += std::exp(z(n, j));
    want += std::log(s) - z(n, y(n));
  }
  CHECK(loss == doctest::Approx(want / 4));
  for (index_t j = 0; j < 3; ++j) CHECK(dz(2, j) == 0.0);
  lst_test::check_gradients({{"logits", z.view(), dz.view()}},
                            [&] { return cross_entropy<double, Cpu>(z, y, TensorView<double>()); });
  Tensor<float> big(Shape{1, 2});
  big(0, 0) = 1e4f;
  big(0, 1) = -1e4f;
  Tensor<std::int32_t> l = Tensor<std::int32_t>::full(Shape{1}, 1);
  CHECK(cross_entropy<float, Cpu>(big, l, TensorView<float>()) == doctest::Approx(2e4f));
  l(0) = 2;
  CHECK(lst_test::error_of([&] { cross_entropy<float, Cpu>(big, l, TensorView<float>()); }).find("label 2") !=
        std::string::npos);
}

TEST_CASE("MSE: value and gradient by finite differences") {
  Rng rng(62);
  auto p = lst_test::randn(Shape{6, 1}, rng), t = lst_test::randn(Shape{6}, rng);
  Tensor<double> dp(p.shape());
  const double loss = mse_loss<double, Cpu>(p, t, dp);
  double want = 0;
  for (index_t i = 0; i < 6; ++i) want += (p(i, 0) - t(i)) * (p(i, 0) - t(i));
  CHECK(loss == doctest::Approx(want / 6));
  lst_test::check_gradients({{"pred", p.view(), dp.view()}},
                            [&] { return mse_loss<double, Cpu>(p, t, TensorView<double>()); });
  Tensor<double> wrong(Shape{5});
  CHECK_THROWS_AS((mse_loss<double, Cpu>(p, wrong, TensorView<double>())), ShapeError);
}

TEST_CASE("Cross-entropy over zero classes is an error, not a read out of bounds") {
  Tensor<float> z(Shape{2, 0});
  Tensor<std::int32_t> y = Tensor<std::int32_t>::full(Shape{2}, -1);
  CHECK_THROWS_AS((cross_entropy<float, Cpu>(z, y, TensorView<float>())), ShapeError);
}
