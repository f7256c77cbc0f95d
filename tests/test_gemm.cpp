// SPDX-License-Identifier: MIT
#include <lst/lst.hpp>

#include "gradient_check.hpp"

using namespace lst;

namespace {
// Naive reference: C = alpha op(A) op(B) + beta C, with A and B given as dense row-major tensors.
double ref_at(const Tensor<double>& a, const Tensor<double>& b, Trans ta, Trans tb, index_t i, index_t j) {
  const index_t k = ta == Trans::no ? a.dim(1) : a.dim(0);
  double s = 0;
  for (index_t p = 0; p < k; ++p)
    s += (ta == Trans::no ? a(i, p) : a(p, i)) * (tb == Trans::no ? b(p, j) : b(j, p));
  return s;
}
}  // namespace

TEST_CASE("gemm: every transpose combination, alpha and beta, odd sizes") {
  Rng rng(11);
  const index_t M = 7, N = 5, K = 3;
  for (Trans ta : {Trans::no, Trans::yes})
    for (Trans tb : {Trans::no, Trans::yes})
      for (double beta : {0.0, 1.0, -0.5}) {
        auto a = lst_test::randn(ta == Trans::no ? Shape{M, K} : Shape{K, M}, rng);
        auto b = lst_test::randn(tb == Trans::no ? Shape{K, N} : Shape{N, K}, rng);
        auto c = lst_test::randn(Shape{M, N}, rng);
        auto c0 = c.clone();
        if (beta == 0.0) c.fill(std::nan(""));  // beta = 0 must not read C
        gemm<double>(ta, tb, 2.0, a, b, beta, c);
        for (index_t i = 0; i < M; ++i)
          for (index_t j = 0; j < N; ++j)
            CHECK(c(i, j) == doctest::Approx(2.0 * ref_at(a, b, ta, tb, i, j) + beta * c0(i, j)));
      }
}

TEST_CASE("gemm on strided column blocks (attention heads) and batched") {
  Rng rng(12);
  auto x = lst_test::randn(Shape{2, 4, 6}, rng);  // (B, T, C), 2 heads of width 3
  Tensor<double> s(Shape{2, 2, 4, 4});            // (B, H, T, T)
  gemm_batched<double>(Trans::no, Trans::yes, 1.0, MatrixRef<const double>(x.data(), 4, 3, 6), 3,
                       MatrixRef<const double>(x.data(), 4, 3, 6), 3, 0.0, MatrixRef<double>(s.data(), 4, 4),
                       16,
                       2);  // the two heads of sequence 0
  for (index_t h = 0; h < 2; ++h)
    for (index_t i = 0; i < 4; ++i)
      for (index_t j = 0; j < 4; ++j) {
        double want = 0;
        for (index_t d = 0; d < 3; ++d) want += x(0, i, h * 3 + d) * x(0, j, h * 3 + d);
        CHECK(s(0, h, i, j) == doctest::Approx(want));
      }
}

TEST_CASE("gemm rejects mismatched shapes with all three shapes in the message") {
  Tensor<float> a = Tensor<float>::zeros(Shape{2, 3}), b = Tensor<float>::zeros(Shape{4, 5}),
                c = Tensor<float>::zeros(Shape{2, 5});
  const std::string msg = lst_test::error_of([&] { gemm<float>(Trans::no, Trans::no, 1.f, a, b, 0.f, c); });
  CHECK(msg.find("(2, 3)") != std::string::npos);
  CHECK(msg.find("(4, 5)") != std::string::npos);
  CHECK_THROWS_AS(gemm<float>(Trans::no, Trans::no, 1.f, a, b, 0.f, c), ShapeError);
}

namespace {
/// One float gemm() on a narrow shape against a double reference: A and B with leading dimensions wider than
/// their rows, C prefilled (NaN when beta = 0, which must not be read). Returns C.
std::vector<float> check_narrow(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha, float beta,
                                std::uint64_t seed) {
  CAPTURE(int(ta));
  CAPTURE(int(tb));
  CAPTURE(M);
  CAPTURE(N);
  CAPTURE(K);
  CAPTURE(beta);
  REQUIRE(cpu::narrow_gemm_applies(ta, M, N, K));
  Rng rng(seed);
  const index_t a_rows = ta == Trans::no ? M : K, a_cols = ta == Trans::no ? K : M;
  const index_t b_rows = tb == Trans::no ? K : N, b_cols = tb == Trans::no ? N : K;
  const index_t lda = a_cols + 3, ldb = b_cols + 5, ldc = N + 16;
  std::vector<float> a(std::size_t(a_rows * lda)), b(std::size_t(b_rows * ldb)), c(std::size_t(M * ldc));
  for (auto* v : {&a, &b, &c})
    for (float& x : *v) x = float(rng.normal());
  const std::vector<float> c0 = c;
  if (beta == 0.0f) std::fill(c.begin(), c.end(), std::nanf(""));
  gemm<float>(ta, tb, alpha, MatrixRef<const float>(a.data(), a_rows, a_cols, lda),
              MatrixRef<const float>(b.data(), b_rows, b_cols, ldb), beta,
              MatrixRef<float>(c.data(), M, N, ldc));
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double want = 0;
      for (index_t k = 0; k < K; ++k)
        want += double(ta == Trans::no ? a[std::size_t(i * lda + k)] : a[std::size_t(k * lda + i)]) *
                double(tb == Trans::no ? b[std::size_t(k * ldb + j)] : b[std::size_t(j * ldb + k)]);
      want = alpha * want + (beta == 0.0f ? 0.0 : beta * double(c0[std::size_t(i * ldc + j)]));
      REQUIRE(c[std::size_t(i * ldc + j)] == doctest::Approx(want).epsilon(1e-4).scale(std::sqrt(double(K))));
    }
  // The padding past N in each row of C is untouched.
  for (index_t i = 0; i < M; ++i)
    for (index_t j = N; j < ldc; ++j)
      if (beta != 0.0f) REQUIRE(c[std::size_t(i * ldc + j)] == c0[std::size_t(i * ldc + j)]);
  return c;
}
}  // namespace

TEST_CASE("Narrow GEMM: forward, input-gradient and weight-gradient shapes against a double reference") {
  // Forward C = X W^T and input gradients C = dY W (op(A) the activations): whole tiles and a remainder (301
  // rows: tiles of 6, 8, 12 and 24 rows leave some), the widest stripes and single packets (five packets take
  // both: 3 + 1 + 1 with AVX-512, 2 + 2 + 1 with AVX2), K up to 384.
  constexpr index_t L = cpu::packet_size<float>;
  for (const Trans tb : {Trans::yes, Trans::no})
    for (const index_t M : {256, 301})
      for (const auto& nk : {std::pair<index_t, index_t>{48, 48}, {5 * L, 64}, {16, 384}, {64, 5}, {192, 48}})
        for (const float beta : {0.0f, 1.0f, -0.5f})
          check_narrow(Trans::no, tb, M, nk.first, nk.second, 1.5f, beta, 7);
  // The backbone's wide products, which it takes too: many stripes, and K past one block (1000 = three blocks
  // of 256 and a partial one) with the transposed W larger than a 16 x 16 transpose tile's multiple.
  for (const Trans tb : {Trans::yes, Trans::no})
    check_narrow(Trans::no, tb, 300, 25 * L, 1000, 1.0f, 0.0f, 11);
  check_narrow(Trans::no, Trans::yes, 260, 24 * L, 390, 1.0f, 1.0f, 12);
  // Weight gradients C = dY^T X (op(A) = A^T): the reduction over tokens in one block, and in blocks of 256
  // with a partial last block.
  for (const index_t K : {256, 700})
    for (const auto& mn : {std::pair<index_t, index_t>{48, 48}, {3, 384}, {192, 48}, {48, 96}})
      for (const float beta : {0.0f, 1.0f})
        check_narrow(Trans::yes, Trans::no, mn.first, mn.second, K, 1.0f, beta, 8);
}

namespace {
/// `rows` rows of `cols` values scattered over a buffer twice as long, in a shuffled order (as a batch read
/// from the tap cache lies), and the same rows gathered into one block.
struct ScatteredRows {
  Tensor<float> buffer, gathered;
  std::vector<const float*> row;
  ScatteredRows(index_t rows, index_t cols, std::uint64_t seed)
      : buffer(Shape{2 * rows, cols}), gathered(Shape{rows, cols}), row(std::size_t(rows)) {
    Rng rng(seed);
    init::uniform(buffer.view(), rng, -1, 1);
    for (index_t i = 0; i < rows; ++i) {
      const index_t at = (i * 7919 + 3) % (2 * rows);  // 7919 is prime: distinct for rows < 7919
      row[std::size_t(i)] = buffer.data() + at * cols;
      std::copy_n(row[std::size_t(i)], cols, gathered.data() + i * cols);
    }
  }
  cpu::RowTable table() const { return {row.data(), index_t(row.size()), gathered.dim(1)}; }
};
}  // namespace

TEST_CASE("Narrow GEMM over a row table: the bits of the product on the rows gathered into one block") {
  Rng rng(31);
  // Forward C = X W^T + bias, X's rows anywhere: whole tiles and a remainder, one and several stripes.
  for (const index_t M : {256, 301})
    for (const auto& nk : {std::pair<index_t, index_t>{48, 48}, {48, 384}, {80, 64}, {16, 32}}) {
      const index_t N = nk.first, K = nk.second;
      INFO("M " << M << " N " << N << " K " << K);
      const ScatteredRows x(M, K, std::uint64_t(M + N + K));
      Tensor<float> w(Shape{N, K}), bias(Shape{N}), c1(Shape{M, N}), c2(Shape{M, N});
      init::uniform(w.view(), rng, -1, 1);
      init::uniform(bias.view(), rng, -1, 1);
      cpu::narrow_gemm_rows(x.table(), w, c1, bias.data());
      cpu::narrow_gemm(Trans::no, Trans::yes, 1.0f, x.gathered, w, 0.0f, c2, bias.data());
      CHECK(c1.to_vector() == c2.to_vector());
    }
  // Weight gradients C = dY^T X + beta C over K rows anywhere, in one block of k and in several.
  for (const index_t K : {256, 700})
    for (const auto& mn : {std::pair<index_t, index_t>{48, 384}, {48, 48}, {16, 64}})
      for (const float beta : {0.0f, 1.0f}) {
        const index_t M = mn.first, N = mn.second;
        INFO("M " << M << " N " << N << " K " << K << " beta " << beta);
        const ScatteredRows x(K, N, std::uint64_t(K + M + N));
        Tensor<float> dy(Shape{K, M}), c1(Shape{M, N});
        init::uniform(dy.view(), rng, -1, 1);
        init::uniform(c1.view(), rng, -1, 1);
        Tensor<float> c2 = c1.clone();
        cpu::narrow_gemm_rows_weight_gradient(dy, x.table(), beta, c1);
        cpu::narrow_gemm(Trans::yes, Trans::no, 1.0f, dy, x.gathered, beta, c2);
        CHECK(c1.to_vector() == c2.to_vector());
      }
  // Shapes the narrow kernel does not take are refused, by name.
  const ScatteredRows few(100, 48, 5);
  Tensor<float> w(Shape{48, 48}), c(Shape{100, 48}), dy(Shape{100, 48}), dw(Shape{48, 48});
  CHECK(lst_test::error_of([&] { cpu::narrow_gemm_rows(few.table(), w, c); }).find("narrow_gemm_rows") !=
        std::string::npos);
  CHECK(lst_test::error_of([&] {
          cpu::narrow_gemm_rows_weight_gradient(dy, few.table(), 0.0f, dw);
        }).find("narrow_gemm_rows_weight_gradient") != std::string::npos);
}

TEST_CASE("Narrow GEMM: the same bits on one thread and on two; which products it takes") {
  // A forward product splits its rows; weight gradients split the wider of M and N (48 x 48 by rows, a
  // ladder's 48 x 384 by columns).
  struct Case {
    Trans ta;
    index_t M, N, K;
  };
  for (const Case& cs : {Case{Trans::no, 517, 48, 384}, Case{Trans::yes, 48, 48, 1000},
                         Case{Trans::yes, 48, 384, 700}, Case{Trans::no, 300, 400, 1000}}) {
    const Trans ta = cs.ta;
    const index_t M = cs.M, N = cs.N, K = cs.K;
    const int before = threads();
    set_threads(1);
    const auto one = check_narrow(ta, Trans::no, M, N, K, 1.0f, 1.0f, 9);
    set_threads(2);
    const auto two = check_narrow(ta, Trans::no, M, N, K, 1.0f, 1.0f, 9);
    set_threads(before);
    CHECK(one == two);
  }
  // The LST side network at r = 8 (width 48, ladders from 384) and the backbone's forward products take it;
  // the backbone's wide weight gradients only with AVX-512's 32 registers (bench_core).
  CHECK(cpu::narrow_gemm_applies(Trans::no, 4096, 48, 384));
  CHECK(cpu::narrow_gemm_applies(Trans::no, 4096, 192, 48));
  CHECK(cpu::narrow_gemm_applies(Trans::yes, 48, 384, 4096));
  CHECK(cpu::narrow_gemm_applies(Trans::no, 4096, 384, 384));
  CHECK(cpu::narrow_gemm_applies(Trans::no, 4096, 1536, 384));
  CHECK(cpu::narrow_gemm_applies(Trans::yes, 384, 384, 4096));
  CHECK(cpu::narrow_gemm_applies(Trans::yes, 1536, 384, 4096) == (cpu::vector_registers >= 32));
  CHECK_FALSE(cpu::narrow_gemm_applies(Trans::no, 128, 128, 32));  // one attention head: too few rows
  CHECK_FALSE(cpu::narrow_gemm_applies(Trans::no, 4096, 50, 48));  // not whole packets
}

TEST_CASE(
    "Narrow GEMM with a bias row: the bits of C preset to the bias and beta = 1; a float Linear takes it") {
  Rng rng(10);
  for (const auto& shape : {std::tuple<Trans, index_t, index_t, index_t>{Trans::no, 300, 48, 384},
                            {Trans::no, 256, 80, 48},
                            {Trans::yes, 48, 48, 700}}) {
    const auto [ta, M, N, K] = shape;
    CAPTURE(M);
    CAPTURE(K);
    Tensor<float> a(ta == Trans::no ? Shape{M, K} : Shape{K, M}), w(Shape{N, K}), bias(Shape{N});
    for (auto* t : {&a, &w, &bias}) init::normal(t->view(), rng, 1.0);
    Tensor<float> fused(Shape{M, N}), preset(Shape{M, N});
    cpu::narrow_gemm(ta, Trans::yes, 0.5f, a, w, 0.0f, fused, bias.data());
    for (index_t i = 0; i < M; ++i) std::copy_n(bias.data(), N, preset.data() + i * N);
    cpu::narrow_gemm(ta, Trans::yes, 0.5f, a, w, 1.0f, preset);
    CHECK(fused.to_vector() == preset.to_vector());
  }
  // Linear<float> on (300, 48) -> 48 runs the fused kernel; its output is x W^T + b.
  ParameterArena<float> arena;
  Linear<float> linear(arena, "fc", 48, 48);
  arena.allocate(false);
  for (std::size_t i = 0; i < arena.count(); ++i) init::normal(arena.value(i), rng, 1.0);
  Tensor<float> x(Shape{300, 48}), y(Shape{300, 48});
  init::normal(x.view(), rng, 1.0);
  REQUIRE(cpu::narrow_gemm_applies(Trans::no, 300, 48, 48));
  linear.forward(x, y, Mode::inference);
  const float* w = linear.weight().value().data();
  const float* b = linear.bias().value().data();
  for (index_t i = 0; i < 300; ++i)
    for (index_t o = 0; o < 48; ++o) {
      double want = b[o];
      for (index_t k = 0; k < 48; ++k) want += double(x(i, k)) * double(w[o * 48 + k]);
      REQUIRE(y(i, o) == doctest::Approx(want).epsilon(1e-5));
    }
}

TEST_CASE("Narrow GEMM refuses mismatched shapes and widths that are not whole packets, naming both") {
  Tensor<float> a(Shape{300, 48}), w(Shape{48, 40}), c(Shape{300, 48}), c50(Shape{300, 50}),
      w50(Shape{50, 48});
  a.fill(1.0f);
  w.fill(1.0f);
  w50.fill(1.0f);
  // op(B) has 40 rows where op(A) has 48 columns: the shape check runs on the narrow path too.
  CHECK_THROWS_WITH_AS(gemm<float>(Trans::no, Trans::yes, 1.0f, a, w, 0.0f, c),
                       doctest::Contains("gemm: op(A)"), ShapeError);
  CHECK_THROWS_WITH_AS(cpu::narrow_gemm(Trans::no, Trans::yes, 1.0f, a, w50, 0.0f, c50),
                       doctest::Contains("not a whole number"), ShapeError);
  CHECK_FALSE(cpu::narrow_gemm_applies(Trans::no, 300, 50, 48));
  gemm<float>(Trans::no, Trans::yes, 1.0f, a, w50, 0.0f, c50);  // Eigen takes it
  CHECK(c50(299, 49) == 48.0f);
}
