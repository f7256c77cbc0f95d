// SPDX-License-Identifier: MIT
#include <lst/core/initializers.hpp>
#include <lst/nn/dropout.hpp>

#include "gradient_check.hpp"

using namespace lst;

TEST_CASE("Dropout is reproducible from its seed and step, and differs across steps and seeds") {
  Tensor<float> x = Tensor<float>::full(Shape{64, 64}, 1.0f), a(x.shape()), b(x.shape()), c(x.shape());
  Dropout<float> d1(0.25, 1234), d2(0.25, 1234), d3(0.25, 999);
  d1.forward(x, a, Mode::training, 7);
  d2.forward(x, b, Mode::training, 7);
  CHECK(a.to_vector() == b.to_vector());
  d1.forward(x, c, Mode::training, 8);
  CHECK(a.to_vector() != c.to_vector());
  d3.forward(x, c, Mode::training, 7);
  CHECK(a.to_vector() != c.to_vector());
  // Kept elements are scaled by 1 / (1 - p); the kept fraction is close to 1 - p (4096 draws: sd ~0.007).
  index_t kept = 0;
  for (float v : a.to_vector()) {
    CHECK((v == 0.0f || v == doctest::Approx(1.0f / 0.75f)));
    kept += v != 0.0f;
  }
  CHECK(double(kept) / 4096 == doctest::Approx(0.75).epsilon(0.04));
  // Masks of neighbouring steps, and of neighbouring elements, are independent: kept in both ~ (1 - p)^2.
  d1.forward(x, c, Mode::training, 8);
  index_t both_steps = 0, both_neighbours = 0;
  for (index_t i = 0; i < 4096; ++i) {
    both_steps += a.data()[i] != 0.0f && c.data()[i] != 0.0f;
    both_neighbours += i > 0 && a.data()[i] != 0.0f && a.data()[i - 1] != 0.0f;
  }
  CHECK(double(both_steps) / 4096 == doctest::Approx(0.5625).epsilon(0.06));
  CHECK(double(both_neighbours) / 4095 == doctest::Approx(0.5625).epsilon(0.06));
}

TEST_CASE("Dropout is the identity in inference mode and its backward reuses the forward mask") {
  Rng rng(51);
  Dropout<double> d(0.5, 77);
  auto x = lst_test::randn(Shape{4, 10}, rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  d.forward(x, y, Mode::inference, 3);
  CHECK(y.to_vector() == x.to_vector());
  auto g = lst_test::randn(x.shape(), rng);
  auto ctx = d.forward(x, y, Mode::training, 3);
  d.backward(ctx, g, dx);
  lst_test::check_gradients({{"x", x.view(), dx.view()}}, [&] {
    d.forward(x, y, Mode::training, 3);
    return lst_test::dot(y, g);
  });
  CHECK_THROWS_AS(Dropout<float>(1.0, 1), Error);
}

TEST_CASE("Dropout of packed rows gives them their padded batch's masks") {
  Rng rng(53);
  Dropout<double> d(0.5, 91);
  const index_t B = 3, T = 7, C = 5;
  const std::vector<index_t> lengths = {7, 2, 4};
  Tensor<std::int32_t> mask(Shape{B, T});
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) mask.data()[b * T + t] = t < lengths[std::size_t(b)] ? 1 : 0;
  const auto packed = PackedSequences::from_mask(mask.data(), B, T);
  REQUIRE(packed.rows() == 13);
  auto x = lst_test::randn(Shape{B, T, C}, rng);
  Tensor<double> y(x.shape());
  d.forward(x, y, Mode::training, 4);
  // The real tokens, packed; then each sequence's first 2 rows.
  for (const auto& rows : {packed, packed.first_rows(2)}) {
    Tensor<double> in(Shape{rows.rows(), C}), out(in.shape());
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < rows.length(b); ++t) in[rows.first_row(b) + t].assign(x[b][t]);
    auto ctx = d.forward(in, out, Mode::training, 4, &rows);
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < rows.length(b); ++t)
        for (index_t c = 0; c < C; ++c) {
          CAPTURE(b);
          CAPTURE(t);
          REQUIRE(out.data()[(rows.first_row(b) + t) * C + c] == y.data()[(b * T + t) * C + c]);
        }
    // Backward takes the same mapping from the context.
    Tensor<double> dx(in.shape());
    d.backward(ctx, in, dx);
    CHECK(dx.to_vector() == out.to_vector());
  }
  // A shard of the batch (sequences 1 and 2, packed on their own): its rows keep the whole batch's masks.
  const auto shard = PackedSequences::from_mask(mask.data() + T, 2, T, /*first_sequence=*/1);
  CHECK(shard.origin(0, 1) == T + 1);
  Tensor<double> in(Shape{shard.rows(), C}), out(in.shape());
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < shard.length(b); ++t) in[shard.first_row(b) + t].assign(x[b + 1][t]);
  d.forward(in, out, Mode::training, 4, &shard);
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < shard.length(b); ++t)
      for (index_t c = 0; c < C; ++c)
        REQUIRE(out.data()[(shard.first_row(b) + t) * C + c] == y.data()[((b + 1) * T + t) * C + c]);
  Tensor<double> odd(Shape{7, 2}), odd_out(odd.shape());
  CHECK(lst_test::error_of([&] {
          d.forward(odd, odd_out, Mode::training, 4, &packed);
        }).find("13 packed rows do not tile an input of 14 elements") != std::string::npos);
}

TEST_CASE("Packed sequences from a right-padded mask, and bad masks") {
  const std::vector<std::int32_t> mask = {1, 1, 0, 1, 1, 1, 1, 0, 0};
  const auto p = PackedSequences::from_mask(mask.data(), 3, 3);
  CHECK(p.start == std::vector<index_t>{0, 2, 5, 6});
  CHECK(p.longest() == 3);
  CHECK(p.origin(2, 0) == 6);
  CHECK(p.first_rows(1).start == std::vector<index_t>{0, 1, 2, 3});
  CHECK(lst_test::error_of([&] { p.first_rows(2); }).find("sequence 2 has 1 rows, fewer than the 2") !=
        std::string::npos);
  const std::vector<std::int32_t> holes = {1, 0, 1}, empty = {0, 0, 0};
  CHECK(lst_test::error_of([&] {
          PackedSequences::from_mask(holes.data(), 1, 3);
        }).find("mask row 0 has a real token at position 2 after padding at position 1") !=
        std::string::npos);
  CHECK(lst_test::error_of([&] {
          PackedSequences::from_mask(empty.data(), 1, 3);
        }).find("mask row 0 has no real token") != std::string::npos);
  CHECK(PackedSequences::whole(2, 4).start == std::vector<index_t>{0, 4, 8});
}

TEST_CASE("Dropout's float masks (16 draws at once with AVX-512, 8 with AVX2) are the scalar definition's") {
  // Element i of the call at `step` is kept iff uniform_in_stream(stream_key(seed, step), i) >= p: checked
  // for every element, over lengths that leave partial vectors, for a plain tensor and for packed rows.
  for (const double p : {0.1, 0.3, 0.5}) {
    const Dropout<float> d(p, 4242);
    const float scale = float(1.0 / (1.0 - p));
    const std::uint64_t key = stream_key(4242, 11);
    const index_t n = 16 * 37 + 9;
    Tensor<float> x = Tensor<float>::full(Shape{n}, 2.0f), y(x.shape());
    d.forward(x, y, Mode::training, 11);
    for (index_t i = 0; i < n; ++i) {
      const bool keep = uniform_in_stream(key, std::uint64_t(i)) >= float(p);
      REQUIRE(y.data()[i] == (keep ? 2.0f * scale : 0.0f));
    }
    const index_t B = 2, T = 5, C = 24;  // rows of 24: a whole vector and a partial one
    Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{B, T}, 1);
    mask.data()[T + 3] = mask.data()[T + 4] = 0;
    const auto rows = PackedSequences::from_mask(mask.data(), B, T);
    Tensor<float> in = Tensor<float>::full(Shape{rows.rows(), C}, 2.0f), out(in.shape());
    d.forward(in, out, Mode::training, 11, &rows);
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < rows.length(b); ++t)
        for (index_t c = 0; c < C; ++c) {
          const bool keep = uniform_in_stream(key, std::uint64_t((b * T + t) * C + c)) >= float(p);
          REQUIRE(out.data()[(rows.first_row(b) + t) * C + c] == (keep ? 2.0f * scale : 0.0f));
        }
  }
}

TEST_CASE("Dropout from rows where they lie gives forward()'s bits on the rows gathered") {
  const Dropout<float> d(0.3, 777);
  const index_t B = 3, T = 6, C = 40;
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{B, T}, 1);
  mask.data()[5] = mask.data()[T + 4] = mask.data()[T + 5] = 0;
  const auto packed = PackedSequences::from_mask(mask.data(), B, T);
  Rng rng(5);
  Tensor<float> buffer(Shape{2 * packed.rows(), C});
  init::uniform(buffer.view(), rng, -1, 1);
  std::vector<const float*> at;
  Tensor<float> gathered(Shape{packed.rows(), C});
  for (index_t r = 0; r < packed.rows(); ++r) {  // every other row of the buffer, backwards
    at.push_back(buffer.data() + (2 * packed.rows() - 1 - 2 * r) * C);
    std::copy_n(at.back(), C, gathered.data() + r * C);
  }
  for (const Mode mode : {Mode::training, Mode::inference})
    for (const PackedSequences* rows : {&packed, static_cast<const PackedSequences*>(nullptr)}) {
      Tensor<float> from_rows(gathered.shape()), from_block(gathered.shape());
      d.forward(at.data(), from_rows, mode, 3, rows);
      d.forward(gathered, from_block, mode, 3, rows);
      CHECK(from_rows.to_vector() == from_block.to_vector());
    }
}
