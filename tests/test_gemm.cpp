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
