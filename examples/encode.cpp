// SPDX-License-Identifier: MIT
/// @file encode.cpp
/// @brief `lst-encode`: sentences (one per line, a tab separating the two sentences of a pair) from stdin or
///        --input, through a pretrained BERT-family checkpoint, into a safetensors file with input_ids,
///        attention_mask, token_type_ids (I32, (N, T)), last_hidden_state (N, T, C), sentence_embedding
///        (N, C: the mean over real tokens, sentence-transformers' pooling) and, with --all-layers,
///        hidden_states (L + 1, N, T, C). --tokenize-only writes the three id tensors alone.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <lst/io/wordpiece.hpp>
#include <lst/lst.hpp>
#include <nlohmann/json.hpp>

#include "model_factory.hpp"

namespace {

using namespace lst;

struct Options {
  std::string model_dir, input = "-", output, dtype = "F32";
  std::size_t max_seq_len = 128;
  index_t batch_size = 32;
  bool all_layers = false, tokenize_only = false;
};

int run(const Options& o) {
  const auto tokenizer =
      io::WordPieceTokenizer::from_file(o.model_dir + "/vocab.txt", lst_programs::lower_case_of(o.model_dir));
  std::vector<EncodedExample> examples = lst_programs::read_sentences(o.input, tokenizer, o.max_seq_len);
  LST_CHECK(!examples.empty(), o.input == "-" ? "stdin" : o.input, ": no sentences (one per line expected)");

  // All N examples padded to the longest of them: one (N, T) tensor per field.
  std::vector<std::uint32_t> all(examples.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = std::uint32_t(i);
  const Batch everything = make_batch(examples, all.data(), all.size());
  const index_t N = everything.size(), T = everything.length();
  std::vector<io::NamedTensor> out = {{"input_ids", {}, "I32", everything.ids},
                                      {"attention_mask", {}, "I32", everything.mask},
                                      {"token_type_ids", {}, "I32", everything.token_types}};
  const std::map<std::string, std::string> metadata = {{"model", o.model_dir},
                                                       {"max_seq_len", std::to_string(o.max_seq_len)},
                                                       {"pooling", "mean over attention_mask"}};
  if (o.tokenize_only) {
    io::save_safetensors(o.output, out, metadata);
    std::fprintf(stderr, "lst-encode: %lld sentences, %lld tokens each (padded) -> %s\n", (long long)N,
                 (long long)T, o.output.c_str());
    return 0;
  }

  const io::BertConfig cfg = io::load_bert_config(o.model_dir + "/config.json");
  const io::SafetensorsFile weights(o.model_dir + "/model.safetensors");
  BertEncoder<float> bert(cfg, /*trainable=*/false);
  bert.load(weights);
  const index_t C = cfg.hidden_size, L = cfg.num_hidden_layers;
  Tensor<float> last = Tensor<float>::zeros(Shape{N, T, C}), pooled = Tensor<float>::zeros(Shape{N, C});
  Tensor<float> layers = o.all_layers ? Tensor<float>::zeros(Shape{L + 1, N, T, C}) : Tensor<float>();
  for (index_t first = 0; first < N; first += o.batch_size) {
    const index_t n = std::min(o.batch_size, N - first);
    const Batch batch = make_batch(examples, all.data() + first, std::size_t(n));
    const index_t t = batch.length();
    Tensor<float> hidden(Shape{n, t, C});
    bert.forward(batch.ids, batch.token_types, batch.mask, hidden, {}, Mode::inference, 0,
                 [&](index_t layer, ConstView<float> h) {  // h (n, t, C)
                   if (!o.all_layers) return;
                   for (index_t r = 0; r < n; ++r)
                     for (index_t p = 0; p < t; ++p) layers[layer][first + r][p].assign(h[r][p]);
                 });
    for (index_t r = 0; r < n; ++r) {
      const index_t len = index_t(examples[std::size_t(first + r)].ids.size());
      for (index_t p = 0; p < len; ++p) {
        last[first + r][p].assign(hidden[r][p]);
        pooled[first + r] += hidden[r][p];
      }
      pooled[first + r] = pooled[first + r] * (1.0f / float(len));
    }
  }
  if (o.all_layers)  // padding positions hold zeros, as in last_hidden_state
    for (index_t l = 0; l <= L; ++l)
      for (index_t r = 0; r < N; ++r)
        for (index_t p = index_t(examples[std::size_t(r)].ids.size()); p < T; ++p) layers[l][r][p].set_zero();
  out.push_back({"last_hidden_state", last, o.dtype});
  out.push_back({"sentence_embedding", pooled, o.dtype});
  if (o.all_layers) out.push_back({"hidden_states", layers, o.dtype});
  io::save_safetensors(o.output, out, metadata);
  std::fprintf(stderr, "lst-encode: %lld sentences, %lld tokens each (padded), width %lld -> %s\n",
               (long long)N, (long long)T, (long long)C, o.output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int threads = 0;
  CLI::App app{"lst-encode: sentences through a pretrained BERT-family checkpoint into a safetensors file"};
  app.add_option("--model", o.model_dir, "checkpoint directory (config.json, model.safetensors, vocab.txt)")
      ->required();
  app.add_option("--input", o.input, "text file, one sentence (or tab-separated pair) per line; - = stdin")
      ->capture_default_str();
  app.add_option("--output", o.output, "safetensors file to write (atomically)")->required();
  app.add_option("--max-seq-len", o.max_seq_len, "tokens per sentence, pairs truncated longest-first")
      ->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "sentences per forward pass")->capture_default_str();
  app.add_option("--dtype", o.dtype, "storage type of the hidden states: F32, F16, BF16")
      ->check(CLI::IsMember({"F32", "F16", "BF16"}))
      ->capture_default_str();
  app.add_flag("--all-layers", o.all_layers, "also write every layer's hidden states (L + 1, N, T, C)");
  app.add_flag("--tokenize-only", o.tokenize_only, "write only input_ids, attention_mask, token_type_ids");
  app.add_option("--threads", threads,
                 "CPU threads for GEMM and attention (0 = $OMP_NUM_THREADS or every core)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_threads(threads);
  retain_freed_host_memory();  // reuse freed tensors' pages (core/allocator.hpp)
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lst-encode: %s\n", e.what());
    return 1;
  }
}
