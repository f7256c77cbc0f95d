// SPDX-License-Identifier: MIT
// Per-parameter trainability: roles, frozen parameters without gradients or optimizer state, and layers that
// skip a frozen parameter's gradient product and keep no input for it.
#include <lst/lst.hpp>

#include "gradient_check.hpp"

using namespace lst;

namespace {
/// The checked tensors of an arena's trainable parameters (a frozen one has no gradient to check).
std::vector<lst_test::Checked> trainable_of(const ParameterArena<double>& arena) {
  std::vector<lst_test::Checked> out;
  for (std::size_t i = 0; i < arena.count(); ++i)
    if (arena.trainable(i)) out.push_back({arena.info(i).name, arena.value(i), arena.grad(i)});
  return out;
}
bool is_bias(const ParameterArena<double>::Info& i) { return i.role == ParamRole::bias; }
bool is_norm(const ParameterArena<double>::Info& i) {
  return i.role == ParamRole::norm_gain || i.role == ParamRole::norm_bias;
}
}  // namespace

TEST_CASE("Parameters carry their layer's role") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "fc", 3, 2);
  LayerNorm<float> ln(arena, "ln", 2);
  Embedding<float> emb(arena, "emb", 5, 2);
  arena.add("free", Shape{1});
  arena.allocate(true);
  CHECK(fc.weight().role() == ParamRole::weight);
  CHECK(fc.bias().role() == ParamRole::bias);
  CHECK(ln.weight().role() == ParamRole::norm_gain);
  CHECK(ln.bias().role() == ParamRole::norm_bias);
  CHECK(emb.weight().role() == ParamRole::embedding);
  CHECK(arena.find("free").role() == ParamRole::other);
  CHECK(std::string(to_string(ParamRole::norm_gain)) == "norm_gain");
}

TEST_CASE("A frozen parameter has no gradient, and the gradient block holds the trainable ones alone") {
  const MemoryTracker& t = memory_tracker<Cpu>();
  const std::size_t grads_before = t.current(MemCategory::gradients);
  ParameterArena<float> arena;
  Linear<float> fc(arena, "fc", 32, 16);  // weight 512 floats, bias 16
  arena.set_trainable([](const auto& info) { return info.role == ParamRole::bias; });
  arena.allocate(true);
  CHECK(arena.has_gradients());
  CHECK_FALSE(arena.all_trainable());
  CHECK(fc.bias().trainable());
  CHECK_FALSE(fc.weight().trainable());
  CHECK(fc.weight().grad().empty());
  CHECK(fc.bias().grad().numel() == 16);
  CHECK(arena.gradient_size() == 16);
  CHECK(arena.trainable_parameter_count() == 16);
  CHECK(arena.parameter_count() == 16 + 512);
  CHECK(t.current(MemCategory::gradients) - grads_before == 64);  // 16 floats, one 64-byte line
  // Trainability is fixed at allocation.
  CHECK_THROWS_AS(arena.set_trainable("fc.weight", true), Error);
  // By name, before allocation.
  ParameterArena<float> named;
  Linear<float> fc2(named, "fc2", 4, 4);
  named.set_trainable("fc2.bias", false);
  CHECK(lst_test::error_of([&] { named.set_trainable("nope", true); }).find("nope") != std::string::npos);
  named.allocate(true);
  CHECK(fc2.weight().trainable());
  CHECK_FALSE(fc2.bias().trainable());
  CHECK(named.all_trainable() == false);
}

TEST_CASE("Linear with a frozen weight keeps no input and computes no weight gradient") {
  Rng rng(3);
  ParameterArena<double> arena;
  Linear<double> fc(arena, "fc", 5, 3);
  arena.set_trainable(is_bias);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{4, 5}, rng);
  auto g = lst_test::randn(Shape{4, 3}, rng);
  Tensor<double> y(Shape{4, 3}), dx(x.shape());
  const std::size_t activations_before = memory_tracker<Cpu>().current(MemCategory::activations);
  auto ctx = fc.forward(x, y, Mode::training);
  CHECK(ctx.input.empty());
  CHECK(memory_tracker<Cpu>().current(MemCategory::activations) == activations_before);
  fc.backward(ctx, g, dx, GradMode::overwrite);
  auto checked = trainable_of(arena);
  REQUIRE(checked.size() == 1);
  checked.push_back({"x", x.view(), dx.view()});
  lst_test::check_gradients(checked, [&] {
    fc.forward(x, y, Mode::training);
    return lst_test::dot(y, g);
  });
  // A frozen bias beside a trainable weight: the weight's gradient alone.
  ParameterArena<double> other;
  Linear<double> fw(other, "fw", 5, 3);
  other.set_trainable("fw.bias", false);
  other.allocate(true);
  lst_test::randomize(other, rng);
  auto ctx2 = fw.forward(x, y, Mode::training);
  CHECK_FALSE(ctx2.input.empty());
  fw.backward(ctx2, g, dx, GradMode::overwrite);
  auto checked2 = trainable_of(other);
  REQUIRE(checked2.size() == 1);
  lst_test::check_gradients(checked2, [&] {
    fw.forward(x, y, Mode::training);
    return lst_test::dot(y, g);
  });
}

TEST_CASE("An encoder layer trains its biases alone (BitFit), or its LayerNorms alone") {
  for (const bool biases : {true, false}) {
    CAPTURE(biases);
    Rng rng(11);
    ParameterArena<double> arena;
    EncoderLayer<double> layer(arena, "layer.0",
                               EncoderLayerConfig{6, 2, 10, ActivationKind::gelu, 1e-5, 0.2}, 5);
    arena.set_trainable(biases ? is_bias : is_norm);
    arena.allocate(true);
    lst_test::randomize(arena, rng);
    for (std::size_t i = 0; i < arena.count(); ++i) {
      CAPTURE(arena.info(i).name);
      CHECK(arena.trainable(i) == (biases ? is_bias(arena.info(i)) : is_norm(arena.info(i))));
    }
    auto x = lst_test::randn(Shape{2, 4, 6}, rng);
    Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{2, 4}, 1);
    mask(1, 3) = 0;
    auto g = lst_test::randn(x.shape(), rng);
    Tensor<double> y(x.shape()), dx(x.shape());
    auto ctx = layer.forward(x, mask, y, Mode::training, 17);
    // No weight trains: the inputs kept for weight gradients (attention's x, fc1's) are not kept.
    CHECK(ctx.attention.x.empty());
    CHECK(ctx.ffn.fc1.input.empty());
    layer.backward(ctx, g, dx, GradMode::overwrite);
    auto checked = trainable_of(arena);
    checked.push_back({"x", x.view(), dx.view()});
    if (biases) lst_test::expect_zero(checked, "layer.0.attention.key.bias");
    lst_test::check_gradients(checked, [&] {
      layer.forward(x, mask, y, Mode::training, 17);
      return lst_test::dot(y, g);
    });
  }
}

TEST_CASE("Optimizers keep state for trainable parameters only and never move a frozen one") {
  for (const bool adamw : {true, false}) {
    CAPTURE(adamw);
    ParameterArena<float> arena;
    Linear<float> fc(arena, "fc", 16, 16);
    arena.set_trainable([](const ParameterArena<float>::Info& i) { return i.role == ParamRole::bias; });
    arena.allocate(true);
    fc.weight().value().fill(0.5f);
    fc.bias().value().fill(0.5f);
    fc.bias().grad().fill(1.0f);
    const std::size_t before = memory_tracker<Cpu>().current(MemCategory::optimizer);
    if (adamw) {
      AdamW<float> opt(arena, AdamWConfig{});
      CHECK(memory_tracker<Cpu>().current(MemCategory::optimizer) - before ==
            2 * 64);  // two 16-float moments
      CHECK(opt.first_moment().numel() == arena.gradient_size());
      opt.step(0.1);
    } else {
      Sgd<float> opt(arena, SgdConfig{0.9, 0.0});
      CHECK(opt.momentum_buffer().numel() == arena.gradient_size());
      opt.step(0.1);
      opt.step(0.1);
    }
    for (const float w : fc.weight().value().to_vector()) REQUIRE(w == 0.5f);
    for (const float b : fc.bias().value().to_vector()) REQUIRE(b < 0.5f);
  }
}

TEST_CASE("The global gradient norm and clipping cover the trainable parameters") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "fc", 8, 8);
  arena.set_trainable([](const ParameterArena<float>::Info& i) { return i.role == ParamRole::bias; });
  arena.allocate(true);
  fc.bias().grad().fill(3.0f);
  std::vector<ParameterArena<float>*> groups{&arena};
  CHECK(global_grad_norm(groups) == doctest::Approx(std::sqrt(8 * 9.0)));
  clip_grad_norm(groups, 1.0);
  CHECK(global_grad_norm(groups) == doctest::Approx(1.0).epsilon(1e-5));
}
