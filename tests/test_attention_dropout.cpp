// SPDX-License-Identifier: MIT
// Attention dropout (Hugging Face's attention_probs_dropout_prob): the mask's definition, gradients by finite
// differences for both kernels, the kernels' agreement, and that p = 0 or inference changes nothing.
#include <lst/nn/attention.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "gradient_check.hpp"

using namespace lst;

namespace {
Tensor<std::int32_t> padding_mask(index_t B, index_t T, std::initializer_list<index_t> lengths) {
  Tensor<std::int32_t> m(Shape{B, T});
  index_t b = 0;
  for (index_t len : lengths) {
    for (index_t t = 0; t < T; ++t) m(b, t) = t < len ? 1 : 0;
    ++b;
  }
  return m;
}

bool contains(const std::string& msg, const char* part) { return msg.find(part) != std::string::npos; }

/// The documented mask: probability (b, h, i, j) is kept iff uniform_in_stream(key, index) >= p with index =
/// ((b' H + h) Sx + i) (P + Sx) + j, b' = first_sequence + b, Sx = the padded batch's positions.
bool kept(std::uint64_t key, double p, index_t seq, index_t H, index_t h, index_t Sx, index_t P, index_t i,
          index_t j) {
  const std::uint64_t index =
      ((std::uint64_t(seq) * std::uint64_t(H) + std::uint64_t(h)) * std::uint64_t(Sx) + std::uint64_t(i)) *
          std::uint64_t(P + Sx) +
      std::uint64_t(j);
  return uniform_in_stream(key, index) >= p;
}

/// T, not deduced from an argument (nullptr deduces nothing).
template <class T>
using Same = typename std::enable_if<true, T>::type;

/// One training forward (at `step`) and backward of `attn` with output gradient g: the output, then dx, every
/// parameter gradient and the prefix gradients.
template <class Real>
std::pair<std::vector<Real>, std::vector<Real>> run(
    const MultiHeadSelfAttention<Real>& attn, ParameterArena<Real>& arena, const Tensor<Real>& x,
    ConstView<std::int32_t> mask, const Tensor<Real>& g, std::uint64_t step,
    const Same<Tensor<Real>>* pk = nullptr, const Same<Tensor<Real>>* pv = nullptr,
    const PackedSequences* packed = nullptr, index_t queries = 0) {
  Tensor<Real> y(g.shape()), dx(x.shape());
  Tensor<Real> dpk = Tensor<Real>::zeros(pk ? pk->shape() : Shape{0}),
               dpv = Tensor<Real>::zeros(pv ? pv->shape() : Shape{0});
  PrefixKV<Real> prefix{pk ? pk->cview() : ConstView<Real>(), pv ? pv->cview() : ConstView<Real>(),
                        dpk.view(), dpv.view()};
  auto ctx = attn.forward(x, mask, y, Mode::training, pk ? &prefix : nullptr, queries, packed, step);
  attn.backward(ctx, g, dx, GradMode::overwrite);
  std::vector<Real> grads = dx.to_vector();
  for (const auto& v : {arena.grads().to_vector(), dpk.to_vector(), dpv.to_vector()})
    grads.insert(grads.end(), v.begin(), v.end());
  return {y.to_vector(), grads};
}

template <class Real>
Tensor<Real> randn(const Shape& shape, Rng& rng) {
  Tensor<Real> t(shape);
  init::normal(t.view(), rng, 1.0);
  return t;
}

/// A layer "attn" of H heads of width D, parameters N(0, 0.25).
template <class Real>
struct Layer {
  ParameterArena<Real> arena;
  MultiHeadSelfAttention<Real> attn;
  Layer(index_t H, index_t D, Rng& rng, const char* name = "attn") : attn(arena, name, H * D, H) {
    arena.allocate(true);
    for (std::size_t i = 0; i < arena.count(); ++i) init::normal(arena.value(i), rng, 0.5);
  }
};
}  // namespace

TEST_CASE("Attention dropout's keep-scales: the scalar definition's bits, and a kept fraction of 1 - p") {
  const auto check = [](auto zero) {
    using T = decltype(zero);
    for (const double p : {1e-9, 0.1, 0.3, 0.5, 0.9}) {
      const std::uint64_t key = stream_key(17, 4), from = cpu::dropout_keep_from(p);
      const T scale = T(1.0 / (1.0 - p));
      for (const std::uint64_t first :
           {std::uint64_t(0), std::uint64_t(3), std::uint64_t(1000003), (std::uint64_t(1) << 40) + 5})
        for (const index_t n : {0, 1, 7, 8, 15, 16, 17, 33, 100}) {
          CAPTURE(p);
          CAPTURE(first);
          CAPTURE(n);
          std::vector<T> m(std::size_t(n) + 1, T(-1));
          cpu::attention_dropout_scales<T>(key, first, from, scale, n, m.data());
          for (index_t j = 0; j < n; ++j)
            REQUIRE(m[std::size_t(j)] ==
                    (uniform_in_stream(key, first + std::uint64_t(j)) >= p ? scale : T(0)));
          REQUIRE(m[std::size_t(n)] == T(-1));  // nothing written past n
        }
      // Over 2^20 elements, the kept fraction is 1 - p (its standard deviation is below 0.0005).
      const index_t n = index_t(1) << 20;
      std::vector<T> m(static_cast<std::size_t>(n));
      cpu::attention_dropout_scales<T>(key, 12345, from, scale, n, m.data());
      const double fraction = double(std::count(m.begin(), m.end(), scale)) / double(n);
      CHECK(std::abs(fraction - (1.0 - p)) < 0.003);
      CHECK(std::count(m.begin(), m.end(), T(0)) + std::count(m.begin(), m.end(), scale) == n);
    }
  };
  check(0.0f);
  check(0.0);
  // The threshold on the 24-bit draw: exactly the float comparison, also at p = k 2^-24.
  CHECK(cpu::dropout_keep_from(0.0) == 0);
  CHECK(cpu::dropout_keep_from(3.0 / 16777216.0) == 3);
  CHECK(cpu::dropout_keep_from(3.5 / 16777216.0) == 4);
}

TEST_CASE("The attention dropout mask is the documented function of (sequence, head, row, key)") {
  // With q = 0 every visible key gets probability 1 / n, and with v = 1 each head's output is the mean
  // keep-scale of its row's visible keys: compared with the mask computed from the documented index, for
  // padded sequences with a mask and a prefix, a shard of packed sequences and a layer asked for its first
  // rows only. Both kernels, kept and recomputed probabilities.
  const index_t H = 3, D = 2, C = H * D;
  const double p = 0.3;
  const std::uint64_t key = stream_key(5, 11);
  for (const AttentionKernel kernel : {AttentionKernel::gemm, AttentionKernel::rowwise})
    for (const bool keep : {false, true})
      for (const int layout : {0, 1, 2}) {
        CAPTURE(int(kernel));
        CAPTURE(keep);
        CAPTURE(layout);
        const index_t B = 3, T = 9, Tpad = 11;
        AttentionLayout L;
        Tensor<std::int32_t> mask;
        if (layout == 0) {  // padded, with P = 2 prefix keys and a mask
          L.x = PackedSequences::whole(B, T);
          L.k = PackedSequences::whole(B, T + 2);
          L.q = L.x;
          L.prefix = 2;
          mask = padding_mask(B, T, {T, 4, 1});
        } else {  // sequences 2, 3, 4 of a batch padded to 11, packed; or their first 2 rows asking
          const auto m = padding_mask(B, Tpad, {7, 11, 3});
          L.x = L.k = PackedSequences::from_mask(m.data(), B, Tpad, 2);
          L.q = layout == 1 ? L.x : L.x.first_rows(2);
        }
        L.q_stride = L.q.longest();
        L.k_stride = L.k.longest();
        AttentionSettings s;
        s.heads = H;
        s.kernel = kernel;
        s.keep_probabilities = keep;
        s.dropout = p;
        s.dropout_key = key;
        Tensor<double> q = Tensor<double>::zeros(Shape{L.q.rows(), C}),
                       k = Tensor<double>::zeros(Shape{L.k.rows(), C}),
                       v = Tensor<double>::full(Shape{L.k.rows(), C}, 1.0), heads(Shape{L.q.rows(), C});
        AttentionSaved<double, Cpu> saved;
        attention_forward<double, Cpu>(L, s, q, k, v, mask.empty() ? nullptr : mask.data(), heads, &saved);
        const index_t Sx = layout == 0 ? T : Tpad, first_seq = layout == 0 ? 0 : 2;
        for (index_t b = 0; b < B; ++b)
          for (index_t h = 0; h < H; ++h)
            for (index_t i = 0; i < L.q.length(b); ++i) {
              double sum = 0;
              index_t visible = 0;
              for (index_t j = 0; j < L.k.length(b); ++j) {
                if (j >= L.prefix && !mask.empty() && mask(b, j - L.prefix) == 0) continue;
                ++visible;
                if (kept(key, p, first_seq + b, H, h, Sx, L.prefix, i, j)) sum += 1.0 / (1.0 - p);
              }
              for (index_t d = 0; d < D; ++d) {
                CAPTURE(b);
                CAPTURE(h);
                CAPTURE(i);
                REQUIRE(heads.data()[(L.q.first_row(b) + i) * C + h * D + d] ==
                        doctest::Approx(sum / double(visible)).epsilon(1e-12));
              }
            }
        // Without `saved` (inference) nothing is dropped: every output is 1.
        attention_forward<double, Cpu>(L, s, q, k, v, mask.empty() ? nullptr : mask.data(), heads, nullptr);
        for (const double o : heads.to_vector()) REQUIRE(o == doctest::Approx(1.0).epsilon(1e-12));
      }
}

TEST_CASE("Attention with dropout: backward matches finite differences, both kernels, kept or recomputed") {
  // The mask is a function of the step, not of the values: the loss at a fixed step is smooth.
  const double p = 0.3;
  const std::uint64_t step = 5;
  for (const AttentionKernel kernel : {AttentionKernel::gemm, AttentionKernel::rowwise})
    for (const bool recompute : {false, true})
      for (const int shape : {0, 1, 2}) {  // padded with a mask; packed; padded with a mask and a prefix
        CAPTURE(int(kernel));
        CAPTURE(recompute);
        CAPTURE(shape);
        Rng rng(700 + std::uint64_t(shape));
        ParameterArena<double> arena;
        MultiHeadSelfAttention<double> attn(arena, "attn", 6, 3);  // 3 heads of width 2
        arena.allocate(true);
        lst_test::randomize(arena, rng);
        attn.set_kernel(kernel);
        attn.set_recompute_probabilities(recompute);
        attn.set_dropout(p, 42);
        const index_t B = 2, T = 5, C = 6;
        auto mask = padding_mask(B, T, {5, 3});
        const auto packed = PackedSequences::from_mask(mask.data(), B, T);
        Tensor<double> x =
            shape == 1 ? lst_test::randn(Shape{packed.rows(), C}, rng) : lst_test::randn(Shape{B, T, C}, rng);
        const ConstView<std::int32_t> m = shape == 1 ? ConstView<std::int32_t>() : mask.cview();
        auto pk = lst_test::randn(Shape{2, C}, rng), pv = lst_test::randn(Shape{2, C}, rng);
        Tensor<double> dpk = Tensor<double>::zeros(pk.shape()), dpv = Tensor<double>::zeros(pv.shape());
        PrefixKV<double> prefix{pk.cview(), pv.cview(), dpk.view(), dpv.view()};
        const PrefixKV<double>* pre = shape == 2 ? &prefix : nullptr;
        const PackedSequences* pack = shape == 1 ? &packed : nullptr;
        auto g = lst_test::randn(x.shape(), rng);
        Tensor<double> y(x.shape()), dx(x.shape());
        auto ctx = attn.forward(x, m, y, Mode::training, pre, 0, pack, step);
        attn.backward(ctx, g, dx, GradMode::overwrite);
        auto checked = lst_test::parameters_of(arena);
        checked.push_back({"x", x.view(), dx.view()});
        if (pre) {
          checked.push_back({"prefix.key", pk.view(), dpk.view()});
          checked.push_back({"prefix.value", pv.view(), dpv.view()});
        } else {
          lst_test::expect_zero(checked, "attn.key.bias");  // dropout comes after the softmax
        }
        lst_test::check_gradients(checked, [&] {
          attn.forward(x, m, y, Mode::training, pre, 0, pack, step);
          return lst_test::dot(y, g);
        });
      }
}

namespace {
/// Both kernels, each with kept and recomputed probabilities, with dropout p: the same outputs and gradients
/// to `tol`, and within one kernel kept and recomputed probabilities give the same bits. With a mask and a
/// prefix (padded), or packed sequences.
template <class Real>
void check_kernels_agree(index_t D, index_t T, double tol, bool packed_input) {
  Rng rng(900 + std::uint64_t(D) + 100 * std::uint64_t(T));
  const index_t H = 2, C = H * D, B = 3;
  Layer<Real> layer(H, D, rng);
  layer.attn.set_dropout(0.3, 77);
  const auto mask = padding_mask(B, T, {T, T / 2 + 1, 1});
  const auto packed = PackedSequences::from_mask(mask.data(), B, T);
  const Shape shape = packed_input ? Shape{packed.rows(), C} : Shape{B, T, C};
  auto x = randn<Real>(shape, rng), g = randn<Real>(shape, rng);
  auto pk = randn<Real>(Shape{2, C}, rng), pv = randn<Real>(Shape{2, C}, rng);
  std::vector<std::pair<std::vector<Real>, std::vector<Real>>> results;
  for (AttentionKernel kernel : {AttentionKernel::gemm, AttentionKernel::rowwise})
    for (bool recompute : {false, true}) {
      layer.attn.set_kernel(kernel);
      layer.attn.set_recompute_probabilities(recompute);
      if (packed_input)
        results.push_back(run(layer.attn, layer.arena, x, {}, g, 3, nullptr, nullptr, &packed));
      else
        results.push_back(run(layer.attn, layer.arena, x, mask, g, 3, &pk, &pv));
    }
  for (std::size_t k = 1; k < results.size(); ++k) {
    lst_test::expect_close_to_largest(results[k].first, results[0].first, Real(tol));
    lst_test::expect_close_to_largest(results[k].second, results[0].second, Real(10 * tol));
  }
  CHECK(results[0] == results[1]);
  CHECK(results[2] == results[3]);
}
}  // namespace

TEST_CASE("With the same dropout, the row-wise and GEMM kernels agree: mask, prefix, packed, kept or not") {
  for (const index_t T : {7, 21})
    for (const index_t D : {1, 3, 4, 9, 16})
      for (const bool packed : {false, true}) {
        CAPTURE(T);
        CAPTURE(D);
        CAPTURE(packed);
        check_kernels_agree<double>(D, T, 1e-12, packed);
        check_kernels_agree<float>(D, T, 2e-6, packed);
      }
}

TEST_CASE("Attention dropout at p = 0, or in inference, computes exactly what the layer does without it") {
  for (const AttentionKernel kernel : {AttentionKernel::gemm, AttentionKernel::rowwise})
    for (const bool recompute : {false, true}) {
      CAPTURE(int(kernel));
      CAPTURE(recompute);
      Rng rng(31);
      const index_t H = 3, D = 4, C = H * D, B = 3, T = 13;
      Layer<float> layer(H, D, rng);
      layer.attn.set_kernel(kernel);
      layer.attn.set_recompute_probabilities(recompute);
      const auto mask = padding_mask(B, T, {T, 6, 2});
      const auto packed = PackedSequences::from_mask(mask.data(), B, T);
      auto x = randn<float>(Shape{B, T, C}, rng), g = randn<float>(Shape{B, T, C}, rng);
      auto xp = randn<float>(Shape{packed.rows(), C}, rng), gp = randn<float>(Shape{packed.rows(), C}, rng);
      auto pk = randn<float>(Shape{2, C}, rng), pv = randn<float>(Shape{2, C}, rng);
      const auto without = run(layer.attn, layer.arena, x, mask, g, 0, &pk, &pv);
      const auto without_packed = run(layer.attn, layer.arena, xp, {}, gp, 0, nullptr, nullptr, &packed);
      Tensor<float> y_inference(x.shape()), y(x.shape());
      layer.attn.forward(x, mask, y_inference, Mode::inference);

      layer.attn.set_dropout(0.0, 1234);
      CHECK(run(layer.attn, layer.arena, x, mask, g, 9, &pk, &pv) == without);
      CHECK(run(layer.attn, layer.arena, xp, {}, gp, 9, nullptr, nullptr, &packed) == without_packed);

      layer.attn.set_dropout(0.5, 1234);
      CHECK(layer.attn.dropout() == 0.5);
      auto ctx = layer.attn.forward(x, mask, y, Mode::inference, nullptr, 0, nullptr, 9);
      CHECK(y.to_vector() == y_inference.to_vector());
      CHECK(ctx.dropout == 0.0);
      // In training it does drop: the outputs and gradients change, and differ from step to step, and the
      // same step gives the same bits.
      const auto at9 = run(layer.attn, layer.arena, x, mask, g, 9, &pk, &pv);
      CHECK(at9.first != without.first);
      CHECK(at9.second != without.second);
      CHECK(run(layer.attn, layer.arena, x, mask, g, 10, &pk, &pv).first != at9.first);
      CHECK(run(layer.attn, layer.arena, x, mask, g, 9, &pk, &pv) == at9);
    }
}

TEST_CASE("Attention dropout: packed sequences and the first rows only drop what the padded layer drops") {
  for (const AttentionKernel kernel : {AttentionKernel::rowwise, AttentionKernel::gemm})
    for (const bool recompute : {false, true})
      for (const index_t queries : {0, 1, 3}) {
        CAPTURE(int(kernel));
        CAPTURE(recompute);
        CAPTURE(queries);
        Rng rng(157);
        const index_t H = 3, D = 4, C = H * D, B = 4, T = 13;
        Layer<float> layer(H, D, rng);
        layer.attn.set_kernel(kernel);
        layer.attn.set_recompute_probabilities(recompute);
        layer.attn.set_dropout(0.25, 8);
        const auto mask = padding_mask(B, T, {T, 7, 3, 4});
        const auto packed = PackedSequences::from_mask(mask.data(), B, T);
        const PackedSequences asked = queries > 0 ? packed.first_rows(queries) : packed;
        const auto padded = PackedSequences::whole(B, T);
        auto x = randn<float>(Shape{B, T, C}, rng), g = randn<float>(Shape{B, T, C}, rng);
        for (index_t b = 0; b < B; ++b)  // the padded layer's output gradient: on the asked rows only
          for (index_t t = asked.length(b); t < T; ++t) std::fill_n(g.data() + (b * T + t) * C, C, 0.0f);
        const auto whole = run(layer.attn, layer.arena, x, mask, g, 6);
        // The first rows of the padded layer alone.
        if (queries > 0) {
          Tensor<float> g_first(Shape{B, queries, C});
          for (index_t b = 0; b < B; ++b) g_first[b].assign(g[b].slice(0, queries));
          const auto first =
              run(layer.attn, layer.arena, x, mask, g_first, 6, nullptr, nullptr, nullptr, queries);
          lst_test::expect_first_rows(first.first.data(), whole.first.data(), B, T, queries, C, 1e-5);
          lst_test::expect_close_to_largest(first.second, whole.second, 1e-5f);
        }
        // Packed.
        Tensor<float> xp(Shape{packed.rows(), C}), gp(Shape{asked.rows(), C});
        copy_first_rows(padded, packed, C, x.data(), xp.data());
        copy_first_rows(padded, asked, C, g.data(), gp.data());
        const auto got = run(layer.attn, layer.arena, xp, {}, gp, 6, nullptr, nullptr, &packed, queries);
        Tensor<float> y_whole(x.shape()), dx_whole(x.shape());
        std::copy_n(whole.first.data(), x.numel(), y_whole.data());
        std::copy_n(whole.second.data(), x.numel(), dx_whole.data());
        Tensor<float> y_rows(gp.shape()), dx_rows(xp.shape());
        copy_first_rows(padded, asked, C, y_whole.data(), y_rows.data());
        copy_first_rows(padded, packed, C, dx_whole.data(), dx_rows.data());
        lst_test::expect_close_to_largest(got.first, y_rows.to_vector(), 1e-5f);
        std::vector<float> want = dx_rows.to_vector();
        want.insert(want.end(), whole.second.begin() + x.numel(), whole.second.end());
        lst_test::expect_close_to_largest(got.second, want, 1e-5f);
      }
}

TEST_CASE("Attention dropout's results do not depend on the thread count") {
  Rng rng(55);
  const index_t H = 4, D = 4, C = H * D, B = 8, T = 40;  // B H T T above the parallel threshold
  Layer<float> layer(H, D, rng);
  layer.attn.set_dropout(0.1, 3);
  const auto mask = padding_mask(B, T, {40, 39, 17, 1, 40, 22, 8, 33});
  auto x = randn<float>(Shape{B, T, C}, rng), g = randn<float>(Shape{B, T, C}, rng);
  const int before = threads();
  for (const AttentionKernel kernel : {AttentionKernel::rowwise, AttentionKernel::gemm}) {
    CAPTURE(int(kernel));
    layer.attn.set_kernel(kernel);
    set_threads(1);
    const auto one = run(layer.attn, layer.arena, x, mask, g, 2);
    set_threads(3);
    CHECK(run(layer.attn, layer.arena, x, mask, g, 2) == one);
  }
  set_threads(before);
}

TEST_CASE("A bad attention dropout probability throws naming the layer") {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> attn(arena, "side.3.attention", 8, 2);
  for (const double p : {1.0, -0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    CAPTURE(p);
    const std::string msg = lst_test::error_of([&] { attn.set_dropout(p, 1); });
    CHECK(contains(msg, "side.3.attention"));
    CHECK(contains(msg, "dropout probability"));
    CHECK(contains(msg, "outside [0, 1)"));
  }
  CHECK(attn.dropout() == 0.0);
  CHECK_NOTHROW(attn.set_dropout(0.999, 1));
  // The op itself checks its settings.
  AttentionSettings s;
  s.dropout = 1.0;
  AttentionLayout L;
  L.x = L.q = L.k = PackedSequences::whole(1, 2);
  L.q_stride = L.k_stride = 2;
  Tensor<float> q = Tensor<float>::zeros(Shape{2, 8}), h(Shape{2, 8});
  AttentionSaved<float, Cpu> saved;
  CHECK(
      contains(lst_test::error_of([&] { attention_forward<float, Cpu>(L, s, q, q, q, nullptr, h, &saved); }),
               "dropout probability 1 is outside [0, 1)"));
}
