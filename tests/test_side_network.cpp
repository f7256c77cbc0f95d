// SPDX-License-Identifier: MIT
#include <lst/methods/lst/side_network.hpp>
#include <lst/models/bert_encoder.hpp>

#include "gradient_check.hpp"

using namespace lst;

namespace {

io::BertConfig backbone_config(index_t layers = 3) {
  io::BertConfig c;
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 2;
  c.intermediate_size = 12;
  c.max_position_embeddings = 9;
  return c;
}

/// A frozen random backbone, a side network over it, and one batch with padding.
template <class Config>
struct Fixture {
  BertEncoder<double> backbone;
  SideNetwork<Config> side;
  Tensor<std::int32_t> ids, mask;
  explicit Fixture(SideOptions options, io::BertConfig cfg = backbone_config())
      : backbone(cfg, false, 1), side(cfg, std::move(options), 2), ids(Shape{2, 5}), mask(Shape{2, 5}) {
    Rng rng(3);
    lst_test::randomize(backbone.parameters(), rng, 0.5);
    lst_test::randomize(side.parameters(), rng, 0.4);
    // Gates near, but not at, mu = 0.5: alpha / T = +-4 would saturate the sigmoid and leave the earlier
    // layers' gradients too small for finite differences to resolve.
    auto& p = side.parameters();
    for (std::size_t i = 0; i < p.count(); ++i)
      if (p.info(i).name.rfind("gates.", 0) == 0 || p.info(i).name == "output_gate")
        init::normal(p.value(i), rng, 0.03);
      else if (p.info(i).name.find("norm.weight") != std::string::npos)
        init::normal(p.value(i), rng, 0.1, 1.0);  // LayerNorm gains near 1, as trained ones are
    const std::int32_t v[] = {1, 4, 7, 2, 9, 1, 3, 12, 0, 0};
    std::copy(v, v + 10, ids.data());
    for (index_t i = 0; i < 10; ++i) mask.data()[i] = i < 8 ? 1 : 0;
  }
  typename SideNetwork<Config>::Context forward(Tensor<double>& features, Mode mode) const {
    auto ctx = side.begin(2, 5, mask, mode, 7);
    Tensor<double> hidden(Shape{2, 5, backbone.config().hidden_size});
    backbone.forward(ids, {}, mask, hidden, {}, Mode::inference, 0,
                     [&](index_t l, ConstView<double> h) { side.on_tap(ctx, l, h); });
    side.finish(ctx, features);
    return ctx;
  }
};

template <class Config>
void check_side_gradients(SideOptions options, io::BertConfig cfg = backbone_config()) {
  Fixture<Config> f(std::move(options), cfg);
  Rng rng(4);
  auto g = lst_test::randn(Shape{2, cfg.hidden_size}, rng);
  Tensor<double> features(Shape{2, cfg.hidden_size});
  const auto ctx = f.forward(features, Mode::training);
  f.side.backward(ctx, g, GradMode::overwrite);
  auto checked = lst_test::parameters_of(f.side.parameters());
  for (const auto& c : checked)
    if (c.name.find("attention.key.bias") != std::string::npos) lst_test::expect_zero(checked, c.name);
  // h = 2.5e-6, not the default 1e-5: a gate mu = sigmoid(alpha / T) at T = 0.1 has third derivatives of
  // order 1 / T^3, and the central difference's truncation error (h^2 / 6 times the third derivative) reached
  // 2.9e-6 at 1e-5 once the side blocks' attention dropout took part (1.8e-7 at 2.5e-6; rounding ~1e-11).
  lst_test::check_gradients(
      checked,
      [&] {
        f.forward(features, Mode::training);  // the same step: the same dropout masks
        return lst_test::dot(features, g);
      },
      1e-6, 2.5e-6);
}

using R2 = LstConfig<2, KeepAllLayers, std::ratio<1, 10>, double>;

}  // namespace

TEST_CASE(
    "LST side network: ladders, gates, side blocks, final norm and up-projection match finite differences") {
  check_side_gradients<R2>(SideOptions{});
}

TEST_CASE(
    "LST gate variants (after the block, plain sum, no ladder input, per channel) match finite differences") {
  for (GateMode g : {GateMode::after, GateMode::sum, GateMode::none}) {
    INFO("gate " << std::string(to_string(g)));
    SideOptions o;
    o.gate = g;
    check_side_gradients<R2>(o);
  }
  SideOptions per_channel;
  per_channel.per_channel_gates = true;
  check_side_gradients<R2>(per_channel);
}

TEST_CASE(
    "LST low-rank ladders, fewer side heads, stored attention and dropped layers match finite differences") {
  SideOptions low_rank;
  low_rank.ladder_rank = 3;
  check_side_gradients<R2>(low_rank);
  SideOptions one_head;
  one_head.heads = 1;
  one_head.recompute_attention = false;
  check_side_gradients<R2>(one_head);
  check_side_gradients<LstConfig<2, KeepOddLayers, std::ratio<1, 10>, double>>(SideOptions{},
                                                                               backbone_config(4));
  SideOptions listed;
  listed.layers = {2, 0};
  check_side_gradients<LstConfig<2, ExplicitLayers, std::ratio<1, 4>, double>>(listed);  // T = 0.25
}

TEST_CASE("the last side block computes the [CLS] row only: the same features and gradients, to rounding") {
  // With [CLS] pooling (the default) the last block asks with [CLS] alone; turning that off runs every row.
  // Also with the output gate, which reads the backbone's state, not the side state's other rows.
  for (const bool output_gate : {false, true}) {
    CAPTURE(output_gate);
    SideOptions o;
    if (output_gate) o.output_gate = OutputGate::mean;
    Fixture<R2> trimmed(o);
    o.cls_only_last_block = false;
    Fixture<R2> whole(o);
    const index_t d = backbone_config().hidden_size;
    Rng rng(5);
    auto g = lst_test::randn(Shape{2, d}, rng);
    Tensor<double> f_trimmed(Shape{2, d}), f_whole(Shape{2, d});
    const auto ctx_trimmed = trimmed.forward(f_trimmed, Mode::training);
    const auto ctx_whole = whole.forward(f_whole, Mode::training);
    CHECK(ctx_trimmed.state.shape() == (Shape{2, trimmed.side.width()}));
    CHECK(ctx_whole.state.shape() == (Shape{8, whole.side.width()}));  // the 8 real tokens, packed
    for (index_t i = 0; i < 2 * d; ++i)
      REQUIRE(f_trimmed.data()[i] == doctest::Approx(f_whole.data()[i]).epsilon(1e-12));
    trimmed.side.backward(ctx_trimmed, g, GradMode::overwrite);
    whole.side.backward(ctx_whole, g, GradMode::overwrite);
    lst_test::expect_close_to_largest(trimmed.side.parameters().grads().to_vector(),
                                      whole.side.parameters().grads().to_vector(), 1e-12);
  }
  // Mean pooling reads every row: the last block stays whole.
  SideOptions mean;
  mean.mean_pooling = true;
  Fixture<R2> pooled(mean);
  Tensor<double> features(Shape{2, backbone_config().hidden_size});
  CHECK(pooled.forward(features, Mode::training).state.shape() == (Shape{8, pooled.side.width()}));
}

TEST_CASE("QST output gate (backbone [CLS] or mean-pooled final state) matches finite differences") {
  for (OutputGate g : {OutputGate::cls, OutputGate::mean}) {
    INFO("output gate " << std::string(to_string(g)));
    SideOptions o;
    o.output_gate = g;
    check_side_gradients<R2>(o);
    o.gate = GateMode::none;  // no ladder after the embeddings: the final state is read for the gate alone
    check_side_gradients<R2>(o);
  }
  SideOptions last;
  last.output_gate = OutputGate::mean;
  check_side_gradients<LstConfig<2, KeepOddLayers, std::ratio<1, 10>, double>>(last, backbone_config(5));
}

TEST_CASE("mean pooling of the side state (with and without the output gate) matches finite differences") {
  SideOptions o;
  o.mean_pooling = true;
  check_side_gradients<R2>(o);
  o.output_gate = OutputGate::mean;
  check_side_gradients<R2>(o);
}

TEST_CASE("the output gate starts at its initial share and mixes the backbone's pooled final state") {
  SideOptions o;
  o.output_gate = OutputGate::mean;
  o.output_gate_init = 0.8;
  o.gate = GateMode::none;
  o.dropout = 0;
  SideNetwork<LstConfig<2, KeepAllLayers, std::ratio<1, 10>, double>> side(backbone_config(), o, 5);
  CHECK(side.output_gate() == doctest::Approx(0.8));
  CHECK(side.read_taps() == std::vector<index_t>{0, 3});
  CHECK(side.describe().find("output_gate=mean@0.8") != std::string::npos);
  // With up = 0, the features are exactly 0.8 x the mean of the final state over the real tokens.
  auto& p = side.parameters();
  for (std::size_t i = 0; i < p.count(); ++i)
    if (p.info(i).name.rfind("up.", 0) == 0) p.value(i).set_zero();
  Fixture<LstConfig<2, KeepAllLayers, std::ratio<1, 10>, double>> f(SideOptions{});
  Tensor<double> hidden(Shape{2, 5, 8}), features(Shape{2, 8});
  auto ctx = side.begin(2, 5, f.mask, Mode::inference, 0);
  f.backbone.forward(f.ids, {}, f.mask, hidden, {}, Mode::inference, 0,
                     [&](index_t l, ConstView<double> h) { side.on_tap(ctx, l, h); });
  side.finish(ctx, features);
  for (index_t b = 0; b < 2; ++b)
    for (index_t c = 0; c < 8; ++c) {
      double mean = 0;
      const index_t real = b == 0 ? 5 : 3;  // the mask: 8 of 10 positions real
      for (index_t t = 0; t < real; ++t) mean += hidden.data()[(b * 5 + t) * 8 + c] / double(real);
      CHECK(features.data()[b * 8 + c] == doctest::Approx(0.8 * mean).epsilon(1e-12));
    }
  SideOptions bad;
  bad.output_gate = OutputGate::cls;
  bad.output_gate_init = 1.0;
  CHECK_THROWS_WITH_AS((SideNetwork<LstConfig<2>>(backbone_config(), bad, 1)),
                       doctest::Contains("output gate's initial value 1"), Error);
}

TEST_CASE("layer masks: the reference patterns and explicit lists") {
  CHECK(kept_layers<KeepAllLayers>(3) == std::vector<index_t>{0, 1, 2});
  CHECK(kept_layers<KeepOddLayers>(6) == std::vector<index_t>{1, 3, 5});
  CHECK(kept_layers<DropEveryFourthLayer>(12) == std::vector<index_t>{1, 2, 3, 5, 6, 7, 9, 10, 11});
  CHECK(kept_layers<KeepLastLayer>(6) == std::vector<index_t>{5});
  CHECK(kept_layers<ExplicitLayers>(6, {4, 1, 4}) == std::vector<index_t>{1, 4});
  CHECK_THROWS_WITH_AS(kept_layers<ExplicitLayers>(6, {6}), doctest::Contains("outside"), Error);
  CHECK_THROWS_WITH_AS(kept_layers<KeepOddLayers>(1), doctest::Contains("keeps none"), Error);
}

TEST_CASE("a dropped layer has no ladder, gate or side block") {
  SideNetwork<LstConfig<2, KeepLastLayer>> side(backbone_config(3), SideOptions{}, 1);
  const auto& p = side.parameters();
  CHECK_NOTHROW(p.find("ladders.2.weight"));
  CHECK_NOTHROW(p.find("gates.2"));
  CHECK_NOTHROW(p.find("blocks.2.ffn.fc1.weight"));
  CHECK_NOTHROW(p.find("ladders.embeddings.weight"));
  for (const char* gone : {"ladders.0.weight", "gates.1", "blocks.0.ffn.fc1.weight"})
    CHECK_THROWS_AS(p.find(gone), Error);
  CHECK(side.gate(0) == std::vector<double>{0.5});  // alpha = 0 at init
}

namespace {
struct Kept {
  std::size_t activations, taps, workspace;
};
/// Bytes a training-mode forward leaves behind, per category, with a side network of width 8 and FFN width
/// 16 on a backbone of width d (r = d / 8).
template <class Config>
Kept kept_after_forward(index_t d, TapDtype dtype) {
  io::BertConfig cfg = backbone_config(3);
  cfg.hidden_size = d;
  cfg.num_attention_heads = 4;
  cfg.intermediate_size = 2 * d;
  SideOptions o;
  o.tap_dtype = dtype;
  BertEncoder<float> backbone(cfg, false, 1);
  SideNetwork<Config> side(cfg, o, 2);
  REQUIRE(side.width() == 8);
  Tensor<std::int32_t> ids = Tensor<std::int32_t>::full(Shape{4, 6}, 3);
  Tensor<std::int32_t> mask = Tensor<std::int32_t>::full(Shape{4, 6}, 1);
  Tensor<float> features(Shape{4, d});
  const auto& t = memory_tracker();
  const Kept before{t.current(MemCategory::activations), t.current(MemCategory::taps),
                    t.current(MemCategory::workspace)};
  auto ctx = side.begin(4, 6, mask, Mode::training, 0);
  {
    Tensor<float> hidden(Shape{4, 6, d});
    backbone.forward(ids, {}, mask, hidden, {}, Mode::inference, 0,
                     [&](index_t l, ConstView<float> h) { side.on_tap(ctx, l, h); });
  }
  side.finish(ctx, features);
  return {t.current(MemCategory::activations) - before.activations,
          t.current(MemCategory::taps) - before.taps, t.current(MemCategory::workspace) - before.workspace};
}
}  // namespace

TEST_CASE("no backbone activation survives the forward pass; ladder inputs are the only kept taps") {
  for (TapDtype dtype : {TapDtype::f32, TapDtype::f16, TapDtype::bf16}) {
    INFO("tap dtype " << std::string(to_string(dtype)));
    // The same side network (width 8) on backbones of width 64 and 128: whatever the forward keeps, other
    // than the ladder inputs, must not depend on the backbone's width, or a backbone tensor survived.
    const Kept narrow = kept_after_forward<LstConfig<8>>(64, dtype);
    const Kept wide = kept_after_forward<LstConfig<16>>(128, dtype);
    CHECK(narrow.activations == wide.activations);
    CHECK(narrow.workspace == 0);
    CHECK(wide.workspace == 0);
    // Four ladders (embeddings + 3 layers), each input (4, 6, d) stored once at 4 or 2 bytes an element.
    const std::size_t bytes = dtype == TapDtype::f32 ? 4 : 2;
    CHECK(narrow.taps == 4 * 4 * 6 * 64 * bytes);
    CHECK(wide.taps == 4 * 4 * 6 * 128 * bytes);
  }
}

TEST_CASE("ladder inputs stored as f16 or bf16 give gradients close to f32 storage") {
  auto grads_with = [](TapDtype dtype) {
    SideOptions o;
    o.tap_dtype = dtype;
    io::BertConfig cfg = backbone_config();
    BertEncoder<float> backbone(cfg, false, 1);
    SideNetwork<LstConfig<2>> side(cfg, o, 2);
    Rng rng(3);
    for (std::size_t i = 0; i < backbone.parameters().count(); ++i)
      init::normal(backbone.parameters().value(i), rng, 0.5);
    Tensor<std::int32_t> ids = Tensor<std::int32_t>::full(Shape{2, 4}, 5),
                         mask = Tensor<std::int32_t>::full(Shape{2, 4}, 1);
    auto ctx = side.begin(2, 4, mask, Mode::training, 0);
    Tensor<float> hidden(Shape{2, 4, 8}), features(Shape{2, 8}), g = Tensor<float>::full(Shape{2, 8}, 1.0f);
    backbone.forward(ids, {}, mask, hidden, {}, Mode::inference, 0,
                     [&](index_t l, ConstView<float> h) { side.on_tap(ctx, l, h); });
    side.finish(ctx, features);
    side.backward(ctx, g, GradMode::overwrite);
    const auto grads = side.parameters().grads();
    return std::vector<float>(grads.data(), grads.data() + grads.numel());
  };
  const auto f32 = grads_with(TapDtype::f32);
  for (TapDtype dtype : {TapDtype::f16, TapDtype::bf16}) {
    const auto half = grads_with(dtype);
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < f32.size(); ++i) {
      diff += double(half[i] - f32[i]) * double(half[i] - f32[i]);
      norm += double(f32[i]) * double(f32[i]);
    }
    INFO(to_string(dtype) << " relative gradient error " << std::sqrt(diff / norm));
    CHECK(std::sqrt(diff / norm) < (dtype == TapDtype::f16 ? 1e-3 : 1e-2));
    CHECK(std::sqrt(diff / norm) > 0);  // the storage type really changed
  }
}

TEST_CASE(
    "a backbone state given away to on_tap gives the borrowed state's result; packed, it is kept (and "
    "dropped) without a copy") {
  // Three ways in: borrowed padded views (the backbone's), padded tensors given away, and packed tensors
  // given away (the tap cache's), which the ladders keep as they are.
  enum class Way { borrow, give_padded, give_packed };
  for (TapDtype dtype : {TapDtype::f32, TapDtype::f16}) {
    INFO("tap dtype " << std::string(to_string(dtype)));
    SideOptions o;
    o.tap_dtype = dtype;
    Fixture<R2> f(o);
    const index_t d = f.backbone.config().hidden_size;
    Rng rng(5);
    auto g = lst_test::randn(Shape{2, d}, rng);
    auto run = [&](Way way) {
      Tensor<double> features(Shape{2, d});
      auto ctx = f.side.begin(2, 5, f.mask, Mode::training, 7);
      Tensor<double> hidden(Shape{2, 5, d});
      std::vector<const double*> given;
      f.backbone.forward(
          f.ids, {}, f.mask, hidden, {}, Mode::inference, 0, [&](index_t l, ConstView<double> h) {
            if (way == Way::borrow) return f.side.on_tap(ctx, l, h);
            Tensor<double> state = clone_as(h, MemCategory::taps);  // as a tap read back from the cache
            if (way == Way::give_packed) {
              state = Tensor<double>(Shape{ctx.rows.rows(), d}, MemCategory::taps);
              copy_first_rows(PackedSequences::whole(2, 5), ctx.rows, d, h.data(), state.data());
            }
            given.push_back(state.data());
            f.side.on_tap(ctx, l, std::move(state));
          });
      f.side.finish(ctx, features);
      f.side.backward(ctx, g, GradMode::overwrite);
      if (way == Way::give_packed) {  // layer states 1..3 are the three side blocks' ladder inputs
        for (std::size_t i = 0; i < ctx.layers.size(); ++i)
          CHECK((ctx.layers[i].ladder.input.data() == given[i + 1]) == (dtype == TapDtype::f32));
        // The embeddings are dropped in place, and the ladder keeps the dropped state.
        CHECK((ctx.embedding_ladder.input.data() == given[0]) == (dtype == TapDtype::f32));
      }
      std::vector<double> out = features.to_vector(), grads = f.side.parameters().grads().to_vector();
      out.insert(out.end(), grads.begin(), grads.end());
      return out;
    };
    const auto borrowed = run(Way::borrow);
    CHECK(run(Way::give_padded) == borrowed);
    CHECK(run(Way::give_packed) == borrowed);
  }
}

TEST_CASE(
    "the side network packs real tokens only: padding changes nothing, a wrong mask or state is named") {
  // The same two sequences padded to 5 and to 9 positions: the padded rows are never computed, so the
  // features and gradients are equal (to the backbone's rounding, whose GEMMs see other sizes; dropout masks
  // differ with the padded length, so it is off).
  SideOptions o;
  o.dropout = 0.0;
  Fixture<R2> f(o);
  const index_t d = f.backbone.config().hidden_size;
  Rng rng(6);
  auto g = lst_test::randn(Shape{2, d}, rng);
  const auto run = [&](index_t Tn) {
    Tensor<std::int32_t> ids = Tensor<std::int32_t>::zeros(Shape{2, Tn}),
                         mask = Tensor<std::int32_t>::zeros(Shape{2, Tn});
    for (index_t b = 0; b < 2; ++b)
      for (index_t t = 0; t < 5; ++t) {
        ids(b, t) = f.ids(b, t);
        mask(b, t) = f.mask(b, t);
      }
    Tensor<double> features(Shape{2, d}), hidden(Shape{2, Tn, d});
    auto ctx = f.side.begin(2, Tn, mask, Mode::training, 7);
    CHECK(ctx.rows.rows() == 8);
    f.backbone.forward(ids, {}, mask, hidden, {}, Mode::inference, 0,
                       [&](index_t l, ConstView<double> h) { f.side.on_tap(ctx, l, h); });
    f.side.finish(ctx, features);
    f.side.backward(ctx, g, GradMode::overwrite);
    std::vector<double> out = features.to_vector(), grads = f.side.parameters().grads().to_vector();
    out.insert(out.end(), grads.begin(), grads.end());
    return out;
  };
  lst_test::expect_close_to_largest(run(9), run(5), 1e-12);
  Tensor<std::int32_t> left = Tensor<std::int32_t>::full(Shape{2, 5}, 1);
  left(1, 0) = 0;  // left padding
  CHECK(lst_test::error_of([&] {
          f.side.begin(2, 5, left, Mode::training, 0);
        }).find("mask row 1 has a real token at position 1 after padding at position 0") !=
        std::string::npos);
  auto ctx = f.side.begin(2, 5, f.mask, Mode::training, 0);
  const Tensor<double> wrong = Tensor<double>::zeros(Shape{7, d});
  CHECK(
      lst_test::error_of([&] {
        f.side.on_tap(ctx, 0, wrong);
      }).find("backbone state 0 has shape (7, 8), expected (2, 5, 8) or its 8 real tokens packed, (8, 8)") !=
      std::string::npos);
}

TEST_CASE("a ladder reading its rows in place trains on a batch of no rows: zero gradients, no error") {
  // The context of an in-place forward is its row addresses; with none it is still a training context.
  ParameterArena<float> arena;
  Ladder<float> ladder(arena, "ladder.0", 64, 16, 0);
  arena.allocate(true);
  Rng rng(5);
  init::uniform(arena.values(), rng, -1, 1);
  init::uniform(arena.grads(), rng, -1, 1);  // stale values that overwrite must clear
  Tensor<float> y(Shape{0, 16}), dy(Shape{0, 16});
  const auto ctx = ladder.forward(std::vector<const float*>{}, y, Mode::training);
  ladder.backward(ctx, dy, GradMode::overwrite);
  for (const float g : arena.grads().to_vector()) CHECK(g == 0.0f);
  CHECK(ladder.restore(ctx).shape() == (Shape{0, 64}));
}
