// SPDX-License-Identifier: MIT
/// @file predict.cpp
/// @brief `lst-predict`: a model fine-tuned by lst-finetune (any method) on sentences from stdin or --input,
///        one per line (a tab separates a pair), printing one line each: the label and every class's
///        probability (or the score, for regression). The checkpoint records its method, configuration, task
///        and backbone, so nothing but the backbone directory and the checkpoint is needed; a checkpoint made
///        on another backbone is refused.
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <lst/io/wordpiece.hpp>
#include <lst/lst.hpp>

#include "model_factory.hpp"

namespace {

using namespace lst;

std::vector<std::string> label_names(const std::string& task) {
  if (task == "SST-2") return {"negative", "positive"};
  if (task == "CoLA") return {"unacceptable", "acceptable"};
  if (task == "MRPC") return {"not_equivalent", "equivalent"};
  if (task == "RTE" || task == "QNLI") return {"entailment", "not_entailment"};
  return {};
}

int run(const std::string& model_dir, const std::string& checkpoint, const std::string& input,
        index_t batch_size, std::size_t max_seq_len) {
  const io::SafetensorsFile ckpt(checkpoint);
  const auto meta = ckpt.metadata();
  const auto it = meta.find("lst.state");
  LST_CHECK(it != meta.end(), "checkpoint '", checkpoint,
            "': no 'lst.state' metadata: not written by lst-finetune");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error("checkpoint '" + checkpoint + "': 'lst.state' is not valid JSON: " + e.what());
  }
  LST_CHECK(state.contains("model"), "checkpoint '", checkpoint, "' records no model configuration");
  const auto options =
      lst_programs::method_options_from_json(state.at("model"), "checkpoint '" + checkpoint + "'");
  const index_t outputs = state.at("model").value("outputs", index_t(2));
  const std::string task = state.value("task", "");

  const io::BertConfig cfg = io::load_bert_config(model_dir + "/config.json");
  std::unique_ptr<TaskModel> model;
  {
    const io::SafetensorsFile weights(model_dir + "/model.safetensors");
    model = lst_programs::make_model(options, cfg, weights, outputs);
  }
  load_checkpoint(checkpoint, *model, {});  // refuses another backbone, method or configuration
  const auto tokenizer =
      io::WordPieceTokenizer::from_file(model_dir + "/vocab.txt", lst_programs::lower_case_of(model_dir));

  std::vector<EncodedExample> examples = lst_programs::read_sentences(input, tokenizer, max_seq_len);
  const auto names = label_names(task);
  for (std::size_t first = 0; first < examples.size(); first += std::size_t(batch_size)) {
    const std::size_t n = std::min(std::size_t(batch_size), examples.size() - first);
    std::vector<std::uint32_t> rows(n);
    for (std::size_t i = 0; i < n; ++i) rows[i] = std::uint32_t(first + i);
    const Batch batch = make_batch(examples, rows.data(), n);
    Tensor<float> out(Shape{index_t(n), outputs});
    model->predict(batch, out);
    for (std::size_t i = 0; i < n; ++i) {
      const float* z = out.data() + index_t(i) * outputs;
      if (outputs == 1) {
        std::printf("%.4f\n", z[0]);
        continue;
      }
      float mx = z[0];
      index_t best = 0;
      for (index_t k = 1; k < outputs; ++k)
        if (z[k] > mx) mx = z[k], best = k;
      double sum = 0;
      for (index_t k = 0; k < outputs; ++k) sum += std::exp(double(z[k] - mx));
      std::printf("%s", std::size_t(best) < names.size() ? names[std::size_t(best)].c_str()
                                                         : std::to_string(best).c_str());
      for (index_t k = 0; k < outputs; ++k) std::printf("\t%.4f", std::exp(double(z[k] - mx)) / sum);
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, checkpoint, input = "-";
  index_t batch_size = 32;
  std::size_t max_seq_len = 128;
  int threads = 0;
  CLI::App app{"lst-predict: labels and probabilities from a model fine-tuned by lst-finetune"};
  app.add_option("--model", model_dir,
                 "backbone checkpoint directory (config.json, model.safetensors, vocab.txt)")
      ->required();
  app.add_option("--checkpoint", checkpoint, "OUT/best.safetensors (or last) written by lst-finetune")
      ->required();
  app.add_option("--input", input, "text file, one sentence (or tab-separated pair) per line; - = stdin")
      ->capture_default_str();
  app.add_option("--batch-size", batch_size, "sentences per forward pass")->capture_default_str();
  app.add_option("--max-seq-len", max_seq_len, "tokens per sentence, pairs truncated longest-first")
      ->capture_default_str();
  app.add_option("--threads", threads,
                 "CPU threads for GEMM and attention (0 = $OMP_NUM_THREADS or every core)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_threads(threads);
  retain_freed_host_memory();  // reuse freed tensors' pages (core/allocator.hpp)
  try {
    return run(model_dir, checkpoint, input, batch_size, max_seq_len);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lst-predict: %s\n", e.what());
    return 1;
  }
}
