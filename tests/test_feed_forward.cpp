// SPDX-License-Identifier: MIT
#include <lst/nn/feed_forward.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("FeedForward backward matches finite differences") {
  Rng rng(71);
  ParameterArena<double> arena;
  FeedForward<double> ffn(arena, "ffn", 5, 11, ActivationKind::gelu);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{2, 3, 5}, rng);
  auto g = lst_test::randn(x.shape(), rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto ctx = ffn.forward(x, y, Mode::training);
  ffn.backward(ctx, g, dx, GradMode::overwrite);
  auto checked = lst_test::parameters_of(arena);
  checked.push_back({"x", x.view(), dx.view()});
  lst_test::check_gradients(checked, [&] {
    ffn.forward(x, y, Mode::inference);
    return lst_test::dot(y, g);
  });
}

TEST_CASE("FeedForward keeps its input and pre-activation in training, nothing in inference") {
  ParameterArena<float> arena;
  FeedForward<float> ffn(arena, "ffn", 8, 32, ActivationKind::relu);
  arena.allocate(true);
  Tensor<float> x = Tensor<float>::zeros(Shape{4, 8}), y(x.shape());
  auto& t = memory_tracker();
  const std::size_t base = t.current(MemCategory::activations);
  {
    auto ctx = ffn.forward(x, y, Mode::inference);
    CHECK(t.current(MemCategory::activations) == base);
  }
  auto ctx = ffn.forward(x, y, Mode::training);
  CHECK(t.current(MemCategory::activations) - base == 4 * 8 * 4 + 4 * 32 * 4);  // both multiples of 64
}
