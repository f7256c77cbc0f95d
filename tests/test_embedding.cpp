// SPDX-License-Identifier: MIT
#include <lst/nn/embedding.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("Embedding backward (scatter-add with repeated ids) matches finite differences") {
  Rng rng(31);
  ParameterArena<double> arena;
  Embedding<double> emb(arena, "word", 6, 5);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  Tensor<std::int32_t> ids(Shape{2, 4});
  const std::int32_t v[] = {0, 3, 3, 5, 1, 0, 3, 2};  // 3 appears three times
  std::copy(v, v + 8, ids.data());
  auto g = lst_test::randn(Shape{2, 4, 5}, rng);
  Tensor<double> y(Shape{2, 4, 5});
  auto ctx = emb.forward(ids, y, Mode::training);
  CHECK(y(0, 1, 2) == emb.weight().value()(3, 2));
  emb.backward(ctx, g, GradMode::overwrite);
  // Row 4 is never looked up: its gradient is exactly zero, so check the used rows by finite differences.
  for (index_t j = 0; j < 5; ++j) CHECK(emb.weight().grad()(4, j) == 0.0);
  lst_test::check_gradients({{"word.weight", emb.weight().value(), emb.weight().grad()}}, [&] {
    emb.forward(ids, y, Mode::inference);
    return lst_test::dot(y, g);
  });
}

TEST_CASE("Embedding rejects an id outside the vocabulary, naming it and its position") {
  ParameterArena<float> arena;
  Embedding<float> emb(arena, "word", 10, 4);
  arena.allocate(false);
  Tensor<std::int32_t> ids = Tensor<std::int32_t>::full(Shape{3}, 2);
  ids(2) = 10;
  Tensor<float> y(Shape{3, 4});
  const std::string msg = lst_test::error_of([&] { emb.forward(ids, y, Mode::inference); });
  CHECK(msg.find("id 10") != std::string::npos);
  CHECK(msg.find("position 2") != std::string::npos);
  ids(2) = -1;
  CHECK_THROWS_AS(emb.forward(ids, y, Mode::inference), Error);
}
