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

TEST_CASE("FeedForward backward holds two (N, F) buffers at most, GELU's slope included") {
  // act(h) for fc2's weight gradient and act'(h): a third (N, F) buffer for dy W2 would cost full
  // fine-tuning 24 MiB per layer's backward at batch 32, sequence 128.
  for (ActivationKind kind : {ActivationKind::gelu, ActivationKind::relu}) {
    CAPTURE(static_cast<int>(kind));
    ParameterArena<float> arena;
    const index_t N = 64, C = 16, F = 64;
    FeedForward<float> ffn(arena, "ffn", C, F, kind);
    arena.allocate(true);
    Tensor<float> x = Tensor<float>::full(Shape{N, C}, 0.5f), y(x.shape()),
                  dy = Tensor<float>::full(x.shape(), 1.0f), dx(x.shape());
    auto ctx = ffn.forward(x, y, Mode::training);
    auto& t = memory_tracker();
    t.reset_peaks();
    const std::size_t base = t.current(MemCategory::workspace);
    ffn.backward(ctx, dy, dx, GradMode::overwrite);
    const std::size_t buffer = std::size_t(N * F) * sizeof(float);
    CHECK(t.peak(MemCategory::workspace) - base <= 2 * buffer + buffer / 2);  // and no more than slack
  }
}
