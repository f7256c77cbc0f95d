// SPDX-License-Identifier: MIT
// The embedding, loss and packed-row ops (ops/embedding.hpp, ops/losses.hpp, ops/packed_rows.hpp) against
// the plain loops they replaced, bit for bit, and the expression tree's backend (core/expression.hpp).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "gradient_check.hpp"

using namespace lst;

namespace {

template <class T>
Tensor<T> random_tensor(const Shape& shape, Rng& rng, double scale) {
  Tensor<T> t(shape);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = T(scale * rng.normal());
  return t;
}

// The loops of nn/losses.hpp before the ops layer, verbatim: the reference for the same bits.
template <class T>
T reference_cross_entropy(const T* logits, const std::int32_t* labels, index_t N, index_t K, T* dlogits) {
  index_t counted = 0;
  for (index_t n = 0; n < N; ++n) counted += labels[n] >= 0;
  double loss = 0;
  const T inv = counted ? T(1) / T(counted) : T(0);
  for (index_t n = 0; n < N; ++n) {
    const T* z = logits + n * K;
    const std::int32_t y = labels[n];
    T mx = z[0];
    for (index_t j = 1; j < K; ++j) mx = z[j] > mx ? z[j] : mx;
    T sum = 0;
    for (index_t j = 0; j < K; ++j) sum += std::exp(z[j] - mx);
    const T lse = mx + std::log(sum);
    if (y >= 0) loss += double(lse - z[y]);
    if (dlogits) {
      T* d = dlogits + n * K;
      for (index_t j = 0; j < K; ++j)
        d[j] = y >= 0 ? (std::exp(z[j] - lse) - (j == y ? T(1) : T(0))) * inv : T(0);
    }
  }
  return counted ? static_cast<T>(loss / double(counted)) : T(0);
}

template <class T>
T reference_mse(const T* pred, const T* target, index_t N, T* dpred) {
  double loss = 0;
  for (index_t n = 0; n < N; ++n) {
    const T e = pred[n] - target[n];
    loss += double(e) * double(e);
    if (dpred) dpred[n] = T(2) * e / T(N);
  }
  return N ? static_cast<T>(loss / double(N)) : T(0);
}

template <class T>
bool same_bits(const Tensor<T>& a, const std::vector<T>& b) {
  if (std::size_t(a.numel()) != b.size()) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(a.data() + i, b.data() + i, sizeof(T)) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE_TEMPLATE("Cross-entropy and MSE ops give the bits of the loops they replaced", T, float, double) {
  Rng rng(4242);
  const index_t N = 37, K = 5;
  Tensor<T> z = random_tensor<T>(Shape{N, K}, rng, 4.0);
  Tensor<std::int32_t> y(Shape{N});
  for (index_t n = 0; n < N; ++n) y.data()[n] = n % 7 == 3 ? -100 : std::int32_t(rng.below(std::uint32_t(K)));
  Tensor<T> dz(z.shape());
  std::vector<T> want_dz(static_cast<std::size_t>(N * K));
  const T want = reference_cross_entropy(z.data(), y.data(), N, K, want_dz.data());
  const T got = cross_entropy<T, Cpu>(z, y, dz);
  CHECK(std::memcmp(&got, &want, sizeof(T)) == 0);
  CHECK(same_bits(dz, want_dz));
  CHECK(softmax_cross_entropy<T, Cpu>(z, y, TensorView<T>()) == want);

  Tensor<T> p = random_tensor<T>(Shape{N, 1}, rng, 2.0), t = random_tensor<T>(Shape{N}, rng, 2.0);
  Tensor<T> dp(p.shape());
  std::vector<T> want_dp(static_cast<std::size_t>(N));
  const T want_mse = reference_mse(p.data(), t.data(), N, want_dp.data());
  const T got_mse = mse_loss<T, Cpu>(p, t, dp);
  CHECK(std::memcmp(&got_mse, &want_mse, sizeof(T)) == 0);
  CHECK(same_bits(dp, want_dp));
  CHECK(mean_squared_error<T, Cpu>(p, t, TensorView<T>()) == want_mse);
}

TEST_CASE("Cross-entropy op: a label at or above the class count names its example; all ignored is 0") {
  Tensor<float> z = Tensor<float>::zeros(Shape{3, 4});
  Tensor<std::int32_t> y = Tensor<std::int32_t>::full(Shape{3}, 1);
  y(1) = 4;
  Tensor<float> dz = Tensor<float>::full(z.shape(), 7.0f);
  const std::string msg = lst_test::error_of([&] { cross_entropy<float, Cpu>(z, y, dz); });
  CHECK(msg.find("label 4 of example 1") != std::string::npos);
  CHECK(dz(0, 0) == 7.0f);  // checked before anything is written
  y.fill(-1);
  CHECK(cross_entropy<float, Cpu>(z, y, dz) == 0.0f);
  for (float v : dz.to_vector()) CHECK(v == 0.0f);
}

TEST_CASE("Embedding ops: the gather and the ordered scatter-add, and the first id outside the table") {
  Rng rng(17);
  const index_t vocab = 7, dim = 5;
  Tensor<float> w = random_tensor<float>(Shape{vocab, dim}, rng, 1.0);
  Tensor<std::int32_t> ids(Shape{2, 3});
  const std::int32_t v[] = {3, 0, 3, 6, 3, 1};
  std::copy(v, v + 6, ids.data());
  Tensor<float> y(Shape{2, 3, dim});
  const EmbeddingBadId none = embedding_gather<float, Cpu>(w, ids, y);
  CHECK(!none);
  for (index_t n = 0; n < 6; ++n)
    for (index_t j = 0; j < dim; ++j) CHECK(y.data()[n * dim + j] == w(v[n], j));

  // dW[id] += dy[n] for n in order, starting from dW's value: the loop of nn/embedding.hpp.
  Tensor<float> dy = random_tensor<float>(Shape{2, 3, dim}, rng, 1.0);
  Tensor<float> dw = random_tensor<float>(Shape{vocab, dim}, rng, 1.0);
  std::vector<float> want = dw.to_vector();
  for (index_t n = 0; n < 6; ++n)
    for (index_t j = 0; j < dim; ++j) want[std::size_t(v[n] * dim + j)] += dy.data()[n * dim + j];
  embedding_scatter_add<float, Cpu>(ids, dy, dw);
  CHECK(same_bits(dw, want));

  ids(1, 0) = 7;
  ids(1, 2) = -2;
  const EmbeddingBadId bad = embedding_gather<float, Cpu>(w, ids, y);
  CHECK(bool(bad));
  CHECK(bad.position == 3);
  CHECK(bad.id == 7);
  Tensor<float> wrong(Shape{2, 3, dim + 1});
  CHECK_THROWS_AS(((void)embedding_gather<float, Cpu>(w, ids, wrong)), ShapeError);
}

TEST_CASE("Packed-row ops: copy and add of each sequence's first rows, the backend named or defaulted") {
  const std::int32_t mask[] = {1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0};
  const PackedSequences padded = PackedSequences::whole(3, 4);
  const PackedSequences packed = PackedSequences::from_mask(mask, 3, 4);  // lengths 3, 4, 1
  const index_t C = 2;
  std::vector<double> src(std::size_t(12 * C));
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = double(i);
  std::vector<double> dst(std::size_t(packed.rows() * C), -1.0);
  copy_first_rows(padded, packed, C, src.data(), dst.data());
  const std::vector<double> want = {0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  CHECK(dst == want);

  std::vector<double> back(src.size(), 0.5);
  add_first_rows<Cpu>(packed, padded, C, dst.data(), back.data());
  for (index_t b = 0; b < 3; ++b)
    for (index_t t = 0; t < 4; ++t)
      for (index_t c = 0; c < C; ++c) {
        const std::size_t at = std::size_t((b * 4 + t) * C + c);
        CHECK(back[at] == (t < packed.length(b) ? 0.5 + src[at] : 0.5));
      }
  std::vector<double> again(dst.size(), 0.0);
  copy_first_rows<Cpu>(padded, packed, C, src.data(), again.data());
  CHECK(again == want);
}

TEST_CASE("Expressions carry their leaves' backend; scalars have none") {
  Tensor<float> a = Tensor<float>::full(Shape{2, 3}, 1.0f);
  const TensorView<const float, Cuda> d(a.data(), a.shape());  // typed only, never read
  static_assert(std::is_same_v<expr_backend_t<Tensor<float, Cpu>>, Cpu>);
  static_assert(std::is_same_v<expr_backend_t<decltype(d)>, Cuda>);
  static_assert(std::is_same_v<typename decltype(expr(a))::backend, Cpu>);
  static_assert(std::is_same_v<expr_backend_t<decltype(exp(a * 2.0f) - a)>, Cpu>);
  static_assert(std::is_same_v<expr_backend_t<decltype(where(d, d * 2.0f, 1.0f))>, Cuda>);
  static_assert(std::is_void_v<ScalarExpr<float>::backend>);
  static_assert(std::is_same_v<expr_backend_t<decltype(ScalarExpr<float>(1.0f) + a)>, Cpu>);
  static_assert(evaluable_on_v<decltype(a * 2.0f), Cpu> && !evaluable_on_v<decltype(d * 2.0f), Cpu>);
  static_assert(evaluable_on_v<ScalarExpr<float>, Cpu> && evaluable_on_v<ScalarExpr<float>, Cuda>);
  static_assert(assignable_on_v<decltype(row_sum(a)), Cpu> && !assignable_on_v<decltype(col_sum(d)), Cpu>);
  static_assert(std::is_same_v<detail::expr_t<Tensor<double>>, LeafExpr<const double, Cpu>>);
  Tensor<float> b(Shape{2, 3});
  b = ScalarExpr<float>(3.0f) * 2.0f + a;  // a scalar-only subtree joins a Cpu tree
  for (float v : b.to_vector()) CHECK(v == 7.0f);
}
