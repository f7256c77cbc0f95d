// SPDX-License-Identifier: MIT
// Tensors, views, expression templates and reductions (core/tensor.hpp, core/expression.hpp,
// core/reduction.hpp).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "gradient_check.hpp"

using namespace lst;

// Every heap allocation of this test program is counted, so "allocates nothing" is checked against the C++
// runtime itself, not only against lst's own tracker.
static std::atomic<long> g_heap_allocations{0};
static std::uint32_t float_bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
void* operator new(std::size_t n) {
  ++g_heap_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("Shape: extents, rows/cols, printing, rank limit") {
  const Shape s{2, 3, 4};
  CHECK(s.numel() == 24);
  CHECK(s.rows() == 6);
  CHECK(s.cols() == 4);
  CHECK(s.str() == "(2, 3, 4)");
  CHECK(Shape{5}.str() == "(5,)");
  CHECK(Shape{}.numel() == 1);
  CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5}), ShapeError);
  CHECK_THROWS_AS((Shape{2, -1}), ShapeError);
}

TEST_CASE("Views: index, slice, reshape share memory; bad ranges raise") {
  Tensor<float> t(Shape{4, 3});
  for (index_t i = 0; i < 12; ++i) t.data()[i] = float(i);
  CHECK(t[2](1) == 7);
  auto s = t.slice(1, 3);
  CHECK(s.shape() == (Shape{2, 3}));
  CHECK(s(0, 0) == 3);
  s(1, 2) = 100;
  CHECK(t(2, 2) == 100);
  auto r = t.reshape(Shape{2, 2, 3});
  CHECK(r(1, 0, 2) == 100);
  CHECK_THROWS_AS(t.reshape(Shape{5, 2}), ShapeError);
  CHECK_THROWS_AS(t.slice(2, 5), ShapeError);
  CHECK_THROWS_AS(t[4], ShapeError);
  CHECK_THROWS_AS(t(0, 3), ShapeError);
  const ConstView<float> c = t.view();  // writable converts to read-only
  CHECK(c(3, 0) == 9);
}

TEST_CASE("Elementwise expressions match scalar evaluation, with broadcasting") {
  Rng rng(1);
  auto x = lst_test::randn(Shape{2, 3, 5}, rng);
  auto row = lst_test::randn(Shape{5}, rng);        // broadcast over rows (a bias)
  auto col = lst_test::randn(Shape{2, 3, 1}, rng);  // broadcast over columns (a per-row statistic)
  Tensor<double> y(x.shape());
  y = (x - col) * row / 2.0 + exp(-abs(x)) * sigmoid(x) - maximum(x, 0.25) + where(greater(x, 0.0), x, 3.0);
  for (index_t a = 0; a < 2; ++a)
    for (index_t b = 0; b < 3; ++b)
      for (index_t j = 0; j < 5; ++j) {
        const double v = x(a, b, j);
        const double want = (v - col(a, b, 0)) * row(j) / 2.0 + std::exp(-std::abs(v)) / (1 + std::exp(-v)) -
                            std::max(v, 0.25) + (v > 0 ? v : 3.0);
        CHECK(y(a, b, j) == doctest::Approx(want).epsilon(1e-12));
      }
  // Rank-4 broadcast in the middle axes: (2, 1, 3, 1) against (1, 4, 1, 5).
  auto p = lst_test::randn(Shape{2, 1, 3, 1}, rng);
  auto q = lst_test::randn(Shape{4, 1, 5}, rng);
  Tensor<double> z(Shape{2, 4, 3, 5});
  z = p * q;
  CHECK(z(1, 2, 0, 4) == doctest::Approx(p(1, 0, 0, 0) * q(2, 0, 4)));
  CHECK(z(0, 3, 2, 1) == doctest::Approx(p(0, 0, 2, 0) * q(3, 0, 1)));
}

TEST_CASE("Activation functions: GELU (erf and tanh), ReLU, tanh, sqrt, rsqrt, log") {
  Tensor<double> x(Shape{3}), y(Shape{3});
  x(0) = -1.5, x(1) = 0.3, x(2) = 2.0;
  y = gelu(x);
  CHECK(y(0) == doctest::Approx(-1.5 * 0.5 * std::erfc(1.5 / std::sqrt(2.0))));
  y = gelu_tanh(x);
  CHECK(y(2) == doctest::Approx(0.5 * 2 * (1 + std::tanh(std::sqrt(2 / M_PI) * (2 + 0.044715 * 8)))));
  y = relu(x) + tanh(x);
  CHECK(y(0) == doctest::Approx(std::tanh(-1.5)));
  y = sqrt(abs(x)) * rsqrt(abs(x)) + log(square(x));
  CHECK(y(1) == doctest::Approx(1 + std::log(0.09)));
}

TEST_CASE("Incompatible broadcasts raise ShapeError naming both shapes") {
  Tensor<float> a = Tensor<float>::zeros(Shape{2, 3}), b = Tensor<float>::zeros(Shape{2, 4});
  Tensor<float> y(Shape{2, 3});
  const std::string msg = lst_test::error_of([&] { y = a + b; });
  CHECK(msg.find("(2, 3)") != std::string::npos);
  CHECK(msg.find("(2, 4)") != std::string::npos);
  Tensor<float> big = Tensor<float>::zeros(Shape{4, 2, 3});
  CHECK_THROWS_AS(y = big * 2.0f, ShapeError);  // cannot shrink into a lower rank
}

TEST_CASE("Assignment evaluates a whole expression in one pass: no allocation of any kind") {
  Rng rng(2);
  auto x = lst_test::randn(Shape{64, 48}, rng), gamma = lst_test::randn(Shape{48}, rng);
  auto mean = lst_test::randn(Shape{64, 1}, rng), rstd = lst_test::randn(Shape{64, 1}, rng);
  Tensor<double> y(x.shape()), s(Shape{64, 1}), c(Shape{48});
  const std::size_t lst_before = memory_tracker().allocation_count();
  const long heap_before = g_heap_allocations.load();
  y = (x - mean) * rstd * gamma + 1.0;  // LayerNorm's output, a 4-operand broadcast
  y += gelu(y) * x;                     // in-place accumulate
  s = row_sum(x * y);                   // reduction of an expression
  c = col_sum(x - mean);                // column reduction
  c += col_sum(x);                      // accumulating column reduction
  CHECK(memory_tracker().allocation_count() == lst_before);
  CHECK(g_heap_allocations.load() == heap_before);
  // And the values are right.
  double want = 0;
  for (index_t j = 0; j < 48; ++j) want += x(5, j) * y(5, j);
  CHECK(s(5, 0) == doctest::Approx(want));
  double cw = 0;
  for (index_t i = 0; i < 64; ++i) cw += 2 * x(i, 7) - mean(i, 0);
  CHECK(c(7) == doctest::Approx(cw));
}

TEST_CASE("Row reductions: sum, max, mean, two-pass variance; column sum") {
  Tensor<double> x(Shape{2, 4});
  const double v[] = {1, 2, 3, 4, 1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4};
  std::copy(v, v + 8, x.data());
  Tensor<double> r(Shape{2});
  r = row_sum(x);
  CHECK(r(0) == 10);
  r = row_max(x * -1.0);
  CHECK(r(1) == -(1e8 + 1));
  r = row_mean(x);
  CHECK(r(0) == 2.5);
  r = row_variance(x);
  CHECK(r(0) == doctest::Approx(1.25));
  CHECK(r(1) == doctest::Approx(1.25));  // E[x^2] - E[x]^2 would lose every digit here
  Tensor<double> c(Shape{4});
  c = col_sum(x);
  CHECK(c(3) == 4 + 1e8 + 4);
  Tensor<double> wrong(Shape{3});
  CHECK_THROWS_AS(wrong = row_sum(x), ShapeError);
}

TEST_CASE("Tensors are move-only owners; clone copies; resize reallocates only on size change") {
  Tensor<float> a = Tensor<float>::full(Shape{3, 2}, 1.5f);
  Tensor<float> b = a.clone();
  b(0, 0) = 7;
  CHECK(a(0, 0) == 1.5f);
  Tensor<float> c = std::move(a);
  CHECK(a.empty());
  CHECK(c(2, 1) == 1.5f);
  float* before = c.data();
  c.resize(Shape{2, 3});
  CHECK(c.data() == before);
  c.resize(Shape{4, 4});
  CHECK(c.numel() == 16);
  Tensor<float> d(Shape{2, 3});
  CHECK_THROWS_AS(d.view().assign(c.view()), ShapeError);
}

TEST_CASE("f16 and bf16 storage conversions round to nearest even") {
  CHECK(to_float(to_f16(1.0f)) == 1.0f);
  CHECK(to_float(to_f16(65504.0f)) == 65504.0f);
  CHECK(std::isinf(to_float(to_f16(65536.0f))));
  CHECK(to_float(to_f16(5.9604644775390625e-8f)) == 5.9604644775390625e-8f);  // smallest subnormal
  CHECK(to_float(to_f16(2.0f * 5.9604644775390625e-8f)) == 2.0f * 5.9604644775390625e-8f);
  CHECK(to_f16(-0.0f).bits == 0x8000);
  CHECK(to_f16(1.0f + 1.0f / 2048).bits == to_f16(1.0f).bits);  // tie -> even
  CHECK(to_f16(1.0f + 3.0f / 2048).bits == to_f16(1.0f).bits + 2);
  CHECK(std::isnan(to_float(to_f16(std::nanf("")))));
  CHECK(to_float(to_bf16(1.0f)) == 1.0f);
  CHECK(to_bf16(1.0f + 1.0f / 256).bits == to_bf16(1.0f).bits);  // tie -> even
  CHECK(std::isnan(to_float(to_bf16(std::nanf("")))));
  // Exhaustive round trip of every finite f16 value.
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const f16 h{static_cast<std::uint16_t>(b)};
    if (((b >> 10) & 0x1f) == 0x1f) continue;
    REQUIRE(to_f16(to_float(h)).bits == h.bits);
  }
}

TEST_CASE(
    "Copies and fills of long tensors (split into chunks over threads) are exact, ragged end included") {
  const index_t n = 3 * 65536 + 123;
  Tensor<float> a(Shape{n});
  for (index_t i = 0; i < n; ++i) a.data()[i] = float(i) * 0.5f - 7.0f;
  const Tensor<float> b = clone_as(a.cview(), MemCategory::workspace);
  REQUIRE(std::equal(a.data(), a.data() + n, b.data()));
  a.fill(3.25f);
  CHECK(std::all_of(a.data(), a.data() + n, [](float v) { return v == 3.25f; }));
  Tensor<float> z = Tensor<float>::zeros(Shape{n});
  CHECK(std::all_of(z.data(), z.data() + n, [](float v) { return v == 0.0f; }));
}

TEST_CASE("Bulk f16 / bf16 conversions give the element-wise conversions' bits") {
  // Every bit pattern's float (NaNs aside, whose payloads the F16C path may keep), plus floats that probe the
  // rounding: ties, subnormal boundaries, overflow to infinity.
  std::vector<float> x;
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    if (((b >> 10) & 0x1f) != 0x1f || (b & 0x3ff) == 0) x.push_back(to_float(f16{std::uint16_t(b)}));
    if (((b >> 7) & 0xff) != 0xff || (b & 0x7f) == 0) x.push_back(to_float(bf16{std::uint16_t(b)}));
  }
  Rng rng(17);
  for (int i = 0; i < 20000; ++i) {
    const float f = float(rng.normal() * std::pow(2.0, rng.uniform(-30, 20)));
    x.push_back(f);
    x.push_back(std::nextafter(f, 0.0f));
  }
  for (float f : {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f, 65520.0f, 65536.0f, 1e30f, -1e-30f,
                  2.98023224e-8f, 2.98023253e-8f, 6.1035156e-5f, 6.1035152e-5f})
    x.push_back(f);
  const std::size_t n = x.size();  // not a multiple of 8: the scalar tail runs too
  std::vector<std::uint16_t> h(n), b(n);
  std::vector<float> back(n);
  floats_to_f16(x.data(), h.data(), n);
  floats_to_bf16(x.data(), b.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(h[i] == to_f16(x[i]).bits);
    REQUIRE(b[i] == to_bf16(x[i]).bits);
  }
  f16_to_floats(h.data(), back.data(), n);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(float_bits_of(back[i]) == float_bits_of(to_float(f16{h[i]})));
  bf16_to_floats(b.data(), back.data(), n);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(float_bits_of(back[i]) == float_bits_of(to_float(bf16{b[i]})));
  // NaN stays NaN.
  const float nan = std::nanf("");
  std::uint16_t hn = 0, bn = 0;
  float fn = 0;
  floats_to_f16(&nan, &hn, 1);
  floats_to_bf16(&nan, &bn, 1);
  f16_to_floats(&hn, &fn, 1);
  CHECK(std::isnan(fn));
  bf16_to_floats(&bn, &fn, 1);
  CHECK(std::isnan(fn));
}

TEST_CASE("Broadcast evaluation across chunk boundaries (rows longer than expr_chunk, odd lengths)") {
  Rng rng(3);
  const index_t cols = 2 * expr_chunk + 22;
  auto x = lst_test::randn(Shape{3, cols}, rng), per_row = lst_test::randn(Shape{3, 1}, rng);
  auto per_col = lst_test::randn(Shape{cols}, rng);
  Tensor<double> y(x.shape()), s(Shape{3}), c(Shape{cols});
  y = x * per_row + per_col - per_row;
  s = row_sum(x * per_row);
  c = col_sum(x * per_row);
  for (index_t i = 0; i < 3; ++i) {
    double want_s = 0;
    for (index_t j = 0; j < cols; ++j) {
      CHECK(y(i, j) == doctest::Approx(x(i, j) * per_row(i, 0) + per_col(j) - per_row(i, 0)));
      want_s += x(i, j) * per_row(i, 0);
    }
    CHECK(s(i) == doctest::Approx(want_s));
  }
  for (index_t j : {index_t(0), expr_chunk - 1, expr_chunk, cols - 1})
    CHECK(c(j) ==
          doctest::Approx(x(0, j) * per_row(0, 0) + x(1, j) * per_row(1, 0) + x(2, j) * per_row(2, 0)));
}

TEST_CASE("col_sum of a tensor: the serial loop's bits on one thread and two, ragged columns, any rank") {
  // A tensor's own columns take the packed path (packets of columns in registers); it must add the rows in
  // the order `for i: for c: out[c] += x[i][c]` does, from out's value when accumulating.
  Rng rng(11);
  for (const Shape& shape :
       {Shape{3000, 48}, Shape{300, 200}, Shape{700, 37}, Shape{2, 150, 45}, Shape{5, 3}}) {
    Tensor<float> x(shape);
    init::uniform(x.view(), rng, -1, 1);
    const index_t cols = shape.cols(), rows = x.numel() / cols;
    std::vector<float> want(static_cast<std::size_t>(cols), 0.0f), want_acc(static_cast<std::size_t>(cols));
    for (index_t c = 0; c < cols; ++c) want_acc[std::size_t(c)] = 0.25f * float(c);
    for (index_t i = 0; i < rows; ++i)
      for (index_t c = 0; c < cols; ++c) {
        want[std::size_t(c)] += x.data()[i * cols + c];
        want_acc[std::size_t(c)] += x.data()[i * cols + c];
      }
    const int before = threads();
    for (const int t : {1, 2}) {
      set_threads(t);
      Tensor<float> got(Shape{cols}), acc(Shape{cols});
      for (index_t c = 0; c < cols; ++c) acc(c) = 0.25f * float(c);
      got = col_sum(x);
      acc += col_sum(x);
      CHECK(got.to_vector() == want);
      CHECK(acc.to_vector() == want_acc);
    }
    set_threads(before);
  }
}

TEST_CASE("Empty and moved-from tensors have no elements; oversized shapes are errors, not wild pointers") {
  Tensor<float> t;
  CHECK(t.numel() == 0);
  CHECK(t.empty());
  t.fill(1.0f);  // nothing to fill, nothing touched
  t += 1.0f;
  CHECK(t.clone().numel() == 0);
  CHECK(t.to_vector().empty());
  t.resize(Shape{1});
  t(0) = 3.0f;  // resize from nothing allocates
  CHECK(t(0) == 3.0f);
  Tensor<float> a(Shape{4});
  Tensor<float> b = std::move(a);
  CHECK(a.numel() == 0);
  a.resize(Shape{2, 2});
  a.fill(0.0f);
  CHECK(a(1, 1) == 0.0f);
  CHECK(TensorView<float>().numel() == 0);
  CHECK_THROWS_AS((Shape{index_t(1) << 32, index_t(1) << 32}), ShapeError);
  CHECK_THROWS_AS(Tensor<float>(Shape{index_t(1) << 62}), Error);
}

TEST_CASE("A broadcast operand that overlaps the destination is an error; a same-shape one is fine") {
  Tensor<double> x(Shape{3, 2});
  for (index_t i = 0; i < 6; ++i) x.data()[i] = double(i + 1);
  CHECK(lst_test::error_of([&] { x = x - expr(x[0]); }).find("overlaps the destination") !=
        std::string::npos);
  CHECK_THROWS_AS(x += expr(x[0]), Error);
  CHECK(x(2, 1) == 6.0);  // untouched by the refused assignments
  x = x * 2.0 + x;        // same shape: each element reads only itself
  CHECK(x(2, 1) == 18.0);
}
