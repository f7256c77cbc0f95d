// SPDX-License-Identifier: MIT
// Insertion points (nn/site.hpp): a test-only module registered at the FFN, attention and embeddings sites,
// gradient-checked through the encoder layer and the whole encoder; a layer without modules unchanged.
#include <lst/lst.hpp>

#include "gradient_check.hpp"
#include "tiny_model.hpp"

using namespace lst;

namespace {
/// h <- h + tanh(x A) B + c * h: a parallel adapter's shape (from the site's input x) plus a term in h
/// itself (as a sequential adapter's), so that backward exercises both dL/dx and the change of dL/dh.
class TestModule final : public SiteModule<double> {
 public:
  struct Context final : SiteContext {
    Tensor<double> x, t, h;  // (N, Cin) input, (N, m) tanh(x A), (N, Cout) h before the module (for dc)
  };
  TestModule(ParameterArena<double>& arena, const std::string& name, index_t in, index_t width, index_t out)
      : m_in(in), m_width(width), m_out(out) {
    m_a = arena.add(name + ".A", Shape{in, width}, ParamRole::weight);
    m_b = arena.add(name + ".B", Shape{width, out}, ParamRole::weight);
    m_c = arena.add(name + ".c", Shape{out}, ParamRole::other);
  }
  std::unique_ptr<SiteContext> forward(ConstView<double> x, TensorView<double> h, Mode mode,
                                       std::uint64_t) const override {
    const index_t N = h.shape().rows();
    REQUIRE(x.shape().rows() == N);
    auto ctx = std::make_unique<Context>();
    ctx->x = clone_as(x, MemCategory::activations);
    ctx->h = clone_as(ConstView<double>(h), MemCategory::activations);
    ctx->t = Tensor<double>(Shape{N, m_width});
    const double *A = m_a.value().data(), *B = m_b.value().data(), *c = m_c.value().data();
    for (index_t n = 0; n < N; ++n) {
      for (index_t j = 0; j < m_width; ++j) {
        double s = 0;
        for (index_t i = 0; i < m_in; ++i) s += x.data()[n * m_in + i] * A[i * m_width + j];
        ctx->t.data()[n * m_width + j] = std::tanh(s);
      }
      for (index_t o = 0; o < m_out; ++o) {
        double s = 0;
        for (index_t j = 0; j < m_width; ++j) s += ctx->t.data()[n * m_width + j] * B[j * m_out + o];
        double& v = h.data()[n * m_out + o];
        v = v + s + c[o] * v;
      }
    }
    if (mode != Mode::training) return nullptr;
    ++forwards;
    return ctx;
  }
  void backward(const SiteContext* base, TensorView<double> dh, TensorView<double> dx,
                GradMode gm) const override {
    const auto& ctx = dynamic_cast<const Context&>(*base);
    const index_t N = dh.shape().rows();
    const double *A = m_a.value().data(), *B = m_b.value().data(), *c = m_c.value().data();
    const TensorView<double> dA = m_a.grad(), dB = m_b.grad(), dc = m_c.grad();
    if (gm == GradMode::overwrite) {
      dA.set_zero();
      dB.set_zero();
      dc.set_zero();
    }
    for (index_t n = 0; n < N; ++n) {
      std::vector<double> dt(std::size_t(m_width), 0.0);
      for (index_t o = 0; o < m_out; ++o) {
        const double g = dh.data()[n * m_out + o];
        for (index_t j = 0; j < m_width; ++j) {
          dB.data()[j * m_out + o] += ctx.t.data()[n * m_width + j] * g;
          dt[std::size_t(j)] += B[j * m_out + o] * g;
        }
      }
      for (index_t j = 0; j < m_width; ++j) {
        const double t = ctx.t.data()[n * m_width + j];
        const double ds = dt[std::size_t(j)] * (1 - t * t);
        for (index_t i = 0; i < m_in; ++i) {
          dA.data()[i * m_width + j] += ctx.x.data()[n * m_in + i] * ds;
          if (!dx.empty()) dx.data()[n * m_in + i] += A[i * m_width + j] * ds;
        }
      }
    }
    // dc = the sum over rows of dL/dh_after * h_before; dL/dh_before = (1 + c) dL/dh_after.
    for (index_t n = 0; n < N; ++n)
      for (index_t o = 0; o < m_out; ++o) {
        double& g = dh.data()[n * m_out + o];
        dc.data()[o] += g * ctx.h.data()[n * m_out + o];
        g = (1 + c[o]) * g;
      }
  }
  mutable int forwards = 0;  // training forward calls

 private:
  index_t m_in, m_width, m_out;
  Param<double> m_a, m_b, m_c;
};

std::vector<lst_test::Checked> all_of(const ParameterArena<double>& a, const ParameterArena<double>& b) {
  auto out = lst_test::parameters_of(a);
  for (auto& c : lst_test::parameters_of(b)) out.push_back(c);
  return out;
}
}  // namespace

TEST_CASE("A module at the FFN or attention site of an encoder layer: gradients through the layer") {
  for (const Site site : {Site::ffn, Site::attention}) {
    CAPTURE(to_string(site));
    Rng rng(41);
    ParameterArena<double> arena, adapter("adapter");
    EncoderLayer<double> layer(arena, "layer.0",
                               EncoderLayerConfig{6, 2, 10, ActivationKind::gelu, 1e-5, 0.2}, 5);
    auto module = std::make_shared<TestModule>(adapter, "site", 6, 3, 6);
    arena.allocate(true);
    adapter.allocate(true);
    lst_test::randomize(arena, rng);
    lst_test::randomize(adapter, rng);
    layer.attach(site, module);
    CHECK_THROWS_AS(layer.attach(Site::query, nullptr), Error);
    auto x = lst_test::randn(Shape{2, 4, 6}, rng);
    Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{2, 4}, 1);
    mask(1, 3) = 0;
    auto g = lst_test::randn(x.shape(), rng);
    Tensor<double> y(x.shape()), dx(x.shape());
    auto ctx = layer.forward(x, mask, y, Mode::training, 17);
    CHECK(module->forwards == 1);
    layer.backward(ctx, g, dx, GradMode::overwrite);
    auto checked = all_of(arena, adapter);
    checked.push_back({"x", x.view(), dx.view()});
    lst_test::expect_zero(checked, "layer.0.attention.key.bias");
    lst_test::check_gradients(checked, [&] {
      layer.forward(x, mask, y, Mode::training, 17);
      return lst_test::dot(y, g);
    });
  }
}

TEST_CASE("Without modules the layer computes what it computed before; with one removed, again") {
  Rng rng(43);
  ParameterArena<double> arena, adapter("adapter");
  EncoderLayer<double> layer(arena, "layer.0", EncoderLayerConfig{6, 2, 10, ActivationKind::gelu, 1e-5, 0.2},
                             5);
  auto module = std::make_shared<TestModule>(adapter, "site", 6, 3, 6);
  arena.allocate(true);
  adapter.allocate(true);
  lst_test::randomize(arena, rng);
  lst_test::randomize(adapter, rng);
  auto x = lst_test::randn(Shape{2, 4, 6}, rng);
  Tensor<double> plain(x.shape()), with(x.shape()), again(x.shape());
  layer.forward(x, {}, plain, Mode::training, 3);
  layer.attach(Site::ffn, module);
  layer.forward(x, {}, with, Mode::training, 3);
  CHECK(with.to_vector() != plain.to_vector());
  layer.attach(Site::ffn, nullptr);
  layer.forward(x, {}, again, Mode::training, 3);
  CHECK(again.to_vector() == plain.to_vector());
}

TEST_CASE("Modules at the embeddings site and at every layer's FFN site: gradients through the encoder") {
  io::BertConfig cfg = lst_test::tiny_config();
  cfg.hidden_dropout_prob = 0.1;
  Rng rng(47);
  BertEncoder<double> encoder(cfg, /*trainable=*/true, 9);
  lst_test::randomize(encoder.parameters(), rng, 0.3);
  ParameterArena<double> adapters("adapters");
  const index_t C = cfg.hidden_size;
  auto embeddings = std::make_shared<TestModule>(adapters, "embeddings", C, 2, C);
  std::vector<std::shared_ptr<TestModule>> ffn;
  for (index_t l = 0; l < cfg.num_hidden_layers; ++l)
    ffn.push_back(std::make_shared<TestModule>(adapters, "ffn." + std::to_string(l), C, 2, C));
  adapters.allocate(true);
  lst_test::randomize(adapters, rng, 0.3);
  encoder.attach_embeddings(embeddings);
  for (index_t l = 0; l < cfg.num_hidden_layers; ++l) encoder.layer(l).attach(Site::ffn, ffn[std::size_t(l)]);

  Tensor<std::int32_t> ids(Shape{2, 3});
  for (index_t i = 0; i < ids.numel(); ++i) ids.data()[i] = std::int32_t(1 + i % (cfg.vocab_size - 1));
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{2, 3}, 1);
  mask(1, 2) = 0;
  Tensor<double> hidden(Shape{2, 3, C});
  auto g = lst_test::randn(hidden.shape(), rng);
  auto ctx = encoder.forward(ids, {}, mask, hidden, {}, Mode::training, 5);
  encoder.backward(ctx, g, {}, GradMode::overwrite);
  std::vector<lst_test::Checked> checked = lst_test::parameters_of(adapters);
  for (const char* name : {"encoder.layer.0.ffn.fc1.weight", "embeddings.LayerNorm.weight"})
    checked.push_back(
        {name, encoder.parameters().find(name).value(), encoder.parameters().find(name).grad()});
  lst_test::check_gradients(checked, [&] {
    encoder.forward(ids, {}, mask, hidden, {}, Mode::training, 5);
    return lst_test::dot(hidden, g);
  });
}
