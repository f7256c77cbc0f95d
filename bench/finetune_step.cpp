// SPDX-License-Identifier: MIT
/// @file finetune_step.cpp
/// @brief One full-fine-tuning update of the real all-MiniLM-L6-v2 in lst (one thread): forward in training
///        mode, cross-entropy, backward through every layer, clipping, AdamW. Batch B, sequence T, median of
///        N updates. bench/finetune_step.sh runs it beside PyTorch doing the same update on the same ids.
///
///   bench_finetune_step [--model DIR] [--batch 32] [--seq 128] [--reps 5] [--threads N] [--method full|lst]
///                       [--r 8] [--side-heads H] [--tap-dtype f32|f16|bf16] [--cache-taps off|ram] (--help)
/// Prints one JSON line with the step time, the tracker's peak bytes per category, and the process RSS after
/// loading and at its peak (their difference is what training added on top of the loaded model). With
/// --cache-taps ram, the peaks are the cached steps' (a later epoch's), after the warm-up update that fills
/// the cache.
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <lst/lst.hpp>

#include "bench_shape.hpp"

using namespace lst;

namespace {
double rss_mib(const char* field) {  // "VmRSS:" (now) or "VmHWM:" (peak), from /proc/self/status
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::atof(line.c_str() + std::strlen(field)) / 1024.0;
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  lst_bench::BenchShape shape;
  int r = 8;
  std::string method = "full", tap_dtype = "f32", cache = "off", attention_dropout = "on";
  index_t side_heads = 0;
  CLI::App app{
      "One training update of all-MiniLM-L6-v2 in lst: full fine-tuning or LST (bench/finetune_step.sh)"};
  shape.add_to(app, "updates");
  app.add_option("--method", method, "full or lst")->check(CLI::IsMember({"full", "lst"}));
  app.add_option("--r", r, "LST reduction factor")->check(CLI::IsMember({2, 4, 8}));
  app.add_option("--side-heads", side_heads, "side attention heads (0 = as the backbone)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--tap-dtype", tap_dtype, "storage of the ladder inputs")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  app.add_option("--cache-taps", cache, "ram: time steps fed from the tap cache")
      ->check(CLI::IsMember({"off", "ram"}));
  app.add_option("--attention-dropout", attention_dropout,
                 "dropout on the attention probabilities (the backbone's and the side blocks')")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  shape.apply();
  const std::string& dir = shape.model;
  const index_t B = shape.batch, T = shape.seq;
  const int reps = shape.reps;
  const bool cache_taps = cache == "ram";
  try {
    const io::BertConfig cfg = io::load_bert_config(dir + "/config.json");
    SideOptions side;
    side.heads = side_heads;
    side.tap_dtype = tap_dtype_from_name(tap_dtype);
    side.attention_dropout = attention_dropout == "on";
    std::unique_ptr<TaskModel> owned;
    {  // the mapped checkpoint is released once loaded: its pages would otherwise stay in the RSS
      const io::SafetensorsFile weights(dir + "/model.safetensors");
      if (method == "full")
        owned = std::make_unique<BertFullFineTuning>(cfg, weights, 2, 42, attention_dropout == "on");
      else if (method == "lst" && r == 8)
        owned = std::make_unique<BertLadderSideTuning<LstConfig<8>>>(cfg, weights, 2, side, 42);
      else if (method == "lst" && r == 4)
        owned = std::make_unique<BertLadderSideTuning<LstConfig<4>>>(cfg, weights, 2, side, 42);
      else if (method == "lst" && r == 2)
        owned = std::make_unique<BertLadderSideTuning<LstConfig<2>>>(cfg, weights, 2, side, 42);
      else
        throw Error("--method " + method + " --r " + std::to_string(r) +
                    ": expected full, or lst with r 2, 4, 8");
    }
    TaskModel& model = *owned;
    AdamW<float> opt_encoder(*model.trainable()[0]), opt_head(*model.trainable()[1]);
    const double rss_loaded = rss_mib("VmRSS:");
    // The same deterministic ids and labels as bench/finetune_step.py.
    std::vector<EncodedExample> examples(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
      auto& e = examples[std::size_t(b)];
      for (index_t t = 0; t < T; ++t)
        e.ids.push_back(t == 0 ? 101 : std::int32_t(1000 + (b * 131 + t * 7919) % 28000));
      e.type_ids.assign(std::size_t(T), 0);
      e.label = std::int32_t(b % 2);
    }
    std::vector<std::uint32_t> rows(static_cast<std::size_t>(B));
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = std::uint32_t(i);
    const Batch batch = make_batch(examples, rows.data(), rows.size());
    if (cache_taps) {  // the warm-up update fills the cache; the timed ones skip the backbone (later epochs)
      auto* lst = dynamic_cast<LstTaskModel*>(&model);
      if (!lst) throw Error("--cache-taps ram needs --method lst");
      lst->enable_tap_cache(examples, TapCache::Storage::ram);
    }
    std::vector<double> times, losses;
    memory_tracker().reset_peaks();
    for (int rep = 0; rep <= reps; ++rep) {  // update 0 is the warm-up
      const auto t0 = std::chrono::steady_clock::now();
      losses.push_back(model.train_step(batch, std::uint64_t(rep)));
      clip_grad_norm(model.trainable(), 1.0);
      opt_encoder.step(2e-5);
      opt_head.step(2e-5);
      if (rep > 0)
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (rep == 0 && cache_taps) {
        // Peaks of the steps that read the cache (a later epoch's), not of the warm-up that filled it: the
        // tracker's, and the process's (glibc hands the warm-up's freed backbone activations back first, then
        // writing 5 to clear_refs resets VmHWM to the current RSS, Linux 4.0+).
        memory_tracker().reset_peaks();
        ::malloc_trim(0);
        std::ofstream("/proc/self/clear_refs") << "5";
      }
    }
    std::sort(times.begin(), times.end());
    const double s = times[times.size() / 2];
    std::printf(
        "{\"impl\": \"lst\", \"method\": \"%s\", \"r\": %d, \"threads\": %d, \"batch\": %lld, \"seq\": %lld, "
        "\"step_seconds\": %.4f, "
        "\"tokens_per_s\": %.1f, \"rss_loaded_mib\": %.1f, \"peak_rss_mib\": %.1f, "
        "\"first_loss\": %.6f, \"cache_taps\": %s",
        method.c_str(), method == "lst" ? r : 0, threads(), (long long)B, (long long)T, s, double(B * T) / s,
        rss_loaded, rss_mib("VmHWM:"), losses[0], cache_taps ? "true" : "false");
    for (int c = 0; c < num_mem_categories; ++c)
      std::printf(", \"tracker_%s_mib\": %.1f", to_string(static_cast<MemCategory>(c)),
                  memory_tracker().peak(static_cast<MemCategory>(c)) / 1048576.0);
    std::printf(", \"tracker_total_mib\": %.1f}\n", memory_tracker().total_peak() / 1048576.0);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_finetune_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
