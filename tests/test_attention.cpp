// SPDX-License-Identifier: MIT
#include <lst/nn/attention.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

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
}  // namespace

TEST_CASE("Attention backward matches finite differences, with a padding mask and odd sizes") {
  Rng rng(81);
  ParameterArena<double> arena;
  MultiHeadSelfAttention<double> attn(arena, "attn", 6, 3);  // 3 heads of width 2
  SUBCASE("row-wise kernel") { attn.set_kernel(AttentionKernel::rowwise); }
  SUBCASE("GEMM kernel") { attn.set_kernel(AttentionKernel::gemm); }
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{2, 5, 6}, rng);
  auto mask = padding_mask(2, 5, {5, 3});
  auto g = lst_test::randn(x.shape(), rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto ctx = attn.forward(x, mask, y, Mode::training);
  attn.backward(ctx, g, dx, GradMode::overwrite);
  auto checked = lst_test::parameters_of(arena);
  checked.push_back({"x", x.view(), dx.view()});
  lst_test::expect_zero(checked, "attn.key.bias");
  lst_test::check_gradients(checked, [&] {
    attn.forward(x, mask, y, Mode::inference);
    return lst_test::dot(y, g);
  });
}

TEST_CASE("Masked keys get exactly zero probability and do not influence the output") {
  Rng rng(82);
  ParameterArena<double> arena;
  MultiHeadSelfAttention<double> attn(arena, "attn", 4, 2);
  arena.allocate(false);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{1, 4, 4}, rng);
  auto mask = padding_mask(1, 4, {2});
  Tensor<double> y(x.shape()), y2(x.shape());
  auto ctx = attn.forward(x, mask, y, Mode::training);
  for (index_t h = 0; h < 2; ++h)
    for (index_t i = 0; i < 4; ++i) {
      CHECK(ctx.probs(0, h, i, 2) == 0.0);
      CHECK(ctx.probs(0, h, i, 3) == 0.0);
      CHECK(ctx.probs(0, h, i, 0) + ctx.probs(0, h, i, 1) == doctest::Approx(1.0));
    }
  // Changing the padded tokens changes nothing at the real positions.
  x(0, 3, 1) += 5.0;
  x(0, 2, 0) -= 3.0;
  attn.forward(x, mask, y2, Mode::inference);
  for (index_t t = 0; t < 2; ++t)
    for (index_t c = 0; c < 4; ++c) CHECK(y2(0, t, c) == doctest::Approx(y(0, t, c)).epsilon(1e-14));
  // A fully masked sequence gives zeros, not NaN.
  auto none = padding_mask(1, 4, {0});
  attn.forward(x, none, y2, Mode::inference);
  for (double v : y2.to_vector()) CHECK(std::isfinite(v));
}

TEST_CASE("Prefix key/value hook: gradients of the prefix and of everything else match finite differences") {
  Rng rng(83);
  ParameterArena<double> arena;
  MultiHeadSelfAttention<double> attn(arena, "attn", 4, 2);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{2, 3, 4}, rng);
  auto mask = padding_mask(2, 3, {3, 2});
  auto pk = lst_test::randn(Shape{2, 4}, rng), pv = lst_test::randn(Shape{2, 4}, rng);
  Tensor<double> dpk = Tensor<double>::zeros(pk.shape()), dpv = Tensor<double>::zeros(pv.shape());
  PrefixKV<double> prefix{pk.cview(), pv.cview(), dpk.view(), dpv.view()};
  auto g = lst_test::randn(x.shape(), rng);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto ctx = attn.forward(x, mask, y, Mode::training, &prefix);
  CHECK(ctx.probs.shape() == (Shape{2, 2, 3, 5}));
  attn.backward(ctx, g, dx, GradMode::overwrite);
  auto checked = lst_test::parameters_of(arena);
  checked.push_back({"x", x.view(), dx.view()});
  checked.push_back({"prefix.key", pk.view(), dpk.view()});
  checked.push_back({"prefix.value", pv.view(), dpv.view()});
  lst_test::check_gradients(checked, [&] {
    attn.forward(x, mask, y, Mode::inference, &prefix);
    return lst_test::dot(y, g);
  });
}

TEST_CASE("Attention rejects bad shapes naming the layer and both shapes") {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> attn(arena, "encoder.1.attention", 8, 2);
  arena.allocate(false);
  Tensor<float> x = Tensor<float>::zeros(Shape{2, 5, 8}), y(x.shape());
  auto bad_mask = padding_mask(2, 4, {4, 4});
  const std::string msg = lst_test::error_of([&] { attn.forward(x, bad_mask, y, Mode::inference); });
  CHECK(msg.find("encoder.1.attention") != std::string::npos);
  CHECK(msg.find("(2, 4)") != std::string::npos);
  CHECK(msg.find("(2, 5, 8)") != std::string::npos);
  CHECK_THROWS_AS(MultiHeadSelfAttention<float>(arena, "odd", 9, 2), Error);
}

TEST_CASE("Attention keeps nothing in inference mode; in training exactly x, q, k, v, probabilities, heads") {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> attn(arena, "attn", 16, 4);
  arena.allocate(true);  // trainable projections: x is kept for their weight gradients (test_trainability:
                         // frozen ones keep no x)
  Tensor<float> x = Tensor<float>::zeros(Shape{2, 8, 16}), y(x.shape());
  auto& t = memory_tracker();
  const std::size_t base = t.current(MemCategory::activations);
  {
    auto ctx = attn.forward(x, ConstView<std::int32_t>(), y, Mode::inference);
    CHECK(t.current(MemCategory::activations) == base);
    CHECK(ctx.probs.empty());
  }
  auto ctx = attn.forward(x, ConstView<std::int32_t>(), y, Mode::training);
  const std::size_t btc = 2 * 8 * 16 * sizeof(float),
                    bhtt = 2 * 4 * 8 * 8 * sizeof(float);  // multiples of 64
  CHECK(t.current(MemCategory::activations) - base == 5 * btc + bhtt);
}

TEST_CASE("Attention: a PrefixKV built in a scope that has ended, y aliasing x, and a failed constructor") {
  Rng rng(84);
  ParameterArena<double> arena;
  CHECK_THROWS_AS(MultiHeadSelfAttention<double>(arena, "attn", 4, 3), Error);  // registers nothing
  MultiHeadSelfAttention<double> attn(arena, "attn", 4, 2);                     // so the retry works
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{1, 3, 4}, rng), g = lst_test::randn(Shape{1, 3, 4}, rng);
  auto pk = lst_test::randn(Shape{2, 4}, rng), pv = lst_test::randn(Shape{2, 4}, rng);
  Tensor<double> dpk = Tensor<double>::zeros(pk.shape()), dpv = Tensor<double>::zeros(pv.shape());
  Tensor<double> y(x.shape()), dx(x.shape());
  typename MultiHeadSelfAttention<double>::Context ctx;
  {
    PrefixKV<double> local{pk.cview(), pv.cview(), dpk.view(), dpv.view()};
    ctx = attn.forward(x, ConstView<std::int32_t>(), y, Mode::training, &local);
  }
  attn.backward(ctx, g, dx, GradMode::overwrite);  // the context copied what it needs (ASan checks)
  const auto grads = arena.grads().to_vector();
  auto x2 = x.clone();
  PrefixKV<double> again{pk.cview(), pv.cview(), TensorView<double>(), TensorView<double>()};
  auto ctx2 = attn.forward(x2, ConstView<std::int32_t>(), x2, Mode::training, &again);  // output over input
  attn.backward(ctx2, g, dx, GradMode::overwrite);
  CHECK(x2.to_vector() == y.to_vector());
  CHECK(arena.grads().to_vector() == grads);  // the saved input is the input, not the output
}

TEST_CASE("Recomputing the probabilities in backward gives the same gradients and keeps no (B, H, T, T)") {
  Rng rng(83);
  ParameterArena<double> arena;
  MultiHeadSelfAttention<double> attn(arena, "attn", 6, 3);
  arena.allocate(true);
  lst_test::randomize(arena, rng);
  auto x = lst_test::randn(Shape{2, 5, 6}, rng);
  auto mask = padding_mask(2, 5, {5, 3});
  auto g = lst_test::randn(x.shape(), rng);
  Tensor<double> y(x.shape()), dx_kept(x.shape()), dx_recomputed(x.shape());
  std::vector<double> grads_kept;
  {
    auto ctx = attn.forward(x, mask, y, Mode::training);
    attn.backward(ctx, g, dx_kept, GradMode::overwrite);
    grads_kept.assign(arena.grads().data(), arena.grads().data() + arena.size());
  }
  attn.set_recompute_probabilities(true);
  const std::size_t before = memory_tracker().current(MemCategory::activations);
  auto ctx = attn.forward(x, mask, y, Mode::training);
  // x, q, k, v, heads (2*5*6 doubles each), the (2, 5) int32 mask and each row's softmax max and 1 / sum
  // (2, 3, 5, 2): no (2, 3, 5, 5) probabilities.
  const std::size_t kept = memory_tracker().current(MemCategory::activations) - before;
  CHECK(kept < 5 * 2 * 5 * 6 * sizeof(double) + 2 * 5 * 4 + 2 * 3 * 5 * 2 * sizeof(double) + 7 * 64);
  CHECK(kept < 2 * 3 * 5 * 5 * sizeof(double) + 5 * 2 * 5 * 6 * sizeof(double));
  CHECK(ctx.probs.empty());
  attn.backward(ctx, g, dx_recomputed, GradMode::overwrite);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(dx_recomputed.data()[i] == dx_kept.data()[i]);
  for (index_t i = 0; i < arena.size(); ++i) CHECK(arena.grads().data()[i] == grads_kept[std::size_t(i)]);
}

namespace {
/// Both kernels, each with kept and with recomputed probabilities, on one problem with a mask and a prefix of
/// P = 2 keys (or, without the prefix, a sequence whose keys are all hidden): outputs and every gradient
/// agree to `tol` (relative), and within one kernel the recomputed probabilities give the kept ones'
/// gradients bit for bit.
template <class Real>
void check_kernels_agree(index_t D, index_t T, double tol, bool with_prefix = true) {
  Rng rng(90 + std::uint64_t(D) + 100 * std::uint64_t(T));
  const index_t H = 2, C = H * D, B = 3, P = with_prefix ? 2 : 0;
  ParameterArena<Real> arena;
  MultiHeadSelfAttention<Real> attn(arena, "attn", C, H);
  arena.allocate(true);
  for (std::size_t i = 0; i < arena.count(); ++i) init::normal(arena.value(i), rng, 0.5);
  CHECK(attn.rowwise());  // the automatic choice takes row-wise up to 16
  const auto randn = [&](const Shape& shape) {
    Tensor<Real> t(shape);
    init::normal(t.view(), rng, 1.0);
    return t;
  };
  auto x = randn(Shape{B, T, C}), g = randn(Shape{B, T, C}), pk = randn(Shape{P, C}), pv = randn(Shape{P, C});
  auto mask = with_prefix ? padding_mask(B, T, {T, T / 2 + 1, 1}) : padding_mask(B, T, {T, 0, T / 2 + 1});
  std::vector<std::vector<Real>> outputs, grads;
  for (AttentionKernel kernel : {AttentionKernel::gemm, AttentionKernel::rowwise})
    for (bool recompute : {false, true}) {
      attn.set_kernel(kernel);
      attn.set_recompute_probabilities(recompute);
      Tensor<Real> dpk = Tensor<Real>::zeros(pk.shape()), dpv = Tensor<Real>::zeros(pv.shape());
      PrefixKV<Real> prefix{pk.cview(), pv.cview(), dpk.view(), dpv.view()};
      Tensor<Real> y(x.shape()), dx(x.shape());
      auto ctx = attn.forward(x, mask, y, Mode::training, with_prefix ? &prefix : nullptr);
      attn.backward(ctx, g, dx, GradMode::overwrite);
      outputs.push_back(y.to_vector());
      std::vector<Real> all = arena.grads().to_vector();
      for (const auto* t : {&dx, &dpk, &dpv}) {
        const auto v = t->to_vector();
        all.insert(all.end(), v.begin(), v.end());
      }
      grads.push_back(std::move(all));
    }
  for (std::size_t k = 1; k < outputs.size(); ++k) {
    for (std::size_t i = 0; i < outputs[0].size(); ++i)
      REQUIRE(outputs[k][i] == doctest::Approx(outputs[0][i]).epsilon(tol));
    for (std::size_t i = 0; i < grads[0].size(); ++i)
      REQUIRE(grads[k][i] == doctest::Approx(grads[0][i]).epsilon(100 * tol));
  }
  CHECK(grads[0] == grads[1]);
  CHECK(grads[2] == grads[3]);
}
}  // namespace

TEST_CASE("The row-wise and GEMM kernels agree: mask, prefix, kept or recomputed probabilities") {
  // Tk = T + 2 keys: inside one packet, over several with a partial last one, and whole packets (float).
  for (const index_t T : {7, 21, 30})
    for (const index_t D : {1, 3, 4, 9, 16}) {
      CAPTURE(T);
      CAPTURE(D);
      check_kernels_agree<double>(D, T, 1e-12);
      check_kernels_agree<float>(D, T, 2e-5);
    }
}

TEST_CASE("The row-wise and GEMM kernels agree on a sequence whose keys are all hidden") {
  // Its rows attend to nothing: both kernels give them zero heads and no gradient through the softmax. D = 4
  // takes several rows per row-kernel call, D = 9 one.
  for (const index_t T : {7, 21})
    for (const index_t D : {4, 9}) {
      CAPTURE(T);
      CAPTURE(D);
      check_kernels_agree<double>(D, T, 1e-12, false);
      check_kernels_agree<float>(D, T, 2e-5, false);
    }
}

namespace {
/// One forward and backward of `attn` (B, T, C) with output gradient g; returns the output, then the input
/// gradient and every parameter gradient.
template <class Real>
std::pair<std::vector<Real>, std::vector<Real>> run_attention(const MultiHeadSelfAttention<Real>& attn,
                                                              ParameterArena<Real>& arena,
                                                              const Tensor<Real>& x,
                                                              ConstView<std::int32_t> mask,
                                                              const Tensor<Real>& g) {
  Tensor<Real> y(x.shape()), dx(x.shape());
  auto ctx = attn.forward(x, mask, y, Mode::training);
  attn.backward(ctx, g, dx, GradMode::overwrite);
  std::vector<Real> grads = dx.to_vector(), params = arena.grads().to_vector();
  grads.insert(grads.end(), params.begin(), params.end());
  return {y.to_vector(), grads};
}
}  // namespace

TEST_CASE("Row-wise attention: a padded sequence gives the function of the same sequence unpadded") {
  // The kernel visits only the keys up to the last real token; a key left out by mistake, or a padded one
  // let in, changes the real rows. The padded rows get output gradient 0, as in a model that pools real
  // tokens, so the parameter gradients must agree too. (To rounding: the projections' GEMMs round
  // differently for 40 rows and for L.)
  for (const index_t D : {4, 9})
    for (const index_t L : {1, 5, 16, 17})
      for (const bool recompute : {false, true}) {
        CAPTURE(D);
        CAPTURE(L);
        CAPTURE(recompute);
        Rng rng(120 + std::uint64_t(D * L));
        const index_t H = 2, C = H * D, T = 40;
        ParameterArena<float> arena;
        MultiHeadSelfAttention<float> attn(arena, "attn", C, H);
        arena.allocate(true);
        for (std::size_t i = 0; i < arena.count(); ++i) init::normal(arena.value(i), rng, 0.5);
        attn.set_kernel(AttentionKernel::rowwise);
        attn.set_recompute_probabilities(recompute);
        Tensor<float> x(Shape{1, T, C}), g = Tensor<float>::zeros(Shape{1, T, C});
        init::normal(x.view(), rng, 1.0);
        for (index_t i = 0; i < L * C; ++i) g.data()[i] = float(rng.normal());
        const auto padded = run_attention(attn, arena, x, padding_mask(1, T, {L}), g);
        Tensor<float> x_short(Shape{1, L, C}), g_short(Shape{1, L, C});
        std::copy_n(x.data(), L * C, x_short.data());
        std::copy_n(g.data(), L * C, g_short.data());
        const auto unpadded = run_attention(attn, arena, x_short, ConstView<std::int32_t>(), g_short);
        const std::size_t real = std::size_t(L * C), params = arena.size();
        for (std::size_t i = 0; i < real; ++i) {
          REQUIRE(padded.first[i] == doctest::Approx(unpadded.first[i]).epsilon(1e-5));
          REQUIRE(padded.second[i] == doctest::Approx(unpadded.second[i]).epsilon(1e-5));
        }
        for (std::size_t i = 0; i < params; ++i)
          REQUIRE(padded.second[std::size_t(T * C) + i] ==
                  doctest::Approx(unpadded.second[real + i]).epsilon(1e-5));
        // No gradient reaches a padded position: every key there is hidden.
        for (std::size_t i = real; i < std::size_t(T * C); ++i) REQUIRE(padded.second[i] == 0.0f);
      }
}

namespace {
/// A float attention layer "attn" of H heads of width D, parameters N(0, 0.25), on the given kernel.
struct RandomAttention {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> attn;
  RandomAttention(index_t H, index_t D, AttentionKernel kernel, bool recompute, Rng& rng)
      : attn(arena, "attn", H * D, H) {
    arena.allocate(true);
    for (std::size_t i = 0; i < arena.count(); ++i) init::normal(arena.value(i), rng, 0.5);
    attn.set_kernel(kernel);
    attn.set_recompute_probabilities(recompute);
  }
};
}  // namespace

TEST_CASE("Skipping padded query rows changes no real row and no gradient; padded rows get the bias") {
  for (const AttentionKernel kernel : {AttentionKernel::rowwise, AttentionKernel::gemm})
    for (const bool recompute : {false, true}) {
      CAPTURE(int(kernel));
      CAPTURE(recompute);
      Rng rng(131);
      const index_t H = 2, D = 4, C = H * D, B = 4, T = 21;
      RandomAttention layer(H, D, kernel, recompute, rng);
      ParameterArena<float>& arena = layer.arena;
      MultiHeadSelfAttention<float>& attn = layer.attn;
      // Full, half, one token, none; padded rows get output gradient 0.
      const std::initializer_list<index_t> lengths = {T, 11, 1, 0};
      const auto mask = padding_mask(B, T, lengths);
      Tensor<float> x(Shape{B, T, C}), g(Shape{B, T, C});
      init::normal(x.view(), rng, 1.0);
      init::normal(g.view(), rng, 1.0);
      for (index_t i = 0; i < B * T; ++i)
        if (mask.data()[i] == 0) std::fill_n(g.data() + i * C, C, 0.0f);
      CHECK_FALSE(attn.skips_padded_queries());
      const auto computed = run_attention(attn, arena, x, mask, g);
      attn.set_skip_padded_queries(true);
      const auto skipped = run_attention(attn, arena, x, mask, g);
      // A skipped row's heads are 0, so its output is the output projection's bias.
      const float* bias = attn.output().bias().value().data();
      for (index_t i = 0; i < B * T; ++i)
        for (index_t c = 0; c < C; ++c) {
          const std::size_t at = std::size_t(i * C + c);
          CAPTURE(i);
          REQUIRE(skipped.first[at] == (mask.data()[i] != 0 ? computed.first[at] : bias[c]));
        }
      CHECK(skipped.second == computed.second);
    }
}

TEST_CASE("Asking with the first rows only gives the whole layer's first rows and its gradients") {
  // The LST side network's last block asks with [CLS] alone. A wrong row offset (the mask or the query rows
  // indexed by the query count instead of the sequence length), or the query gradient left out of dx, fails.
  for (const AttentionKernel kernel : {AttentionKernel::rowwise, AttentionKernel::gemm})
    for (const bool recompute : {false, true})
      for (const bool skip : {false, true})
        for (const index_t queries : {1, 3}) {
          CAPTURE(int(kernel));
          CAPTURE(recompute);
          CAPTURE(skip);
          CAPTURE(queries);
          Rng rng(151);
          const index_t H = 3, D = 4, C = H * D, B = 4, T = 13;
          RandomAttention layer(H, D, kernel, recompute, rng);
          ParameterArena<float>& arena = layer.arena;
          MultiHeadSelfAttention<float>& attn = layer.attn;
          attn.set_skip_padded_queries(skip);
          const auto mask = padding_mask(B, T, {T, 7, 2, 1});
          Tensor<float> x(Shape{B, T, C}), g(Shape{B, T, C}), g_first(Shape{B, queries, C});
          init::normal(x.view(), rng, 1.0);
          init::normal(g_first.view(), rng, 1.0);
          g.set_zero();  // the whole layer's output gradient: g_first on the first rows, 0 below
          for (index_t b = 0; b < B; ++b) g[b].slice(0, queries).assign(g_first[b]);
          if (skip)  // a skipping caller reads real rows only
            for (index_t i = 0; i < B * T; ++i)
              if (mask.data()[i] == 0) std::fill_n(g.data() + i * C, C, 0.0f);
          for (index_t b = 0; b < B; ++b)
            for (index_t t = 0; t < queries; ++t)
              if (skip && mask(b, t) == 0) std::fill_n(g_first.data() + (b * queries + t) * C, C, 0.0f);
          const auto whole = run_attention(attn, arena, x, mask, g);

          Tensor<float> y(Shape{B, queries, C}), dx(x.shape());
          auto ctx = attn.forward(x, mask, y, Mode::training, nullptr, queries);
          CHECK(ctx.q.shape() == (Shape{B, queries, C}));
          attn.backward(ctx, g_first, dx, GradMode::overwrite);
          lst_test::expect_first_rows(y.data(), whole.first.data(), B, T, queries, C, 1e-5);
          std::vector<float> grads = dx.to_vector(), params = arena.grads().to_vector();
          grads.insert(grads.end(), params.begin(), params.end());
          lst_test::expect_close_to_largest(grads, whole.second, 1e-5f);
        }
}

TEST_CASE("Packed sequences give the padded layer's real rows and gradients") {
  // Each sequence must attend to its own rows only: a key taken from the next sequence, a wrong query or
  // key offset, or query rows mixed up with whole sequences, changes the real rows.
  for (const AttentionKernel kernel : {AttentionKernel::rowwise, AttentionKernel::gemm})
    for (const bool recompute : {false, true})
      for (const index_t queries : {0, 1, 3}) {
        CAPTURE(int(kernel));
        CAPTURE(recompute);
        CAPTURE(queries);
        Rng rng(157);
        const index_t H = 3, D = 4, C = H * D, B = 4, T = 13;
        RandomAttention layer(H, D, kernel, recompute, rng);
        const auto mask = padding_mask(B, T, {T, 7, 3, 4});
        const auto packed = PackedSequences::from_mask(mask.data(), B, T);
        const PackedSequences asked = queries > 0 ? packed.first_rows(queries) : packed;
        const auto padded = PackedSequences::whole(B, T);
        Tensor<float> x(Shape{B, T, C}), g(Shape{B, T, C});
        init::normal(x.view(), rng, 1.0);
        init::normal(g.view(), rng, 1.0);
        for (index_t b = 0; b < B; ++b)  // the padded layer's output gradient: on the asked rows only
          for (index_t t = asked.length(b); t < T; ++t) std::fill_n(g.data() + (b * T + t) * C, C, 0.0f);
        const auto whole = run_attention(layer.attn, layer.arena, x, mask, g);

        Tensor<float> xp(Shape{packed.rows(), C}), gp(Shape{asked.rows(), C}), yp(gp.shape()),
            dxp(xp.shape());
        copy_first_rows(padded, packed, C, x.data(), xp.data());
        copy_first_rows(padded, asked, C, g.data(), gp.data());
        auto ctx = layer.attn.forward(xp, {}, yp, Mode::training, nullptr, queries, &packed);
        layer.attn.backward(ctx, gp, dxp, GradMode::overwrite);
        // Compare the padded layer's results on the packed rows.
        Tensor<float> y_whole(x.shape()), dx_whole(x.shape());
        std::copy_n(whole.first.data(), x.numel(), y_whole.data());
        std::copy_n(whole.second.data(), x.numel(), dx_whole.data());
        Tensor<float> y_rows(yp.shape()), dx_rows(dxp.shape());
        copy_first_rows(padded, asked, C, y_whole.data(), y_rows.data());
        copy_first_rows(padded, packed, C, dx_whole.data(), dx_rows.data());
        lst_test::expect_close_to_largest(yp.to_vector(), y_rows.to_vector(), 1e-5f);
        std::vector<float> grads = dx_rows.to_vector(),
                           params(whole.second.begin() + x.numel(), whole.second.end());
        grads.insert(grads.end(), params.begin(), params.end());
        std::vector<float> packed_grads = dxp.to_vector(), packed_params = layer.arena.grads().to_vector();
        packed_grads.insert(packed_grads.end(), packed_params.begin(), packed_params.end());
        lst_test::expect_close_to_largest(packed_grads, grads, 1e-5f);
      }
}

TEST_CASE("Packed attention rejects a mask, a prefix, a wrong input or output shape") {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> attn(arena, "attn.p", 8, 2);
  arena.allocate(true);
  const auto packed = PackedSequences::whole(2, 3);
  Tensor<float> x = Tensor<float>::zeros(Shape{6, 8}), y(x.shape()), y2(Shape{2, 8}), bad(Shape{5, 8});
  const Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{2, 3}, 1);
  const auto has = [](const std::string& msg, const char* part) {
    return msg.find(part) != std::string::npos;
  };
  CHECK(has(lst_test::error_of([&] { attn.forward(bad, {}, y, Mode::training, nullptr, 0, &packed); }),
            "packed input x has shape (5, 8), expected (6, 8) for 2 packed sequences"));
  CHECK(has(lst_test::error_of([&] { attn.forward(x, mask, y, Mode::training, nullptr, 0, &packed); }),
            "with no mask and no prefix"));
  CHECK(has(lst_test::error_of([&] { attn.forward(x, {}, y2, Mode::training, nullptr, 0, &packed); }),
            "output y has shape (2, 8), expected (6, 8)"));
  CHECK(has(lst_test::error_of([&] { attn.forward(x, {}, y, Mode::training, nullptr, 1, &packed); }),
            "expected (2, 8)"));
  Tensor<float> y8(Shape{8, 8});
  CHECK(has(lst_test::error_of([&] { attn.forward(x, {}, y8, Mode::training, nullptr, 4, &packed); }),
            "sequence 0 has 3 rows, fewer than the 4 asked"));
  CHECK_NOTHROW(attn.forward(x, {}, y2, Mode::inference, nullptr, 1, &packed));
}

TEST_CASE("Attention rejects query rows beyond the sequence, with a prefix, and a wrong output or dy") {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> attn(arena, "attn.q", 8, 2);
  arena.allocate(true);
  Tensor<float> x = Tensor<float>::zeros(Shape{2, 5, 8}), y1(Shape{2, 1, 8}), y6(Shape{2, 6, 8}),
                y(x.shape());
  const auto has = [](const std::string& msg, const char* part) {
    return msg.find(part) != std::string::npos;
  };
  CHECK(has(lst_test::error_of([&] { attn.forward(x, {}, y6, Mode::training, nullptr, 6); }),
            "attn.q': 6 query rows of 5 positions"));
  CHECK(has(lst_test::error_of([&] { attn.forward(x, {}, y, Mode::training, nullptr, 1); }),
            "expected (2, 1, 8) for input x of shape (2, 5, 8) and its first rows"));
  const Tensor<float> pk = Tensor<float>::zeros(Shape{3, 8}), pv = Tensor<float>::zeros(Shape{3, 8});
  const PrefixKV<float> prefix{pk.cview(), pv.cview(), {}, {}};
  CHECK(has(lst_test::error_of([&] { attn.forward(x, {}, y1, Mode::training, &prefix, 1); }),
            "with a prefix every position asks"));
  auto ctx = attn.forward(x, {}, y1, Mode::training, nullptr, 1);
  Tensor<float> dx(x.shape());
  CHECK(has(lst_test::error_of([&] { attn.backward(ctx, y, dx, GradMode::overwrite); }),
            "expected the output's (2, 1, 8)"));
}

TEST_CASE("The row-wise kernel takes heads up to 16 wide; automatic takes the GEMM kernel above") {
  ParameterArena<float> arena;
  MultiHeadSelfAttention<float> narrow(arena, "narrow", 32, 2), wide(arena, "wide", 34, 2);
  CHECK(narrow.rowwise());
  CHECK_FALSE(wide.rowwise());
  CHECK_NOTHROW(wide.set_kernel(AttentionKernel::gemm));
  const std::string msg = lst_test::error_of([&] { wide.set_kernel(AttentionKernel::rowwise); });
  CHECK(msg.find("'wide'") != std::string::npos);
  CHECK(msg.find("up to 16 wide") != std::string::npos);
  CHECK(msg.find("17 wide") != std::string::npos);
  CHECK_FALSE(wide.rowwise());
}

TEST_CASE("Row softmax and dot: the same bits at every alignment, exact zeros for hidden keys") {
  Rng rng(7);
  for (const index_t n : {1, 5, 16, 17, 40, 128, 131}) {
    CAPTURE(n);
    const std::size_t count = std::size_t(n);
    std::vector<float> row(count), other(count);
    std::vector<std::int32_t> mask(count);
    for (index_t j = 0; j < n; ++j) {
      row[std::size_t(j)] = float(3 * rng.normal());
      other[std::size_t(j)] = float(rng.normal());
      mask[std::size_t(j)] = j % 3 != 1;
    }
    // Reference in double.
    double mx = -1e300, sum = 0;
    for (index_t j = 1; j < n; ++j)  // key 0 is a prefix position (P = 1): never hidden
      if (mask[std::size_t(j - 1)]) mx = std::max(mx, double(row[std::size_t(j)]));
    mx = std::max(mx, double(row[0]));
    std::vector<double> want(count, 0.0);
    for (index_t j = 0; j < n; ++j)
      if (j == 0 || mask[std::size_t(j - 1)])
        sum += want[std::size_t(j)] = std::exp(double(row[std::size_t(j)]) - mx);
    std::vector<float> first;
    float first_dot = 0;
    std::vector<float> buffer(count + 32), buffer2(count + 32);
    for (index_t offset = 0; offset < 17; ++offset) {
      float* s = buffer.data() + offset;
      float* o = buffer2.data() + offset;
      std::copy(row.begin(), row.end(), s);
      std::copy(other.begin(), other.end(), o);
      const float d = cpu::dot(s, o, n);
      cpu::masked_softmax_row(s, n, 1, mask.data());
      if (offset == 0) {
        first.assign(s, s + n);
        first_dot = d;
        for (index_t j = 0; j < n; ++j) {
          CHECK(s[j] == doctest::Approx(want[std::size_t(j)] / sum).epsilon(1e-5));
          if (j > 0 && !mask[std::size_t(j - 1)]) CHECK(s[j] == 0.0f);
        }
      } else {
        REQUIRE(std::equal(first.begin(), first.end(), s));
        REQUIRE(d == first_dot);
      }
    }
  }
  std::vector<float> row = {1, 2, 3};
  std::vector<std::int32_t> none = {0, 0, 0};
  cpu::masked_softmax_row(row.data(), 3, 0, none.data());
  CHECK(row == std::vector<float>{0, 0, 0});
}

TEST_CASE("softmax_exp: Eigen's exp bit for bit on [-87.3, 0], the true exp below, 0 for hidden keys") {
  namespace ei = Eigen::internal;
  using P = cpu::Packet<float>;
  constexpr index_t L = cpu::packet_size<float>;
  const auto both = [](float x) {
    alignas(64) float in[L], ours[L], eigen[L];
    std::fill(in, in + L, x);
    ei::pstore(ours, cpu::softmax_exp<float>(ei::pload<P>(in)));
    ei::pstore(eigen, ei::pexp(ei::pload<P>(in)));
    return std::make_pair(ours[0], eigen[0]);
  };
  // Every 4093rd float of [-87.3, 0] (about 270,000), then 0 and values down to 1e-30 below it.
  index_t checked = 0;
  const auto check = [&](float x) {
    const auto [ours, eigen] = both(x);
    ++checked;
    if (ours != eigen) {
      CAPTURE(x);
      REQUIRE(ours == eigen);
    }
  };
  for (std::int32_t bits = 0x42AE999A; bits > 0; bits -= 4093) {  // 0x42AE999A: 87.3f
    float x;
    std::memcpy(&x, &bits, sizeof x);
    check(-x);
  }
  check(0.0f);
  for (float x = -1e-30f; x > -1.0f; x *= 1.7f) check(x);
  CHECK(checked > 100000);
  // Below Eigen's range (AVX-512 and AVX2 only; elsewhere softmax_exp is Eigen's exp): within a few ulp of
  // the true value (a denormal), or 0 where that underflows; with AVX2, 0 once 2^m would be 2^-127.
#if defined(__AVX512F__)
  for (const float x : {-87.5f, -88.0f, -90.0f, -100.0f}) {
    CAPTURE(x);
    CHECK(double(both(x).first) == doctest::Approx(std::exp(double(x))).epsilon(1e-5));
  }
  CHECK(both(-104.0f).first == 0.0f);
#elif defined(__AVX2__) && defined(__FMA__)
  CHECK(double(both(-87.5f).first) == doctest::Approx(std::exp(-87.5)).epsilon(1e-5));
  for (const float x : {-88.0f, -90.0f, -104.0f}) CHECK(both(x).first == 0.0f);
#endif
  // A hidden key (score -inf) gets exactly 0 from masked_exp, whatever the row's max.
  std::vector<float> s(L, -std::numeric_limits<float>::infinity()), out(L);
  s[1] = -3.0f;
  ei::pstoreu(out.data(), cpu::masked_exp<float>(ei::ploadu<P>(s.data()), ei::pset1<P>(2.0f)));
  CHECK(out[0] == 0.0f);
  CHECK(out[1] == doctest::Approx(std::exp(-5.0)).epsilon(1e-6));
}

namespace {
/// The row kernels with R rows per call against R calls of one row: the same bits, forward and backward
/// (recomputed and kept probabilities), so blocking rows changes nothing but speed.
template <int D, int R>
void check_rows_per_call() {
  using T = float;
  const index_t Tk = 37, Tp = cpu::padded_keys<T>(Tk), ld = 3 * D;
  Rng rng(300 + D);
  std::vector<T> q(R * ld), go(R * ld), kt(D * Tp, T(0)), vt(D * Tp, T(0)), bias(Tp, T(0));
  for (auto* v : {&q, &go})
    for (auto& x : *v) x = T(rng.normal());
  for (index_t d = 0; d < D; ++d)
    for (index_t j = 0; j < Tk; ++j) {
      kt[std::size_t(d * Tp + j)] = T(rng.normal());
      vt[std::size_t(d * Tp + j)] = T(rng.normal());
    }
  for (index_t j = Tk - 5; j < Tp; ++j) bias[std::size_t(j)] = -std::numeric_limits<T>::infinity();
  const T scale = T(0.4);
  // Forward: one call of R rows against R calls of one.
  std::vector<T> o_many(R * ld), o_one(R * ld), e_many(R * Tp), e_one(Tp);
  cpu::SoftmaxRowStats<T> st_many[R], st_one[R];
  cpu::attention_rows_forward<T, D, R>(q.data(), o_many.data(), ld, scale, kt.data(), vt.data(), bias.data(),
                                       Tp, e_many.data(), st_many);
  for (int r = 0; r < R; ++r) {
    cpu::attention_rows_forward<T, D, 1>(q.data() + r * ld, o_one.data() + r * ld, ld, scale, kt.data(),
                                         vt.data(), bias.data(), Tp, e_one.data(), st_one + r);
    CHECK(std::equal(e_one.begin(), e_one.end(), e_many.begin() + r * Tp));
    CHECK(st_one[r].max == st_many[r].max);
    CHECK(st_one[r].inv_sum == st_many[r].inv_sum);
  }
  CHECK(o_one == o_many);
  // Without keeping the exps (backward recomputes them): the same outputs and statistics.
  std::vector<T> o_lean(R * ld), e_lean(R * Tp);
  cpu::SoftmaxRowStats<T> st_lean[R];
  cpu::attention_rows_forward<T, D, R, false>(q.data(), o_lean.data(), ld, scale, kt.data(), vt.data(),
                                              bias.data(), Tp, e_lean.data(), st_lean);
  CHECK(o_lean == o_many);
  for (int r = 0; r < R; ++r) {
    CHECK(st_lean[r].max == st_many[r].max);
    CHECK(st_lean[r].inv_sum == st_many[r].inv_sum);
  }
  // Backward, with recomputed and with kept probabilities.
  const auto check_backward = [&](auto recompute) {
    constexpr bool Recompute = decltype(recompute)::value;
    CAPTURE(Recompute);
    std::vector<T> dkt_many(D * Tp, T(0)), dvt_many(D * Tp, T(0)), gq_many(R * ld), dkt_one(D * Tp, T(0)),
        dvt_one(D * Tp, T(0)), gq_one(R * ld), p(R * Tp, T(0)), delta(R, T(0));
    for (int r = 0; r < R; ++r)  // go . o, the one-pass backward's sum_j p_j dP_j, as the layer forms it
      delta[std::size_t(r)] = cpu::attention_row_delta<T, D>(go.data() + r * ld, o_many.data() + r * ld);
    // Without recomputation the kernel reads the kept probabilities from p (zero past Tk).
    const auto keep = [&](int r, T* into) {
      if (!Recompute)
        for (index_t j = 0; j < Tk; ++j) into[j] = e_many[std::size_t(r * Tp + j)] * st_many[r].inv_sum;
    };
    for (int r = 0; r < R; ++r) keep(r, p.data() + r * Tp);
    cpu::attention_rows_backward<T, D, R, Recompute>(
        q.data(), go.data(), gq_many.data(), ld, scale, kt.data(), vt.data(), bias.data(), Tp, st_many,
        delta.data(), p.data(), dkt_many.data(), dvt_many.data());
    for (int r = 0; r < R; ++r) {
      std::fill(p.begin(), p.end(), T(0));
      keep(r, p.data());
      cpu::attention_rows_backward<T, D, 1, Recompute>(
          q.data() + r * ld, go.data() + r * ld, gq_one.data() + r * ld, ld, scale, kt.data(), vt.data(),
          bias.data(), Tp, st_one + r, delta.data() + r, p.data(), dkt_one.data(), dvt_one.data());
    }
    CHECK(gq_one == gq_many);
    CHECK(dkt_one == dkt_many);
    CHECK(dvt_one == dvt_many);
  };
  check_backward(std::true_type{});
  check_backward(std::false_type{});
}
}  // namespace

TEST_CASE("The row kernels give the same bits for several rows per call as for one") {
  check_rows_per_call<1, 4>();
  check_rows_per_call<4, 4>();
  check_rows_per_call<5, 4>();
  check_rows_per_call<8, 4>();
  check_rows_per_call<4, 2>();
  check_rows_per_call<16, 2>();
}
