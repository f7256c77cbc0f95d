// SPDX-License-Identifier: MIT
#include <lst/init/structural_pruning.hpp>
#include <lst/methods/lst/side_network.hpp>
#include <lst/models/bert_encoder.hpp>

#include <map>

#include "gradient_check.hpp"

using namespace lst;
using init::BlockSelection;
using init::PruneSelection;

namespace {

Tensor<float> matrix(index_t rows, index_t cols, std::initializer_list<float> v) {
  Tensor<float> t(Shape{rows, cols});
  index_t i = 0;
  for (float x : v) t.data()[i++] = x;
  return t;
}

/// Weights by name, importance = magnitude.
struct MapSource {
  std::map<std::string, Tensor<float>> w;
  init::PruneSource source() const {
    const auto get = [this](const std::string& n) -> ConstView<float> {
      const auto it = w.find(n);
      REQUIRE_MESSAGE(it != w.end(), "no tensor " << n);
      return it->second;
    };
    return {get, get};
  }
};

init::PruneSource magnitude_of(const BertEncoder<float>& bert) {
  const auto get = [&bert](const std::string& n) -> ConstView<float> {
    return bert.parameters().find(n).value();
  };
  return {get, get};  // |W| is what row_l1 / col_l1 sum: the weights are their own magnitude importance
}

io::BertConfig tiny(index_t layers) {
  io::BertConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 2;
  c.intermediate_size = 12;
  c.max_position_embeddings = 8;
  c.hidden_dropout_prob = 0.0;
  return c;
}

}  // namespace

TEST_CASE("importance helpers: top rows by L1, over a column subset, ties to the lower index") {
  CHECK(init::top_indices({3, 1, 4, 1, 5}, 2) == std::vector<index_t>{2, 4});
  CHECK(init::top_indices({1, 2, 2, 0}, 2) == std::vector<index_t>{1, 2});
  CHECK(init::top_indices({7, 7, 7}, 1) == std::vector<index_t>{0});
  const auto m = matrix(3, 3, {1, -5, 0, /**/ 2, 2, 2, /**/ -4, 0, 1});
  CHECK(init::row_l1(m) == std::vector<double>{6, 6, 5});
  CHECK(init::row_l1(m, {0, 2}) == std::vector<double>{1, 4, 5});  // column 1 dropped by an earlier step
  CHECK(init::col_l1(m) == std::vector<double>{7, 7, 3});
  Tensor<float> dst(Shape{2, 2});
  init::slice_into(m.cview(), {0, 2}, {0, 2}, dst.view(), "m");
  CHECK(std::vector<float>(dst.data(), dst.data() + 4) == std::vector<float>{1, 0, -4, 1});
  CHECK_THROWS_WITH_AS(init::top_indices({1, 2}, 3), doctest::Contains("cannot keep 3 of 2"), Error);
}

TEST_CASE("q, k, v share one row set: the reference ignores heads, the head-aware selection does not") {
  // 4 inner units in 2 heads of 2; q, k, v rows 0 and 1 (both in head 0) are the strongest.
  MapSource s;
  for (const char* m : {"query", "key", "value"})
    s.w["l.attention." + std::string(m) + ".weight"] = matrix(4, 2, {9, 9, 8, 8, 2, 2, 1, 1});
  CHECK(init::qkv_rows_reference(s.source(), "l", {}, 2) == std::vector<index_t>{0, 1});
  // Two side heads: the best unit of each backbone head.
  CHECK(init::qkv_rows_by_head(s.source(), "l", {}, 2, 2, 2) == std::vector<index_t>{0, 2});
  // One side head of width 2: both units of the strongest backbone head.
  CHECK(init::qkv_rows_by_head(s.source(), "l", {}, 2, 2, 1) == std::vector<index_t>{0, 1});
  // Scored by the product: a row strong in q but zero in v loses.
  s.w["l.attention.value.weight"] = matrix(4, 2, {0, 0, 8, 8, 2, 2, 1, 1});
  CHECK(init::qkv_rows_reference(s.source(), "l", {}, 2) == std::vector<index_t>{1, 2});
  CHECK_THROWS_WITH_AS(init::qkv_rows_by_head(s.source(), "l", {}, 4, 2, 1),
                       doctest::Contains("more side heads"), Error);
}

TEST_CASE("with r = 1 both selections keep everything: side block i computes backbone block i") {
  for (PruneSelection mode : {PruneSelection::reference, PruneSelection::consistent}) {
    BertEncoder<float> bert(tiny(2), false);
    Rng rng(5);
    for (std::size_t i = 0; i < bert.parameters().count(); ++i)
      init::normal(bert.parameters().value(i), rng, 0.5);
    SideOptions o;
    o.dropout = 0.0;
    SideNetwork<LstConfig<1>> side(tiny(2), o, 1);
    init::prune_into(side, magnitude_of(bert), 2, mode);
    Tensor<float> x = Tensor<float>::zeros(Shape{1, 3, 8}), a(Shape{1, 3, 8}), b(Shape{1, 3, 8});
    init::normal(x.view(), rng, 1.0);
    for (std::size_t l = 0; l < 2; ++l) {
      bert.layers()[l].forward(x, {}, a, Mode::inference, 0);
      side.blocks()[l].forward(x, {}, b, Mode::inference, 0);
      for (index_t i = 0; i < a.numel(); ++i)
        CHECK(b.data()[i] == doctest::Approx(a.data()[i]).epsilon(1e-5));
    }
  }
}

TEST_CASE("reference selections chain block to block; consistent ones share one residual set") {
  BertEncoder<float> bert(tiny(3), false);
  Rng rng(6);
  for (std::size_t i = 0; i < bert.parameters().count(); ++i)
    init::normal(bert.parameters().value(i), rng, 0.5);
  SideNetwork<LstConfig<2>> ref_side(tiny(3), SideOptions{}, 1), con_side(tiny(3), SideOptions{}, 1);
  const auto ref = init::prune_into(ref_side, magnitude_of(bert), 2, PruneSelection::reference);
  const auto con = init::prune_into(con_side, magnitude_of(bert), 2, PruneSelection::consistent);
  REQUIRE(ref.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(ref[i].qkv.size() == 4);
    CHECK(ref[i].hidden.size() == 6);
    if (i > 0) CHECK(ref[i].input == ref[i - 1].output);
    CHECK(con[i].input == con[0].input);
    CHECK(con[i].attention == con[0].input);
    CHECK(con[i].output == con[0].input);
    // Head-aware: 2 side heads of width 2, each inside one backbone head of width 4.
    CHECK(con[i].qkv[0] / 4 == con[i].qkv[1] / 4);
    CHECK(con[i].qkv[2] / 4 == con[i].qkv[3] / 4);
  }
  // The copied slices: side fc1 row 0 is backbone fc1 row hidden[0] at the selected columns.
  const auto side_fc1 = con_side.parameters().find("blocks.1.ffn.fc1.weight").value();
  const auto bb_fc1 = bert.parameters().find("encoder.layer.1.ffn.fc1.weight").value();
  for (std::size_t c = 0; c < 4; ++c)
    CHECK(side_fc1.data()[c] == bb_fc1.data()[con[1].hidden[0] * 8 + con[1].attention[c]]);
}
