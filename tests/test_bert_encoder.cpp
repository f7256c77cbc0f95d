// SPDX-License-Identifier: MIT
#include <lst/models/bert_encoder.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gradient_check.hpp"

using namespace lst;

namespace {
io::BertConfig tiny_config() {
  io::BertConfig c;
  c.vocab_size = 11;
  c.hidden_size = 6;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 10;
  c.max_position_embeddings = 7;
  c.type_vocab_size = 2;
  c.hidden_dropout_prob = 0.1;
  return c;
}
}  // namespace

TEST_CASE("BertEncoder full backward (embeddings, layers, pooler) matches finite differences") {
  BertEncoder<double> bert(tiny_config(), true, 3);
  Rng rng(5);
  lst_test::randomize(bert.parameters(), rng, 0.4);
  Tensor<std::int32_t> ids(Shape{2, 4}), types = Tensor<std::int32_t>::zeros(Shape{2, 4}),
                                         mask = Tensor<std::int32_t>::full(Shape{2, 4}, 1);
  const std::int32_t v[] = {1, 5, 7, 2, 1, 3, 10, 0};
  std::copy(v, v + 8, ids.data());
  types(0, 2) = types(0, 3) = 1;
  mask(1, 3) = 0;
  auto gh = lst_test::randn(Shape{2, 4, 6}, rng), gp = lst_test::randn(Shape{2, 6}, rng);
  Tensor<double> hidden(Shape{2, 4, 6}), pooled(Shape{2, 6});
  auto ctx = bert.forward(ids, types, mask, hidden, pooled, Mode::training, 9);
  bert.backward(ctx, gh, gp, GradMode::overwrite);
  auto checked = lst_test::parameters_of(bert.parameters());
  lst_test::expect_zero(checked, "encoder.layer.0.attention.key.bias");
  lst_test::expect_zero(checked, "encoder.layer.1.attention.key.bias");
  lst_test::check_gradients(checked, [&] {
    bert.forward(ids, types, mask, hidden, pooled, Mode::training, 9);
    return lst_test::dot(hidden, gh) + lst_test::dot(pooled, gp);
  });
}

TEST_CASE("BertEncoder taps every layer in inference and keeps no activation") {
  BertEncoder<float> bert(tiny_config(), false);
  Tensor<std::int32_t> ids = Tensor<std::int32_t>::full(Shape{3, 5}, 2);
  Tensor<float> hidden(Shape{3, 5, 6});
  std::vector<index_t> seen;
  const std::size_t before = memory_tracker().current(MemCategory::activations);
  bert.forward(ids, {}, {}, hidden, {}, Mode::inference, 0, [&](index_t layer, ConstView<float> h) {
    CHECK(h.shape() == hidden.shape());
    CHECK(memory_tracker().current(MemCategory::activations) == before);
    seen.push_back(layer);
  });
  CHECK(seen == std::vector<index_t>{0, 1, 2});
  Tensor<std::int32_t> too_long = Tensor<std::int32_t>::zeros(Shape{1, 8});
  Tensor<float> h8(Shape{1, 8, 6});
  CHECK(lst_test::error_of([&] {
          bert.forward(too_long, {}, {}, h8, {}, Mode::inference, 0);
        }).find("exceeds") != std::string::npos);
}

TEST_CASE("BERT config.json: parsed fields and clear errors naming the field") {
  const auto c = io::parse_bert_config(
      R"({"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
          "intermediate_size": 1536, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
          "type_vocab_size": 2, "model_type": "bert", "position_embedding_type": "absolute"})",
      "mini.json");
  CHECK(c.hidden_size == 384);
  CHECK(c.activation() == ActivationKind::gelu);
  auto err = [](const std::string& text) {
    return lst_test::error_of([&] { io::parse_bert_config(text, "cfg.json"); });
  };
  CHECK(err("{").find("cfg.json") != std::string::npos);
  CHECK(err(R"({"vocab_size": 10})").find("hidden_size") != std::string::npos);
  const std::string base =
      R"("vocab_size": 10, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4,
         "hidden_act": "gelu", "layer_norm_eps": 1e-12, "max_position_embeddings": 8, "type_vocab_size": 2)";
  CHECK(err("{" + base + R"(, "hidden_size": -4})").find("hidden_size") != std::string::npos);
  CHECK(err("{" + base + R"(, "hidden_size": 5})").find("divisible") != std::string::npos);
  CHECK(err("{" + base + R"(, "hidden_size": 4, "position_embedding_type": "relative_key"})")
            .find("relative_key") != std::string::npos);
  CHECK_NOTHROW(io::parse_bert_config("{" + base + R"(, "hidden_size": 4})", "ok.json"));
}

TEST_CASE("BertEncoder loads a checkpoint it saved under Hugging Face names, with and without 'bert.'") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("lst_test_bert_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  BertEncoder<float> a(tiny_config(), false);
  Rng rng(8);
  init::normal(a.parameters().values(), rng, 0.1);
  for (const std::string prefix : {"", "bert."}) {
    std::vector<io::NamedTensor> out;
    for (std::size_t i = 0; i < a.parameters().count(); ++i)
      out.push_back(
          {prefix + BertEncoder<float>::hf_name(a.parameters().info(i).name), a.parameters().value(i)});
    const std::string p = (dir / "model.safetensors").string();
    io::save_safetensors(p, out);
    BertEncoder<float> b(tiny_config(), false);
    b.load(io::SafetensorsFile(p));
    for (std::size_t i = 0; i < a.parameters().count(); ++i)
      CHECK(b.parameters().value(i).to_vector() == a.parameters().value(i).to_vector());
  }
  io::BertConfig wider = tiny_config();
  wider.hidden_size = 8;
  BertEncoder<float> c(wider, false);
  const std::string msg =
      lst_test::error_of([&] { c.load(io::SafetensorsFile((dir / "model.safetensors").string())); });
  CHECK(msg.find("embeddings.word_embeddings.weight") != std::string::npos);
  CHECK(msg.find("(11, 8)") != std::string::npos);
  fs::remove_all(dir);
}
