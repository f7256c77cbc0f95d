// SPDX-License-Identifier: MIT
/// @file bert_inference.cpp
/// @brief Inference throughput of the real all-MiniLM-L6-v2 encoder in lst (one thread): tokens/s at batch B,
///        sequence T, median of N forwards. scripts/bench_bert.sh runs it beside PyTorch on the same ids.
///
///   bench_bert_inference [--model DIR] [--batch 32] [--seq 128] [--reps 5] [--threads N]
/// Prints one JSON line: {"impl": "lst", "tokens_per_s": ..., "seconds": ..., "peak_rss_mib": ..., ...}
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <lst/lst.hpp>

#include "bench_shape.hpp"

using namespace lst;

int main(int argc, char** argv) {
  lst_bench::BenchShape shape;
  CLI::App app{"Forward throughput of all-MiniLM-L6-v2 in lst (scripts/bench_bert.sh)"};
  shape.add_to(app, "forwards");
  CLI11_PARSE(app, argc, argv);
  shape.apply();
  const std::string& dir = shape.model;
  const index_t B = shape.batch, T = shape.seq;
  const int reps = shape.reps;
  try {
    const io::BertConfig cfg = io::load_bert_config(dir + "/config.json");
    BertEncoder<float> bert(cfg, false);
    bert.load(io::SafetensorsFile(dir + "/model.safetensors"));
    // The same deterministic ids as scripts/bench_bert.py: [CLS], then a fixed pseudo-random walk over the
    // vocab.
    Tensor<std::int32_t> ids(Shape{B, T}), mask = Tensor<std::int32_t>::full(Shape{B, T}, 1);
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T; ++t)
        ids(b, t) = t == 0 ? 101 : std::int32_t(1000 + (b * 131 + t * 7919) % 28000);
    Tensor<float> hidden(Shape{B, T, cfg.hidden_size});
    std::vector<double> times;
    bert.forward(ids, {}, mask, hidden, {}, Mode::inference, 0);  // warm-up
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      bert.forward(ids, {}, mask, hidden, {}, Mode::inference, 0);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double s = times[times.size() / 2];
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    double checksum = 0;
    for (index_t i = 0; i < hidden.numel(); i += 997) checksum += hidden.data()[i];
    std::printf(
        "{\"impl\": \"lst\", \"threads\": %d, \"batch\": %lld, \"seq\": %lld, \"seconds\": %.4f, "
        "\"tokens_per_s\": "
        "%.1f, \"peak_rss_mib\": %.1f, \"tracker_peak_mib\": %.1f, \"checksum\": %.6f}\n",
        threads(), (long long)B, (long long)T, s, double(B * T) / s, ru.ru_maxrss / 1024.0,
        memory_tracker().total_peak() / 1048576.0, checksum);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_bert_inference: %s\n", e.what());
    return 1;
  }
  return 0;
}
