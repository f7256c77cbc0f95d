// SPDX-License-Identifier: MIT
#include <lst/core/initializers.hpp>
#include <lst/nn/linear.hpp>

#include "gradient_check.hpp"

using namespace lst;
using lst_test::Checked;

TEST_CASE("Linear backward matches finite differences (with and without bias, odd shapes, rank 3)") {
  for (bool bias : {true, false}) {
    Rng rng(7 + bias);
    ParameterArena<double> arena("test");
    Linear<double> fc(arena, "fc", 5, 3, bias);
    arena.allocate(true);
    lst_test::randomize(arena, rng);
    auto x = lst_test::randn(Shape{2, 3, 5}, rng);
    auto g = lst_test::randn(Shape{2, 3, 3}, rng);
    Tensor<double> y(Shape{2, 3, 3}), dx(x.shape());
    auto ctx = fc.forward(x, y, Mode::training);
    fc.backward(ctx, g, dx, GradMode::overwrite);

    auto checked = lst_test::parameters_of(arena);
    checked.push_back({"x", x.view(), dx.view()});
    lst_test::check_gradients(checked, [&] {
      fc.forward(x, y, Mode::inference);
      return lst_test::dot(y, g);
    });
  }
}

TEST_CASE("Linear forward equals x W^T + b computed by hand") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "fc", 2, 2);
  arena.allocate(false);
  const float w[] = {1, 2, 3, 4}, b[] = {10, 20};
  std::copy(w, w + 4, fc.weight().value().data());
  std::copy(b, b + 2, fc.bias().value().data());
  Tensor<float> x(Shape{1, 2}), y(Shape{1, 2});
  x(0, 0) = 1;
  x(0, 1) = -1;
  fc.forward(x, y, Mode::inference);
  CHECK(y(0, 0) == doctest::Approx(1 - 2 + 10));
  CHECK(y(0, 1) == doctest::Approx(3 - 4 + 20));
}

TEST_CASE("Linear GradMode: accumulate adds, ignore leaves gradients alone, empty dx is skipped") {
  Rng rng(3);
  ParameterArena<double> arena;
  Linear<double> fc(arena, "fc", 4, 3);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{5, 4}, rng);
  auto g = lst_test::randn(Shape{5, 3}, rng);
  Tensor<double> y(Shape{5, 3});
  auto ctx = fc.forward(x, y, Mode::training);
  fc.backward(ctx, g, TensorView<double>(), GradMode::overwrite);
  const auto once = arena.grads().to_vector();
  fc.backward(ctx, g, TensorView<double>(), GradMode::accumulate);
  const auto twice = arena.grads().to_vector();
  for (std::size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]));
  fc.backward(ctx, g, TensorView<double>(), GradMode::ignore);
  CHECK(arena.grads().to_vector() == twice);
}

TEST_CASE("Linear keeps nothing in inference mode and its input in training mode") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "fc", 8, 4);
  arena.allocate(true);
  Tensor<float> x = Tensor<float>::zeros(Shape{3, 8}), y(Shape{3, 4});
  auto& tracker = memory_tracker();
  const std::size_t before = tracker.current(MemCategory::activations);
  {
    auto ctx = fc.forward(x, y, Mode::inference);
    CHECK(tracker.current(MemCategory::activations) == before);
    CHECK(ctx.input.empty());
  }
  auto ctx = fc.forward(x, y, Mode::training);
  CHECK(tracker.current(MemCategory::activations) ==
        before + Allocator<Cpu>::footprint(3 * 8 * sizeof(float)));
}

TEST_CASE("Linear rejects bad shapes with a message naming the layer and both shapes") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "encoder.0.query", 8, 4);
  arena.allocate(false);
  Tensor<float> x = Tensor<float>::zeros(Shape{2, 7}), y(Shape{2, 4});
  const std::string msg = lst_test::error_of([&] { fc.forward(x, y, Mode::inference); });
  CHECK(msg.find("encoder.0.query") != std::string::npos);
  CHECK(msg.find("(2, 7)") != std::string::npos);
  CHECK(msg.find("(4, 8)") != std::string::npos);
  Tensor<float> x2 = Tensor<float>::zeros(Shape{2, 8}), y2(Shape{2, 5});
  const std::string msg2 = lst_test::error_of([&] { fc.forward(x2, y2, Mode::inference); });
  CHECK(msg2.find("(2, 5)") != std::string::npos);
  CHECK(msg2.find("(2, 8)") != std::string::npos);
  CHECK_THROWS_AS(fc.forward(x, y, Mode::inference), ShapeError);
}

TEST_CASE("Linear refuses parameter gradients from a frozen arena") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "frozen", 2, 2);
  arena.allocate(false);
  Tensor<float> x = Tensor<float>::zeros(Shape{1, 2}), y(Shape{1, 2});
  auto ctx = fc.forward(x, y, Mode::training);
  CHECK(lst_test::error_of([&] {
          fc.backward(ctx, y, TensorView<float>(), GradMode::overwrite);
        }).find("frozen") != std::string::npos);
  CHECK_NOTHROW(fc.backward(ctx, y, TensorView<float>(), GradMode::ignore));
}

TEST_CASE("Linear refuses to run in place (output overlapping input), before writing anything") {
  ParameterArena<float> arena;
  Linear<float> fc(arena, "square", 2, 2);
  arena.allocate(false);
  Tensor<float> x = Tensor<float>::full(Shape{1, 2}, 3.0f);
  CHECK(lst_test::error_of([&] { fc.forward(x, x, Mode::inference); }).find("overlaps") != std::string::npos);
  CHECK(x(0, 0) == 3.0f);
}

TEST_CASE("Linear::input_gradient is backward_from's dx alone, and may reuse the saved input's buffer") {
  Rng rng(23);
  ParameterArena<double> arena;
  Linear<double> lin(arena, "proj", 5, 3);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{4, 5}, rng), dy = lst_test::randn(Shape{4, 3}, rng);
  Tensor<double> dx(x.shape());
  lin.backward_from(x, dy, dx, GradMode::overwrite);
  lin.input_gradient(dy, x);  // over the input, as FeedForward's backward does after the weight gradients
  CHECK(x.to_vector() == dx.to_vector());
  lin.input_gradient(dy, x, 1.0);  // adds
  for (index_t i = 0; i < x.numel(); ++i) CHECK(x.data()[i] == doctest::Approx(2 * dx.data()[i]));
  Tensor<double> wrong(Shape{4, 4});
  CHECK(lst_test::error_of([&] { lin.input_gradient(dy, wrong); }).find("proj") != std::string::npos);
  CHECK_THROWS_AS(lin.input_gradient(dy, TensorView<double>(const_cast<double*>(dy.data()), Shape{4, 3})),
                  Error);
}

TEST_CASE(
    "Linear over rows anywhere (a row table): the forward and parameter gradients of the rows gathered") {
  // 300 rows take the narrow kernel in place; 20 rows take Eigen on a gathered copy. Either way the bits
  // are those of the contiguous rows.
  for (const index_t rows : {300, 20}) {
    INFO(rows << " rows");
    Rng rng(41);
    ParameterArena<float> arena;
    Linear<float> lin(arena, "ladder", 64, 16);
    arena.allocate(true);
    init::uniform(arena.values(), rng, -1, 1);
    Tensor<float> buffer(Shape{2 * rows, 64});
    init::uniform(buffer.view(), rng, -1, 1);
    std::vector<const float*> at(static_cast<std::size_t>(rows));
    Tensor<float> x(Shape{rows, 64});
    for (index_t i = 0; i < rows; ++i) {
      at[std::size_t(i)] =
          buffer.data() + ((2 * rows - 1 - 2 * i) % (2 * rows)) * 64;  // backwards, every other
      std::copy_n(at[std::size_t(i)], 64, x.data() + i * 64);
    }
    const cpu::RowTable table{at.data(), rows, 64};
    Tensor<float> y1(Shape{rows, 16}), y2(Shape{rows, 16});
    lin.apply(table, y1);
    lin.apply(x, y2);
    CHECK(y1.to_vector() == y2.to_vector());
    Tensor<float> dy(Shape{rows, 16});
    init::uniform(dy.view(), rng, -1, 1);
    lin.weight_gradient(table, dy, GradMode::overwrite);
    const auto from_table = arena.grads().to_vector();
    lin.backward_from(x, dy, {}, GradMode::overwrite);
    CHECK(arena.grads().to_vector() == from_table);
    lin.weight_gradient(table, dy, GradMode::accumulate);  // twice the gradient
    const auto twice_from_table = arena.grads().to_vector();
    lin.backward_from(x, dy, {}, GradMode::overwrite);
    lin.backward_from(x, dy, {}, GradMode::accumulate);
    CHECK(arena.grads().to_vector() == twice_from_table);
    std::vector<float> before = arena.grads().to_vector();
    lin.weight_gradient(table, dy, GradMode::ignore);
    CHECK(arena.grads().to_vector() == before);
    Tensor<float> wrong(Shape{rows, 8});
    CHECK(lst_test::error_of([&] { lin.apply(table, wrong); }).find("ladder") != std::string::npos);
    CHECK(lst_test::error_of([&] {
            lin.weight_gradient(table, wrong, GradMode::overwrite);
          }).find("ladder") != std::string::npos);
  }
}
