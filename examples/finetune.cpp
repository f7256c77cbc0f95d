// SPDX-License-Identifier: MIT
/// @file finetune.cpp
/// @brief `lst-finetune`: fine-tunes a pretrained BERT-family checkpoint on a GLUE task and writes
///        OUT/metrics.json, OUT/log.jsonl, OUT/best.safetensors and a resumable OUT/last.safetensors.
///        `lst-finetune --help` lists the options; Ctrl-C stops after the current step with a checkpoint that
///        the same command resumes.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <lst/io/wordpiece.hpp>
#include <lst/lst.hpp>
#include <nlohmann/json.hpp>

#include "model_factory.hpp"

namespace {

using namespace lst;

struct Options {
  std::string model_dir, task = "sst2", data_dir = io::default_glue_dir(), method = "full", out_dir;
  TrainConfig train;
  std::size_t max_seq_len = 128;
  long max_train_examples = 0;
  int threads = 0;
  // --method lst
  int reduction = 8;
  std::string keep_layers = "all", gate = "before", tap_dtype = "f32", output_gate = "off",
              side_pooling = "cls";
  std::string side_init = "magnitude", prune_selection = "consistent";
  std::size_t fisher_examples = 1024;
  std::string cache_taps = "off", tap_cache_file;
  SideOptions side;
  bool attention_dropout = true;
};

/// The method's model, then LST's side initialisation and tap cache.
std::unique_ptr<TaskModel> build_model(const Options& o, const io::BertConfig& cfg,
                                       const io::SafetensorsFile& weights, index_t outputs,
                                       const std::vector<EncodedExample>& train) {
  lst_programs::MethodOptions m;
  m.method = o.method;
  m.reduction = o.reduction;
  m.keep_layers = o.keep_layers;
  m.gate = o.gate;
  m.tap_dtype = o.tap_dtype;
  m.output_gate = o.output_gate;
  m.side = o.side;
  m.side.mean_pooling = o.side_pooling == "mean";
  m.seed = o.train.seed;
  m.attention_dropout = o.attention_dropout;
  std::unique_ptr<TaskModel> model = lst_programs::make_model(m, cfg, weights, outputs);
  auto* lst = dynamic_cast<LstTaskModel*>(model.get());
  if (!lst) return model;
  const auto start = std::chrono::steady_clock::now();
  lst->initialize_side(side_init_from_name(o.side_init), init::prune_selection_from_name(o.prune_selection),
                       weights, train, o.fisher_examples, o.train.seed);
  std::fprintf(stderr, "lst-finetune: side network %s, init %s (%s), %.1f s\n", lst->describe().c_str(),
               o.side_init.c_str(), o.prune_selection.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (o.cache_taps != "off") {
    if (o.cache_taps != "ram" && o.cache_taps != "disk")
      throw Error("--cache-taps '" + o.cache_taps + "' is not one of off, ram, disk");
    const bool disk = o.cache_taps == "disk";
    const std::string path = o.tap_cache_file.empty() ? o.out_dir + "/taps.cache" : o.tap_cache_file;
    if (disk) std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    const TapCache& cache =
        lst->enable_tap_cache(train, disk ? TapCache::Storage::disk : TapCache::Storage::ram, path);
    std::fprintf(stderr, "lst-finetune: tap cache in %s, %.1f MiB%s\n", disk ? path.c_str() : "RAM",
                 double(cache.bytes()) / 1048576.0,
                 cache.reused() ? ", reused (its key matches)"
                 : disk         ? ", built during the first epoch"
                                : "");
  }
  return model;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // Linux reports KiB
}

int run(const Options& o) {
  const auto wall_start = std::chrono::steady_clock::now();
  const io::GlueTask task = io::glue_task_from_name(o.task);
  const io::GlueLayout layout = io::glue_layout(task);
  const io::BertConfig cfg = io::load_bert_config(o.model_dir + "/config.json");
  auto weights = std::make_unique<io::SafetensorsFile>(o.model_dir + "/model.safetensors");
  const auto tokenizer =
      io::WordPieceTokenizer::from_file(o.model_dir + "/vocab.txt", lst_programs::lower_case_of(o.model_dir));
  LST_CHECK(o.max_seq_len >= 3 && index_t(o.max_seq_len) <= cfg.max_position_embeddings, "--max-seq-len ",
            o.max_seq_len, " must be in [3, ", cfg.max_position_embeddings, "] (the checkpoint's positions)");

  const io::GlueDataset train_set = io::load_glue(task, "train", o.data_dir);
  const io::GlueDataset dev_set = io::load_glue(task, "dev", o.data_dir);
  std::vector<EncodedExample> train = encode_glue(tokenizer, train_set, o.max_seq_len);
  const std::vector<EncodedExample> dev = encode_glue(tokenizer, dev_set, o.max_seq_len);
  if (o.max_train_examples > 0 && std::size_t(o.max_train_examples) < train.size())
    train.resize(std::size_t(o.max_train_examples));
  std::fprintf(stderr, "lst-finetune: %s, %zu training and %zu dev examples from %s\n", layout.name,
               train.size(), dev.size(), o.data_dir.c_str());

  const index_t outputs = layout.num_labels > 0 ? layout.num_labels : 1;
  const std::unique_ptr<TaskModel> model = build_model(o, cfg, *weights, outputs, train);
  weights.reset();  // loaded: unmapping the file keeps its pages out of the process's resident set
  index_t trainable = 0;
  for (auto* g : model->trainable()) trainable += g->trainable_parameter_count();
  std::fprintf(stderr, "lst-finetune: method %s, %lld trainable of %lld parameters (%.2f%%)\n",
               model->method().c_str(), (long long)trainable, (long long)model->total_parameters(),
               100.0 * double(trainable) / double(model->total_parameters()));

  TrainConfig tc = o.train;
  tc.out_dir = o.out_dir;
  install_stop_handler();
  Trainer trainer(*model, tc, train, dev, task);
  memory_tracker().reset_peaks();
  const TrainResult r = trainer.run();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  std::printf("%s", memory_tracker().report("lst memory (peak over the run)").c_str());
  std::printf("process peak RSS: %.1f MiB\n", peak_rss_mib());
  if (r.interrupted) {
    std::fprintf(stderr, "lst-finetune: stopped at step %ld of %ld; the same command resumes from %s\n",
                 r.steps, r.total_steps, trainer.last_checkpoint().c_str());
    return 130;
  }
  nlohmann::json peaks = nlohmann::json::object();
  for (int c = 0; c < num_mem_categories; ++c)
    peaks[to_string(static_cast<MemCategory>(c))] = memory_tracker().peak(static_cast<MemCategory>(c));
  peaks["total"] = memory_tracker().total_peak();
  nlohmann::json metrics = {{"task", layout.name},
                            {"method", model->method()},
                            {"model", o.model_dir},
                            {"dev", to_json(r.last)},
                            {"best_dev", to_json(r.best)},
                            {"best_epoch", r.best_epoch},
                            {"primary_metric", r.primary},
                            {"epochs", r.epochs},
                            {"steps", r.steps},
                            {"batch_size", tc.batch_size},
                            {"max_seq_len", o.max_seq_len},
                            {"lr", tc.lr},
                            {"seed", tc.seed},
                            {"train_examples", train.size()},
                            {"wall_seconds", wall},
                            {"threads", threads()},
                            {"side_training_shards", o.method == "lst" ? o.side.training_shards : 0},
                            {"attention_dropout", o.attention_dropout},
                            {"train_seconds", r.train_seconds},
                            {"tokens_per_s", r.tokens_per_second()},
                            {"trainable_parameters", trainable},
                            {"total_parameters", model->total_parameters()},
                            {"peak_bytes", peaks},
                            {"peak_rss_bytes", std::llround(peak_rss_mib() * 1024 * 1024)},
                            {"resumed_from_step", r.resumed_from},
                            {"ema_decay", tc.ema_decay}};
  if (tc.ema_decay > 0) {  // "dev"/"best_dev" are the weight average's; the raw weights' beside them
    metrics["dev_raw"] = to_json(r.last_raw);
    metrics["best_raw_dev"] = to_json(r.best_raw);
    metrics["best_raw_epoch"] = r.best_raw_epoch;
  }
  const std::string text = metrics.dump(2) + "\n";
  io::write_file_atomically(o.out_dir + "/metrics.json",
                            [&](std::FILE* f) { io::write_bytes(f, text.data(), text.size(), o.out_dir); });
  std::printf(
      "%s: dev %s %.4f (best %.4f at epoch %ld), %ld steps, %.0f s, %.0f tokens/s -> %s/metrics.json\n",
      layout.name, r.primary.c_str(), r.last.metrics.at(r.primary), r.best.metrics.at(r.primary),
      r.best_epoch, r.steps, wall, r.tokens_per_second(), o.out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"lst-finetune: fine-tune a pretrained BERT-family checkpoint on a GLUE task"};
  app.add_option("--model", o.model_dir, "checkpoint directory (config.json, model.safetensors, vocab.txt)")
      ->required();
  app.add_option("--task", o.task, "GLUE task: sst2, cola, mrpc, rte, stsb, qnli")->capture_default_str();
  app.add_option("--data", o.data_dir, "GLUE data directory (default: $LST_GLUE_DIR or ../shared/data/glue)")
      ->capture_default_str();
  app.add_option("--method", o.method, "fine-tuning method: full, lst")->capture_default_str();
  app.add_option("--out", o.out_dir, "output directory: metrics.json, log.jsonl, checkpoints")->required();
  app.add_option("--epochs", o.train.epochs, "training epochs")->capture_default_str();
  app.add_option("--max-steps", o.train.max_steps, "stop after this many updates (0 = no limit)")
      ->capture_default_str();
  app.add_option("--batch-size", o.train.batch_size, "examples per update")->capture_default_str();
  app.add_option("--max-seq-len", o.max_seq_len, "tokens per example, pairs truncated longest-first")
      ->capture_default_str();
  app.add_option("--lr", o.train.lr, "peak learning rate")->capture_default_str();
  app.add_option("--warmup-ratio", o.train.warmup_ratio, "fraction of the steps spent warming up")
      ->capture_default_str();
  app.add_option("--optimizer", o.train.optimizer, "adamw or sgd")->capture_default_str();
  app.add_option("--weight-decay", o.train.weight_decay, "decoupled weight decay (not on biases or norms)")
      ->capture_default_str();
  app.add_option("--max-grad-norm", o.train.max_grad_norm, "clip the global gradient norm (0 = off)")
      ->capture_default_str();
  app.add_option("--ema-decay", o.train.ema_decay,
                 "evaluate and keep an exponential moving average of the trained weights with this decay "
                 "(e.g. 0.999; 0 = off); the raw weights are reported too")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999999));
  app.add_option("--seed", o.train.seed, "seed of the head init, shuffling and dropout")
      ->capture_default_str();
  app.add_option("--max-train-examples", o.max_train_examples, "use only the first N training examples")
      ->capture_default_str();
  const std::string lst = "Ladder Side-Tuning (--method lst)";
  app.add_option("-r,--reduction", o.reduction, "reduction factor: side width d / r (2, 4, 8, 16); also --r")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--keep-layers", o.keep_layers,
                 "layers with a side block: all, odd, drop-0-4-8, last or 1,3,5")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--side-heads", o.side.heads, "side attention heads (0 = as the backbone)")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--gate", o.gate, "ladder fusion: before, after, sum, none")
      ->capture_default_str()
      ->group(lst);
  app.add_flag("--per-channel-gates", o.side.per_channel_gates, "one gate per side channel (QST)")
      ->group(lst);
  app.add_option("--ladder-rank", o.side.ladder_rank, "0 = dense ladders, k = low rank d -> k -> d/r")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--tap-dtype", o.tap_dtype, "storage of the saved ladder inputs: f32, f16, bf16")
      ->capture_default_str()
      ->group(lst);
  app.add_flag(
         "--store-side-attention", [&](std::int64_t) { o.side.recompute_attention = false; },
         "keep the side attention probabilities instead of recomputing them in backward")
      ->group(lst);
  app.add_option("--side-shards", o.side.training_shards,
                 "a training batch's sequences in this many data-parallel shards through the side network, "
                 "each on its own thread (results depend on it, not on --threads)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024))
      ->group(lst);
  app.add_option("--init", o.side_init,
                 "side blocks from the backbone by magnitude or fisher pruning, or random")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--prune-selection", o.prune_selection,
                 "consistent (one residual set, head-aware) or reference (the paper's code)")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--fisher-examples", o.fisher_examples, "training examples (batch 1) for Fisher importance")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--cache-taps", o.cache_taps,
                 "store the ladder inputs in epoch 1 and skip the backbone afterwards: off, ram, disk")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--tap-cache-file", o.tap_cache_file, "the --cache-taps disk file (default OUT/taps.cache)")
      ->group(lst);
  app.add_option("--side-dropout", o.side.dropout, "dropout in the side network")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--output-gate", o.output_gate,
                 "QST output gate: the head reads beta h + (1 - beta) up(s), h the backbone's final state "
                 "at [CLS] (cls) or mean-pooled (mean); off = the LST paper")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--output-gate-init", o.side.output_gate_init, "beta at init, in (0, 1)")
      ->capture_default_str()
      ->group(lst);
  app.add_option("--side-pooling", o.side_pooling,
                 "what the head reads of the side state: cls ([CLS], the paper) or mean (over real tokens)")
      ->check(CLI::IsMember({"cls", "mean"}))
      ->capture_default_str()
      ->group(lst);
  app.add_option(
         "--attention-dropout", o.attention_dropout,
         "dropout on the attention probabilities (on: the checkpoint's attention_probs_dropout_prob in "
         "the backbone, the side dropout in the side blocks; off: none)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, bool>{{"on", true}, {"off", false}}))
      ->default_str("on");
  app.add_flag(
      "--no-resume", [&](std::int64_t) { o.train.resume = false; },
      "start afresh even if OUT/last.safetensors exists");
  app.add_flag(
      "--no-group-by-length", [&](std::int64_t) { o.train.group_by_length = false; },
      "plain shuffled batches instead of batches of similar lengths");
  app.add_option("--threads", o.threads,
                 "CPU threads for GEMM and attention (0 = $OMP_NUM_THREADS or every core)")
      ->capture_default_str();
  app.add_flag(
      "--no-progress", [&](std::int64_t) { o.train.progress = false; }, "no progress bar");
  // The issue-tracker spelling "--r 8" (CLI11 reads one-letter names as short options only).
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args)
    if (a == "--r" || a.rfind("--r=", 0) == 0) a = "--reduction" + a.substr(3);
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (o.threads > 0) set_threads(o.threads);
  retain_freed_host_memory();  // reuse freed tensors' pages (core/allocator.hpp)
  // The reference's learning rate for LST is 3e-3 (full fine-tuning: 2e-5); an explicit --lr wins.
  if (o.method == "lst" && app.count("--lr") == 0) o.train.lr = 3e-3;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lst-finetune: %s\n", e.what());
    return 1;
  }
}
