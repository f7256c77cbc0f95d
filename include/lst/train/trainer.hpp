// SPDX-License-Identifier: MIT
/// @file trainer.hpp
/// @brief The fine-tuning loop every method shares: seeded shuffling, linear warm-up and decay, clipping by
///        global norm, AdamW or SGD, evaluation after each epoch with the best checkpoint kept, a JSON-lines
///        log, a progress bar, and a resumable checkpoint on Ctrl-C and after every epoch. Optionally an
///        exponential moving average of the weights (weight_average.hpp) is what gets evaluated and kept.
///
/// Determinism is what makes resuming exact: the example order is a function of (seed, epoch), dropout masks
/// a function of (seed, step), and the checkpoint holds weights, optimizer state and the step. A resumed run
/// therefore computes the same losses, bit for bit, as one that was never interrupted.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adamw.hpp"
#include "checkpoint.hpp"
#include "clip.hpp"
#include "evaluate.hpp"
#include "interrupt.hpp"
#include "progress.hpp"
#include "schedule.hpp"
#include "sgd.hpp"
#include "shuffle.hpp"
#include "weight_average.hpp"

LST_NAMESPACE_BEGIN

struct TrainConfig {
  long epochs = 3;
  long max_steps = 0;  // > 0: stop after this many updates (the schedule then spans them)
  index_t batch_size = 32;
  double lr = 2e-5;
  double warmup_ratio = 0.1;        // of the total steps
  std::string optimizer = "adamw";  // "adamw" or "sgd"
  double weight_decay = 0.01;
  double momentum = 0.9;       // SGD only
  double max_grad_norm = 1.0;  // <= 0: no clipping
  std::uint64_t seed = 42;
  std::string out_dir;  // checkpoints and log; empty: none written
  bool resume = true;   // continue from out_dir/last.safetensors when it exists
  long log_every = 20;  // steps per JSON-lines training record
  bool progress = true;
  bool group_by_length = true;  // batches of similar lengths (see epoch_batches)
  /// > 0: keep an exponential moving average of the weights with this decay (e.g. 0.999) and evaluate it, and
  /// save it as the best checkpoint, in place of the weights; the raw weights are evaluated too ("dev_raw").
  double ema_decay = 0;
};

struct TrainResult {
  Evaluation last, best;
  long best_epoch = -1;
  // With a weight average (TrainConfig::ema_decay), `last` and `best` are the average's and these the raw
  // weights' own: the same run without the average, since the average does not change training.
  Evaluation last_raw, best_raw;
  long best_raw_epoch = -1;
  std::string primary;  // the metric that chose `best`
  long steps = 0, total_steps = 0, steps_per_epoch = 0;
  double epochs = 0;                           // steps / steps_per_epoch
  double train_seconds = 0, train_tokens = 0;  // over every session of this run, resumes included
  long resumed_from = -1;                      // the step this session started from, -1 for a fresh start
  bool interrupted = false;
  double tokens_per_second() const { return train_seconds > 0 ? train_tokens / train_seconds : 0; }
};

inline nlohmann::json to_json(const Evaluation& e) {
  nlohmann::json j = e.metrics;
  j["loss"] = e.loss;
  return j;
}

class Trainer {
 public:
  Trainer(TaskModel& model, TrainConfig cfg, const std::vector<EncodedExample>& train,
          const std::vector<EncodedExample>& dev, io::GlueTask task)
      : m_model(model), m_cfg(std::move(cfg)), m_train(train), m_dev(dev), m_task(task) {
    LST_CHECK(!train.empty(), "Trainer: no training examples");
    LST_CHECK(m_cfg.batch_size > 0, "Trainer: batch size must be positive (got ", m_cfg.batch_size, ")");
    LST_CHECK(m_cfg.epochs > 0 || m_cfg.max_steps > 0, "Trainer: need epochs > 0 or max_steps > 0");
    LST_CHECK(m_cfg.warmup_ratio >= 0 && m_cfg.warmup_ratio <= 1, "Trainer: warm-up ratio ",
              m_cfg.warmup_ratio, " is outside [0, 1]");
    LST_CHECK(m_cfg.optimizer == "adamw" || m_cfg.optimizer == "sgd", "Trainer: optimizer '", m_cfg.optimizer,
              "' is not one of adamw, sgd");
    LST_CHECK(m_cfg.ema_decay >= 0 && m_cfg.ema_decay < 1, "Trainer: weight-average decay ", m_cfg.ema_decay,
              " is outside [0, 1) (0: no average)");
    for (ParameterArena<float>* group : model.trainable()) {
      if (m_cfg.optimizer == "adamw")
        m_adamw.push_back(
            std::make_unique<AdamW<float>>(*group, AdamWConfig{0.9, 0.999, 1e-8, m_cfg.weight_decay}));
      else
        m_sgd.push_back(std::make_unique<Sgd<float>>(*group, SgdConfig{m_cfg.momentum, m_cfg.weight_decay}));
    }
    if (m_cfg.ema_decay > 0) m_average = std::make_unique<WeightAverage>(model.trainable(), m_cfg.ema_decay);
    for (const EncodedExample& e : train) m_lengths.push_back(std::uint32_t(e.ids.size()));
    m_steps_per_epoch = (long(train.size()) + long(m_cfg.batch_size) - 1) / long(m_cfg.batch_size);
    m_total = m_cfg.epochs > 0 ? m_cfg.epochs * m_steps_per_epoch : m_cfg.max_steps;
    if (m_cfg.max_steps > 0) m_total = std::min(m_total, m_cfg.max_steps);
  }

  std::string last_checkpoint() const { return m_cfg.out_dir + "/last.safetensors"; }
  std::string best_checkpoint() const { return m_cfg.out_dir + "/best.safetensors"; }
  std::string log_path() const { return m_cfg.out_dir + "/log.jsonl"; }
  long total_steps() const { return m_total; }
  long steps_per_epoch() const { return m_steps_per_epoch; }
  /// Every training loss of this session, in step order (what the resume test compares).
  const std::vector<double>& losses() const { return m_losses; }

  TrainResult run() {
    TrainResult r;
    r.primary = primary_metric(m_task);
    r.total_steps = m_total;
    r.steps_per_epoch = m_steps_per_epoch;
    long step = 0;
    if (!m_cfg.out_dir.empty()) make_directory(m_cfg.out_dir);
    if (!m_cfg.out_dir.empty() && m_cfg.resume && file_exists(last_checkpoint())) {
      // The run's settings are checked before anything is read into the model.
      const nlohmann::json s0 = read_checkpoint_state(last_checkpoint());
      LST_CHECK(s0.value("total_steps", -1L) == m_total &&
                    s0.value("batch_size", -1L) == long(m_cfg.batch_size) &&
                    s0.value("seed", std::uint64_t(0)) == m_cfg.seed &&
                    s0.value("group_by_length", true) == m_cfg.group_by_length &&
                    s0.value("ema_decay", 0.0) == m_cfg.ema_decay,
                "checkpoint '", last_checkpoint(), "' was made with ", s0.value("total_steps", -1L),
                " total steps, batch size ", s0.value("batch_size", -1L), " and seed ",
                s0.value("seed", std::uint64_t(0)), " (length grouping ", s0.value("group_by_length", true),
                ", weight-average decay ", s0.value("ema_decay", 0.0), "); this run has ", m_total, ", ",
                m_cfg.batch_size, " and ", m_cfg.seed, " (length grouping ", m_cfg.group_by_length,
                ", weight-average decay ", m_cfg.ema_decay,
                "): resuming would not continue the same run (use another --out or delete it)");
      const nlohmann::json s = load_checkpoint(last_checkpoint(), m_model, optimizer_state());
      step = s.at("step").get<long>();
      for (auto& o : m_adamw) o->set_steps(step);
      for (auto& o : m_sgd) o->set_steps(step);
      r.train_seconds = s.value("train_seconds", 0.0);
      r.train_tokens = s.value("train_tokens", 0.0);
      r.best_epoch = s.value("best_epoch", -1L);
      if (s.contains("best")) r.best = from_json(s.at("best"));
      r.best_raw_epoch = s.value("best_raw_epoch", -1L);
      if (s.contains("best_raw")) r.best_raw = from_json(s.at("best_raw"));
      r.resumed_from = step;
      log({{"event", "resume"}, {"step", step}});
    }
    const LinearSchedule schedule(m_cfg.lr, long(std::llround(m_cfg.warmup_ratio * double(m_total))),
                                  m_total);
    const auto groups = m_model.trainable();
    ProgressBar bar(step, m_total, m_cfg.progress);
    const double seconds_before = r.train_seconds;
    double eval_seconds = 0, window_loss = 0, session_tokens = 0;
    long window = 0;

    auto save_last = [&](long at) {
      if (m_cfg.out_dir.empty()) return;
      nlohmann::json s = {{"step", at},
                          {"total_steps", m_total},
                          {"batch_size", m_cfg.batch_size},
                          {"seed", m_cfg.seed},
                          {"group_by_length", m_cfg.group_by_length},
                          {"ema_decay", m_cfg.ema_decay},
                          {"task", io::glue_layout(m_task).name},
                          {"train_seconds", r.train_seconds},
                          {"train_tokens", r.train_tokens},
                          {"best_epoch", r.best_epoch},
                          {"best", to_json(r.best)}};
      if (m_average) {
        s["best_raw_epoch"] = r.best_raw_epoch;
        s["best_raw"] = to_json(r.best_raw);
      }
      save_checkpoint(last_checkpoint(), m_model, optimizer_state(), s);
    };

    while (step < m_total) {
      const long epoch = step / m_steps_per_epoch;
      const double epoch_start_seconds = r.train_seconds;
      const auto batches = epoch_batches(m_lengths, std::size_t(m_cfg.batch_size), m_cfg.seed,
                                         std::uint64_t(epoch), m_cfg.group_by_length);
      for (long pos = step % m_steps_per_epoch; pos < m_steps_per_epoch && step < m_total; ++pos) {
        const auto& rows = batches[std::size_t(pos)];
        const Batch batch = make_batch(m_train, rows.data(), rows.size());
        const double loss = m_model.train_step(batch, std::uint64_t(step));
        LST_CHECK(std::isfinite(loss), "training diverged at step ", step, ": loss ", loss,
                  " (lower the learning rate)");
        const double norm =
            m_cfg.max_grad_norm > 0 ? clip_grad_norm(groups, m_cfg.max_grad_norm) : global_grad_norm(groups);
        const double lr = schedule.lr(step);
        for (auto& o : m_adamw) o->step(lr);
        for (auto& o : m_sgd) o->step(lr);
        ++step;
        if (m_average) m_average->update(step);
        m_losses.push_back(loss);
        r.train_tokens += double(batch.real_tokens);
        r.train_seconds = seconds_before + bar.seconds() - eval_seconds;
        window_loss += loss;
        ++window;
        session_tokens += double(batch.real_tokens);
        bar.update(step, loss, lr, session_tokens);
        if (window == m_cfg.log_every || step == m_total) {
          log({{"event", "train"},
               {"step", step},
               {"epoch", double(step) / double(m_steps_per_epoch)},
               {"loss", window_loss / double(window)},
               {"lr", lr},
               {"grad_norm", norm},
               {"tokens_per_s", r.tokens_per_second()},
               {"train_seconds", r.train_seconds}});
          window_loss = 0;
          window = 0;
        }
        if (stop_requested()) {
          bar.break_line();
          r.train_seconds = seconds_before + bar.seconds() - eval_seconds;
          save_last(step);
          log({{"event", "interrupt"}, {"step", step}, {"signal", stop_requested()}});
          r.interrupted = true;
          r.steps = step;
          r.epochs = double(step) / double(m_steps_per_epoch);
          return r;
        }
      }
      // End of an epoch, or of the step budget: evaluate, keep the best, make the run resumable.
      bar.break_line();
      const double eval_start = bar.seconds();
      bool improved = false;
      if (m_average) {
        r.last_raw = evaluate(m_model, m_dev, m_task, m_cfg.batch_size);
        keep_if_better(r.last_raw, r.primary, epoch + 1, r.best_raw, r.best_raw_epoch);
      }
      {
        const AveragedWeightsScope averaged(m_average.get());  // the best checkpoint holds what was evaluated
        r.last = evaluate(m_model, m_dev, m_task, m_cfg.batch_size);
        improved = keep_if_better(r.last, r.primary, epoch + 1, r.best, r.best_epoch);
        if (improved && !m_cfg.out_dir.empty())
          save_checkpoint(best_checkpoint(), m_model, {},
                          {{"step", step},
                           {"epoch", epoch + 1},
                           {"task", io::glue_layout(m_task).name},
                           {"weight_average", m_average != nullptr},
                           {"dev", to_json(r.last)}});
      }
      eval_seconds += bar.seconds() - eval_start;
      r.train_seconds = seconds_before + bar.seconds() - eval_seconds;
      nlohmann::json rec = {{"event", "eval"},
                            {"step", step},
                            {"epoch", double(step) / double(m_steps_per_epoch)},
                            {"dev", to_json(r.last)},
                            {"best", improved},
                            {"epoch_train_seconds", r.train_seconds - epoch_start_seconds}};
      if (m_average) rec["dev_raw"] = to_json(r.last_raw);
      log(rec);
      if (m_cfg.progress) {
        std::fprintf(stderr, "epoch %.2f: dev%s", double(step) / double(m_steps_per_epoch),
                     m_average ? " (weight average)" : "");
        for (const auto& [k, v] : r.last.metrics) std::fprintf(stderr, " %s %.4f", k.c_str(), v);
        std::fprintf(stderr, " loss %.4f%s\n", r.last.loss, improved ? " (best)" : "");
        if (m_average) {
          std::fprintf(stderr, "            raw weights");
          for (const auto& [k, v] : r.last_raw.metrics) std::fprintf(stderr, " %s %.4f", k.c_str(), v);
          std::fprintf(stderr, " loss %.4f\n", r.last_raw.loss);
        }
      }
      save_last(step);
    }
    if (r.last.metrics.empty()) {  // finished before
      if (m_average) r.last_raw = evaluate(m_model, m_dev, m_task, m_cfg.batch_size);
      const AveragedWeightsScope averaged(m_average.get());
      r.last = evaluate(m_model, m_dev, m_task, m_cfg.batch_size);
    }
    r.steps = step;
    r.epochs = double(step) / double(m_steps_per_epoch);
    return r;
  }

 private:
  std::vector<OptimizerState> optimizer_state() const {
    std::vector<OptimizerState> s;
    for (const auto& o : m_adamw)
      s.push_back({{"adam_m", o->first_moment()}, {"adam_v", o->second_moment()}});
    for (const auto& o : m_sgd)
      s.push_back(o->momentum_buffer().empty() ? OptimizerState{}
                                               : OptimizerState{{"momentum", o->momentum_buffer()}});
    if (m_average)
      for (std::size_t g = 0; g < s.size(); ++g) s[g].emplace_back("weight_average", m_average->average(g));
    return s;
  }
  /// Makes `e` (of epoch `epoch`) the best if its `metric` beats the best so far (none yet: any value does).
  static bool keep_if_better(const Evaluation& e, const std::string& metric, long epoch, Evaluation& best,
                             long& best_epoch) {
    const auto kept = best.metrics.find(metric);
    if (kept != best.metrics.end() && !(e.metrics.at(metric) > kept->second)) return false;
    best = e;
    best_epoch = epoch;
    return true;
  }
  static Evaluation from_json(const nlohmann::json& j) {
    Evaluation e;
    for (const auto& [k, v] : j.items())
      if (k == "loss")
        e.loss = v.get<double>();
      else
        e.metrics[k] = v.get<double>();
    return e;
  }
  void log(const nlohmann::json& record) {
    if (m_cfg.out_dir.empty()) return;
    std::FILE* f = std::fopen(log_path().c_str(), "a");
    LST_CHECK(f != nullptr, "cannot append to the training log '", log_path(), "'");
    const std::string line = record.dump() + "\n";
    const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
    LST_CHECK(std::fclose(f) == 0 && ok, "writing the training log '", log_path(), "' failed");
  }
  static bool file_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
  }
  static void make_directory(const std::string& dir) {
    std::string partial;
    for (std::size_t i = 0; i <= dir.size(); ++i) {
      if (i == dir.size() || (dir[i] == '/' && i > 0)) {
        partial = dir.substr(0, i);
        struct stat st;
        if (::stat(partial.c_str(), &st) == 0) {
          LST_CHECK(S_ISDIR(st.st_mode), "output path '", partial, "' exists and is not a directory");
        } else {
          LST_CHECK(::mkdir(partial.c_str(), 0755) == 0 || errno == EEXIST,
                    "cannot create the output directory '", partial, "': ", std::strerror(errno));
        }
      }
    }
  }

  TaskModel& m_model;
  TrainConfig m_cfg;
  const std::vector<EncodedExample>& m_train;
  const std::vector<EncodedExample>& m_dev;
  io::GlueTask m_task;
  std::vector<std::unique_ptr<AdamW<float>>> m_adamw;
  std::vector<std::unique_ptr<Sgd<float>>> m_sgd;
  std::unique_ptr<WeightAverage> m_average;  // null without TrainConfig::ema_decay
  std::vector<std::uint32_t> m_lengths;      // tokens per training example
  long m_steps_per_epoch = 0, m_total = 0;
  std::vector<double> m_losses;
};

LST_NAMESPACE_END
