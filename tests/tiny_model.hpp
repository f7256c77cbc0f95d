// SPDX-License-Identifier: MIT
/// @file tiny_model.hpp
/// @brief A tiny random BERT saved as a real checkpoint directory would be (config.json, vocab.txt,
///        model.safetensors under Hugging Face's names), and a scratch directory for tests that write files.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <lst/lst.hpp>

namespace lst_test {

inline lst::io::BertConfig tiny_config() {
  lst::io::BertConfig c;
  c.vocab_size = 16;
  c.hidden_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 12;
  c.max_position_embeddings = 12;
  c.hidden_dropout_prob = 0.1;
  return c;
}

/// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("lst_test_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

/// Random weights (N(0, 0.2), seed `seed`) for tiny_config() (or `config`), saved under Hugging Face's names.
inline void write_tiny_checkpoint(const std::string& path, std::uint64_t seed = 7,
                                  const lst::io::BertConfig& config = tiny_config()) {
  lst::BertEncoder<float> bert(config, false);
  lst::Rng rng(seed);
  auto& params = bert.parameters();
  for (std::size_t i = 0; i < params.count(); ++i) lst::init::normal(params.value(i), rng, 0.2);
  std::vector<lst::io::NamedTensor> tensors;
  for (std::size_t i = 0; i < params.count(); ++i)
    tensors.push_back({lst::BertEncoder<float>::hf_name(params.info(i).name), params.value(i)});
  lst::io::save_safetensors(path, tensors);
}

/// The 16 tokens of the tiny model's vocabulary, one per line (id = line number).
inline const char* tiny_vocab() {
  return "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\nmovie\nthe\nwas\nvery\nfun\nboring\n.\n!\nplot\n";
}

/// A checkpoint directory as the programs expect: config.json, vocab.txt, model.safetensors.
inline void write_tiny_model_dir(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const lst::io::BertConfig c = tiny_config();
  std::ofstream(dir + "/config.json")
      << "{\"model_type\": \"bert\", \"vocab_size\": " << c.vocab_size
      << ", \"hidden_size\": " << c.hidden_size << ", \"num_hidden_layers\": " << c.num_hidden_layers
      << ", \"num_attention_heads\": " << c.num_attention_heads
      << ", \"intermediate_size\": " << c.intermediate_size
      << ", \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-12"
      << ", \"max_position_embeddings\": " << c.max_position_embeddings
      << ", \"type_vocab_size\": 2, \"hidden_dropout_prob\": 0.1"
      << ", \"attention_probs_dropout_prob\": 0.1}";
  std::ofstream(dir + "/vocab.txt") << tiny_vocab();
  write_tiny_checkpoint(dir + "/model.safetensors");
}

}  // namespace lst_test
