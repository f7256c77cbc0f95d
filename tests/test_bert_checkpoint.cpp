// SPDX-License-Identifier: MIT
// The real checkpoint: all-MiniLM-L6-v2 (scripts/fetch-model.py) against Hugging Face transformers' BertModel
// on the same token ids (tests/data/minilm_reference.safetensors, made by scripts/hf_reference.py).
#include <lst/models/bert_encoder.hpp>

#include <cstdlib>
#include <filesystem>

#include "gradient_check.hpp"

using namespace lst;

namespace {
Tensor<std::int32_t> as_ids(const io::SafetensorsFile& f, const std::string& name) {
  const auto& e = f.at(name);
  Tensor<float> v(Shape::from_range(e.shape.begin(), e.shape.end()));
  f.read(name, v.view());
  Tensor<std::int32_t> ids(v.shape());
  for (index_t i = 0; i < v.numel(); ++i) ids.data()[i] = static_cast<std::int32_t>(v.data()[i]);
  return ids;
}
}  // namespace

TEST_CASE("all-MiniLM-L6-v2: lst's forward matches Hugging Face BertModel within 1e-4") {
  const std::string dir = lst_test::model_dir();
  REQUIRE_MESSAGE(std::filesystem::exists(dir + "/model.safetensors"),
                  "checkpoint not found in " << dir << ": run scripts/fetch-model.py (or set LST_MODEL_DIR)");
  const io::BertConfig cfg = io::load_bert_config(dir + "/config.json");
  CHECK(cfg.num_hidden_layers == 6);
  CHECK(cfg.hidden_size == 384);
  const io::SafetensorsFile weights(dir + "/model.safetensors");  // the real file passes every format check
  BertEncoder<float> bert(cfg, false);
  bert.load(weights);
  CHECK(bert.parameters().parameter_count() == 22713216);  // transformers' count for this checkpoint

  const io::SafetensorsFile ref(LST_TEST_DATA_DIR "/minilm_reference.safetensors");
  const auto ids = as_ids(ref, "input_ids"), types = as_ids(ref, "token_type_ids"),
             mask = as_ids(ref, "attention_mask");
  const index_t B = ids.dim(0), T = ids.dim(1);
  Tensor<float> hidden(Shape{B, T, 384}), pooled(Shape{B, 384}), want(Shape{B, T, 384}),
      want_pooled(Shape{B, 384});
  ref.read("last_hidden_state", want.view());
  ref.read("pooler_output", want_pooled.view());
  bert.forward(ids, types, mask, hidden, pooled, Mode::inference, 0);
  double max_diff = 0, max_pooled = 0;
  for (index_t i = 0; i < hidden.numel(); ++i)
    max_diff = std::max(max_diff, double(std::abs(hidden.data()[i] - want.data()[i])));
  for (index_t i = 0; i < pooled.numel(); ++i)
    max_pooled = std::max(max_pooled, double(std::abs(pooled.data()[i] - want_pooled.data()[i])));
  MESSAGE("max |lst - transformers| over " << B << " x " << T << " x 384: last hidden " << max_diff
                                           << ", pooled " << max_pooled);
  CHECK(max_diff <= 1e-4);
  CHECK(max_pooled <= 1e-4);
}
