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
