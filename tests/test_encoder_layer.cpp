// SPDX-License-Identifier: MIT
#include <lst/nn/encoder_layer.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("EncoderLayer (post-LN, dropout on) backward matches finite differences") {
  Rng rng(91);
  ParameterArena<double> arena;
  EncoderLayerConfig cfg{6, 2, 10, ActivationKind::gelu, 1e-5, 0.2};
  EncoderLayer<double> layer(arena, "layer.0", cfg, 5);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{2, 4, 6}, rng);
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{2, 4}, 1);
  mask(1, 3) = 0;
  auto g = lst_test::randn(x.shape(), rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto ctx = layer.forward(x, mask, y, Mode::training, 17);
  layer.backward(ctx, g, dx, GradMode::overwrite);
  auto checked = lst_test::parameters_of(arena);
  checked.push_back({"x", x.view(), dx.view()});
  lst_test::expect_zero(checked, "layer.0.attention.key.bias");
  lst_test::check_gradients(checked, [&] {
    layer.forward(x, mask, y, Mode::training, 17);  // same step: same dropout masks
    return lst_test::dot(y, g);
  });
}

TEST_CASE("EncoderLayer backward with a wrong dx fails before touching any gradient") {
  ParameterArena<float> arena;
  EncoderLayer<float> layer(arena, "l0", EncoderLayerConfig{8, 2, 16, ActivationKind::gelu, 1e-12, 0.0}, 1);
  arena.allocate(true);
  Rng rng(2);
  init::normal(arena.values(), rng, 0.1);
  Tensor<float> x = Tensor<float>::full(Shape{1, 3, 8}, 0.5f), y(x.shape()), bad(Shape{1, 3, 7});
  auto ctx = layer.forward(x, ConstView<std::int32_t>(), y, Mode::training, 0);
  CHECK_THROWS_AS(layer.backward(ctx, y, bad, GradMode::overwrite), ShapeError);
  for (float v : arena.grads().to_vector()) CHECK(v == 0.0f);
}
