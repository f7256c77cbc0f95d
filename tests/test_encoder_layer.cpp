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

namespace {
/// A random layer with dropout 0.3 over three sequences of 5, 3 and 4 real tokens padded to 5 (B, T, C) =
/// (3, 5, 6): what the first-rows and packed cases compare against the whole padded layer.
struct DropoutLayerCase {
  static constexpr index_t B = 3, T = 5, C = 6;
  ParameterArena<double> arena;
  EncoderLayer<double> layer;
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{B, T}, 1);
  explicit DropoutLayerCase(Rng& rng)
      : layer(arena, "layer.0", EncoderLayerConfig{C, 2, 10, ActivationKind::gelu, 1e-5, 0.3}, 5) {
    arena.allocate(true);
    lst_test::randomize(arena, rng);
    mask(1, 4) = mask(1, 3) = mask(2, 4) = 0;
  }
};
}  // namespace

TEST_CASE("EncoderLayer with the first rows only: the whole layer's rows, dropout masks and gradients") {
  // Dropout on: rows computed alone must take the masks the whole layer gives them (a mask drawn for the
  // compact tensor's own element indices fails), and the residual must add x's first rows of each sequence.
  for (const index_t queries : {1, 2}) {
    CAPTURE(queries);
    Rng rng(93);
    DropoutLayerCase c(rng);
    const index_t B = c.B, T = c.T, C = c.C;
    ParameterArena<double>& arena = c.arena;
    EncoderLayer<double>& layer = c.layer;
    const Tensor<std::int32_t>& mask = c.mask;
    auto x = lst_test::randn(Shape{B, T, C}, rng);
    auto g_first = lst_test::randn(Shape{B, queries, C}, rng);
    Tensor<double> g = Tensor<double>::zeros(x.shape());
    for (index_t b = 0; b < B; ++b) g[b].slice(0, queries).assign(g_first[b]);

    Tensor<double> y(x.shape()), dx(x.shape());
    auto ctx = layer.forward(x, mask, y, Mode::training, 17);
    layer.backward(ctx, g, dx, GradMode::overwrite);
    const auto whole_dx = dx.to_vector(), whole_params = arena.grads().to_vector();

    Tensor<double> y_first(Shape{B, queries, C}), dx_first(x.shape());
    auto ctx_first = layer.forward(x, mask, y_first, Mode::training, 17, nullptr, queries);
    layer.backward(ctx_first, g_first, dx_first, GradMode::overwrite);
    lst_test::expect_first_rows(y_first.data(), y.data(), B, T, queries, C, 1e-12);
    const auto first_dx = dx_first.to_vector(), first_params = arena.grads().to_vector();
    lst_test::expect_close_to_largest(first_dx, whole_dx, 1e-12);
    lst_test::expect_close_to_largest(first_params, whole_params, 1e-12);
    // And on its own terms, against finite differences.
    auto checked = lst_test::parameters_of(arena);
    checked.push_back({"x", x.view(), dx_first.view()});
    lst_test::expect_zero(checked, "layer.0.attention.key.bias");
    lst_test::check_gradients(checked, [&] {
      layer.forward(x, mask, y_first, Mode::training, 17, nullptr, queries);
      return lst_test::dot(y_first, g_first);
    });
  }
}

TEST_CASE("EncoderLayer on packed sequences: the padded layer's real rows, dropout masks and gradients") {
  // Dropout on: a packed row must take the mask of its position in the padded batch (one drawn for its
  // packed index fails), for every row and for each sequence's first rows alone.
  for (const index_t queries : {0, 1, 2}) {
    CAPTURE(queries);
    Rng rng(97);
    DropoutLayerCase c(rng);
    const index_t B = c.B, T = c.T, C = c.C;
    ParameterArena<double>& arena = c.arena;
    EncoderLayer<double>& layer = c.layer;
    const Tensor<std::int32_t>& mask = c.mask;
    const auto packed = PackedSequences::from_mask(mask.data(), B, T), padded = PackedSequences::whole(B, T);
    const PackedSequences asked = queries > 0 ? packed.first_rows(queries) : packed;
    auto x = lst_test::randn(Shape{B, T, C}, rng), g = lst_test::randn(Shape{B, T, C}, rng);
    for (index_t b = 0; b < B; ++b)  // the padded layer's output gradient: on the asked rows only
      for (index_t t = asked.length(b); t < T; ++t) g[b][t].set_zero();
    Tensor<double> y(x.shape()), dx(x.shape());
    auto ctx = layer.forward(x, mask, y, Mode::training, 17);
    layer.backward(ctx, g, dx, GradMode::overwrite);
    const auto padded_params = arena.grads().to_vector();

    Tensor<double> xp(Shape{packed.rows(), C}), gp(Shape{asked.rows(), C}), yp(gp.shape()), dxp(xp.shape());
    copy_first_rows(padded, packed, C, x.data(), xp.data());
    copy_first_rows(padded, asked, C, g.data(), gp.data());
    auto ctx_packed = layer.forward(xp, {}, yp, Mode::training, 17, nullptr, queries, &packed);
    layer.backward(ctx_packed, gp, dxp, GradMode::overwrite);
    Tensor<double> y_rows(yp.shape()), dx_rows(dxp.shape());
    copy_first_rows(padded, asked, C, y.data(), y_rows.data());
    copy_first_rows(padded, packed, C, dx.data(), dx_rows.data());
    lst_test::expect_close_to_largest(yp.to_vector(), y_rows.to_vector(), 1e-12);
    lst_test::expect_close_to_largest(dxp.to_vector(), dx_rows.to_vector(), 1e-12);
    lst_test::expect_close_to_largest(arena.grads().to_vector(), padded_params, 1e-12);
    // And on its own terms, against finite differences.
    auto checked = lst_test::parameters_of(arena);
    checked.push_back({"x", xp.view(), dxp.view()});
    lst_test::expect_zero(checked, "layer.0.attention.key.bias");
    lst_test::check_gradients(checked, [&] {
      layer.forward(xp, {}, yp, Mode::training, 17, nullptr, queries, &packed);
      return lst_test::dot(yp, gp);
    });
  }
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
