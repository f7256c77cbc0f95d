// SPDX-License-Identifier: MIT
/// @file bert_config.hpp
/// @brief Hugging Face `config.json` of a BertModel (Devlin et al. 2019, appendix A.2 for the fields'
/// meaning).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/activation_kind.hpp"
#include "../core/error.hpp"
#include "../fwd.hpp"

LST_NAMESPACE_BEGIN
namespace io {

struct BertConfig {
  index_t vocab_size = 30522;
  index_t hidden_size = 768;
  index_t num_hidden_layers = 12;
  index_t num_attention_heads = 12;
  index_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12;
  index_t max_position_embeddings = 512;
  index_t type_vocab_size = 2;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;

  ActivationKind activation() const { return activation_from_name(hidden_act); }
};

/// Parses a config.json text; `source` names it in errors. Every field lst uses is checked for presence and
/// type; fields the library cannot honour (relative position embeddings) are refused rather than ignored.
inline BertConfig parse_bert_config(const std::string& text, const std::string& source) {
  auto fail = [&](const std::string& what) { lst::detail::raise<Error>("config '", source, "': ", what); };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail("not a JSON object");
  BertConfig c;
  auto integer = [&](const char* key, index_t& out, index_t lo) {
    const auto it = j.find(key);
    if (it == j.end()) fail(std::string("missing field '") + key + "'");
    if (!it->is_number_integer() || it->get<long long>() < lo)
      fail(std::string("field '") + key + "' must be an integer >= " + std::to_string(lo) + ", got " +
           it->dump());
    out = static_cast<index_t>(it->get<long long>());
  };
  auto real = [&](const char* key, double& out, double lo, double hi, bool required) {
    const auto it = j.find(key);
    if (it == j.end()) {
      if (required) fail(std::string("missing field '") + key + "'");
      return;
    }
    if (!it->is_number() || !(it->get<double>() >= lo && it->get<double>() <= hi))
      fail(std::string("field '") + key + "' must be a number in [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "], got " + it->dump());
    out = it->get<double>();
  };
  integer("vocab_size", c.vocab_size, 1);
  integer("hidden_size", c.hidden_size, 1);
  integer("num_hidden_layers", c.num_hidden_layers, 1);
  integer("num_attention_heads", c.num_attention_heads, 1);
  integer("intermediate_size", c.intermediate_size, 1);
  integer("max_position_embeddings", c.max_position_embeddings, 1);
  integer("type_vocab_size", c.type_vocab_size, 1);
  real("layer_norm_eps", c.layer_norm_eps, 0.0, 1.0, true);
  real("hidden_dropout_prob", c.hidden_dropout_prob, 0.0, 0.99, false);
  real("attention_probs_dropout_prob", c.attention_probs_dropout_prob, 0.0, 0.99, false);
  const auto act = j.find("hidden_act");
  if (act == j.end() || !act->is_string()) fail("missing string field 'hidden_act'");
  c.hidden_act = act->get<std::string>();
  try {
    (void)activation_from_name(c.hidden_act);
  } catch (const Error& e) {
    fail(e.what());
  }
  if (c.hidden_size % c.num_attention_heads != 0)
    fail("hidden_size " + std::to_string(c.hidden_size) + " is not divisible by num_attention_heads " +
         std::to_string(c.num_attention_heads));
  const auto pos = j.find("position_embedding_type");
  if (pos != j.end() && (!pos->is_string() || pos->get<std::string>() != "absolute"))
    fail("position_embedding_type " + pos->dump() + " is not supported (only \"absolute\")");
  const auto type = j.find("model_type");
  if (type != j.end() && (!type->is_string() || type->get<std::string>() != "bert"))
    fail("model_type " + type->dump() + " is not \"bert\"");
  return c;
}

/// Reads and parses `path` (a checkpoint directory's config.json).
inline BertConfig load_bert_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) lst::detail::raise<Error>("config '", path, "': cannot open");
  std::ostringstream text;
  text << f.rdbuf();
  return parse_bert_config(text.str(), path);
}

}  // namespace io
LST_NAMESPACE_END
